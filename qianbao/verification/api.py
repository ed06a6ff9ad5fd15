"""The JSON API of "Verify face": what a mobile app calls. Thin: parse, call, shape.

The photo page and the selfie frames are multipart uploads; the work on them runs in the
request (a worker thread), taking from under a second to a few seconds.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Final

from fastapi import APIRouter, File, Form, UploadFile

from qianbao.errors import InvalidInput, NotFound
from qianbao.i18n import N_
from qianbao.identity import service as identity
from qianbao.identity.api import DbDep, SessionDep
from qianbao.settings import Settings
from qianbao.verification import chip, schemas, service
from qianbao.verification.service import CaseView

router = APIRouter(prefix="/api/v1/verification", tags=["verification"])
STEPS: Final = {"passport": 1, "confirm": 1, "face": 2}


def case_out(view: CaseView) -> schemas.CaseOut:
    document = view.document
    return schemas.CaseOut(
        id=view.id,
        method=view.method,
        status=view.status,
        step=STEPS.get(view.status, 3),
        document=None
        if document is None
        else schemas.DocumentOut(
            surname=document.surname,
            given_names=document.given_names,
            nationality=document.nationality,
            issuing_state=document.issuing_state,
            document_number=document.masked_number,
            birth_date=document.birth_date,
            expiry_date=document.expiry_date,
        ),
        challenge=list(view.challenge) if view.challenge else None,
        challenge_expires_at=view.challenge_expires_at,
        reason=view.reason,
        tries_left=view.tries_left,
        next_try_at=view.next_try_at,
        aa_challenge=view.aa_challenge,
    )


def read_upload(upload: UploadFile, settings: Settings) -> bytes:
    """The file's bytes, refused without reading further once it passes the limit."""
    limit = settings.verification_max_upload_bytes
    data = upload.file.read(limit + 1)
    if len(data) > limit:
        raise InvalidInput(
            "image.too_large",
            N_("The file is larger than {megabytes} MB. Send a smaller photo."),
            {"megabytes": limit // (1024 * 1024)},
        )
    return data


@router.get(
    "",
    response_model=schemas.CaseOut,
    responses={404: {"description": "No verification yet (verification.no_case)."}},
)
def get_case(session: SessionDep, db: DbDep) -> schemas.CaseOut:
    """The person's current verification, whatever its step."""
    view = db.run(lambda tx: service.current_case(tx, session.account.id))
    if view is None:
        raise NotFound("verification.no_case", N_("There is no verification yet."))
    return case_out(view)


@router.post("/passport-face", response_model=schemas.CaseOut)
def start(session: SessionDep, db: DbDep) -> schemas.CaseOut:
    """Start "Verify face", or resume the one in progress."""
    return case_out(db.run(lambda tx: service.start_case(tx, session.account.id)))


@router.post("/passport-chip", response_model=schemas.CaseOut)
def start_chip(session: SessionDep, db: DbDep) -> schemas.CaseOut:
    """Start "Passport chip & face", or resume it. The answer carries ``aa_challenge``:
    the phone sends it to the chip (INTERNAL AUTHENTICATE) and uploads the signature."""
    view = db.run(lambda tx: service.start_case(tx, session.account.id, "passport_chip"))
    return case_out(view)


@router.post(
    "/passport-chip/{case_id}/chip-authentication", response_model=schemas.ChipAuthenticationOut
)
def chip_authentication_challenge(
    case_id: str,
    session: SessionDep,
    db: DbDep,
    dg14: Annotated[UploadFile, File(description="EF.DG14 as read")],
    dg1: Annotated[UploadFile, File(description="EF.DG1 as read")],
) -> schemas.ChipAuthenticationOut:
    """For a chip with DG14 and no DG15: a fresh chip-authentication challenge. Keep the
    passport on the phone: run CA with ``ephemeral_public_key``, send ``command`` under
    the new session, and upload the chip's answer as ``ca_response`` with the files."""
    case = _case_id(case_id)
    view = service.start_chip_authentication(
        db,
        session.account.id,
        case,
        read_upload(dg14, db.settings),
        read_upload(dg1, db.settings),
    )
    return schemas.ChipAuthenticationOut(
        protocol=view.protocol_oid,
        key_id=view.key_id,
        ephemeral_public_key=view.ephemeral_public_key,
        command=view.command,
        expires_at=view.expires_at,
    )


@router.post("/passport-chip/{case_id}/chip", response_model=schemas.CaseOut)
def chip_files(
    case_id: str,
    session: SessionDep,
    db: DbDep,
    sod: Annotated[UploadFile, File(description="EF.SOD")],
    dg1: Annotated[UploadFile, File(description="EF.DG1")],
    dg2: Annotated[UploadFile, File(description="EF.DG2")],
    dg14: Annotated[UploadFile | None, File(description="EF.DG14, if the chip has it")] = None,
    dg15: Annotated[UploadFile | None, File(description="EF.DG15, if the chip has it")] = None,
    aa_signature: Annotated[str, Form(description="the chip's AA answer, hex")] = "",
    ca_response: Annotated[str, Form(description="the chip's CA answer, hex")] = "",
    page: Annotated[
        UploadFile | None, File(description="a photo of the data page, if one was taken")
    ] = None,
) -> schemas.CaseOut:
    """Step 1 by chip: the raw files read over NFC (BAC or PACE) and the chip's proof
    that it is the original: with DG15, its signature of ``aa_challenge``; without DG15
    but with DG14, its answer to ``/chip-authentication``. Passive authentication
    against the trust store; with ``page``, the printed zone must match DG1's. Then
    confirm and face as for "Verify face" (``/cases/{id}/confirm``, ``/challenge``,
    ``/face``)."""
    case = _case_id(case_id)
    files = chip_upload(db.settings, sod, dg1, dg2, dg14, dg15)
    proofs = chip_proofs(db.settings, aa_signature, ca_response, page)
    return case_out(service.submit_chip(db, session.account.id, case, files, proofs))


def chip_proofs(
    settings: Settings, aa_signature: str, ca_response: str, page: UploadFile | None
) -> service.ChipProofs:
    return service.ChipProofs(
        aa_signature=hex_bytes(aa_signature),
        ca_response=hex_bytes(ca_response),
        page_photo=read_upload(page, settings) if page is not None and page.filename else None,
    )


def chip_upload(
    settings: Settings,
    sod: UploadFile,
    dg1: UploadFile,
    dg2: UploadFile,
    dg14: UploadFile | None,
    dg15: UploadFile | None,
) -> chip.ChipFiles:
    groups = {1: dg1, 2: dg2, 14: dg14, 15: dg15}
    return chip.ChipFiles(
        sod=read_upload(sod, settings),
        dgs={
            number: read_upload(upload, settings)
            for number, upload in groups.items()
            if upload is not None and upload.filename
        },
    )


def hex_bytes(text: str) -> bytes | None:
    text = "".join(text.split())
    if not text:
        return None
    try:
        return bytes.fromhex(text)
    except ValueError as error:
        raise InvalidInput(
            "chip.signature_format", N_("The chip's answer must be written in hexadecimal.")
        ) from error


@router.post("/passport-face/cancel", status_code=204)
def cancel(session: SessionDep, db: DbDep) -> None:
    db.run(lambda tx: service.cancel_case(tx, session.account.id))


@router.post("/passport-face/{case_id}/photo-page", response_model=schemas.CaseOut)
def photo_page(
    case_id: str, session: SessionDep, db: DbDep, image: Annotated[UploadFile, File()]
) -> schemas.CaseOut:
    """Step 1: a JPEG or PNG of the passport's photo page. The zone is read and checked,
    the portrait cut out; the person then confirms the name and nationality read."""
    data = read_upload(image, db.settings)
    case = _case_id(case_id)
    return case_out(service.submit_photo_page(db, session.account.id, case, data))


@router.post(
    "/passport-face/{case_id}/confirm",
    response_model=schemas.CaseOut,
    operation_id="verification.passport_face_confirm",  # the alias of /cases/...
)
@router.post("/cases/{case_id}/confirm", response_model=schemas.CaseOut)
def confirm(case_id: str, session: SessionDep, db: DbDep) -> schemas.CaseOut:
    """The name and nationality read are right: on to the face check."""
    case = _case_id(case_id)
    return case_out(db.run(lambda tx: service.confirm_document(tx, session.account.id, case)))


@router.post(
    "/passport-face/{case_id}/retake",
    response_model=schemas.CaseOut,
    operation_id="verification.passport_face_retake",  # the alias of /cases/...
)
@router.post("/cases/{case_id}/retake", response_model=schemas.CaseOut)
def retake(case_id: str, session: SessionDep, db: DbDep) -> schemas.CaseOut:
    """The read is wrong: back to step 1 for another photo."""
    case = _case_id(case_id)
    return case_out(db.run(lambda tx: service.retake_page(tx, session.account.id, case)))


@router.post(
    "/passport-face/{case_id}/challenge",
    response_model=schemas.CaseOut,
    operation_id="verification.passport_face_challenge",  # the alias of /cases/...
)
@router.post("/cases/{case_id}/challenge", response_model=schemas.CaseOut)
def challenge(case_id: str, session: SessionDep, db: DbDep) -> schemas.CaseOut:
    """A new random liveness challenge: two actions to perform, in order, on camera."""
    case = _case_id(case_id)
    return case_out(db.run(lambda tx: service.issue_challenge(tx, session.account.id, case)))


@router.post(
    "/passport-face/{case_id}/face",
    response_model=schemas.CaseOut,
    operation_id="verification.passport_face_face",  # the alias of /cases/...
)
@router.post("/cases/{case_id}/face", response_model=schemas.CaseOut)
def face(
    case_id: str,
    session: SessionDep,
    db: DbDep,
    frames: Annotated[list[UploadFile], File()],
) -> schemas.CaseOut:
    """Step 2: the frames captured while the challenge was performed (JPEG, in order).
    Verified, to review, or a 422 with the reason and the tries left."""
    case = _case_id(case_id)
    uploads = [read_upload(frame, db.settings) for frame in _within_limit(frames, db.settings)]
    return case_out(service.submit_face(db, session.account.id, case, uploads))


def _within_limit(frames: list[UploadFile], settings: Settings) -> list[UploadFile]:
    if len(frames) > settings.verification_max_frames:
        raise InvalidInput(
            "liveness.too_many_frames",
            N_("Too many frames were sent (at most {count}). Try again."),
            {"count": settings.verification_max_frames},
        )
    return frames


@router.post("/face-check", response_model=schemas.FaceCheckOut)
def face_check_start(session: SessionDep, db: DbDep) -> schemas.FaceCheckOut:
    """A fresh face check for a verified person (a forgotten payment password is reset
    with one, as well as an SMS code): the challenge to perform."""
    check = db.run(lambda tx: service.start_face_check(tx, session.account.id))
    return schemas.FaceCheckOut(
        id=check.id, challenge=list(check.challenge), expires_at=check.expires_at
    )


@router.post("/face-check/{check_id}", status_code=204)
def face_check_submit(
    check_id: str,
    session: SessionDep,
    db: DbDep,
    frames: Annotated[list[UploadFile], File()],
) -> None:
    """The frames of the face check; 204 when it passed, else a 422 with the reason."""
    check = _case_id(check_id)
    uploads = [read_upload(frame, db.settings) for frame in _within_limit(frames, db.settings)]
    service.submit_face_check(db, session.account.id, check, uploads)


@router.get(
    "/identity",
    response_model=schemas.VerifiedIdentityOut,
    responses={404: {"description": "Not verified yet (verification.not_verified)."}},
)
def verified(session: SessionDep, db: DbDep) -> schemas.VerifiedIdentityOut:
    """The verified name, nationality and masked passport number."""
    found = db.run(lambda tx: service.verified_identity(tx, session.account.id))
    if found is None:
        raise NotFound("verification.not_verified", N_("This account is not verified."))
    return schemas.VerifiedIdentityOut(
        name=found.name,
        nationality=found.nationality,
        document_number=found.document_masked,
        method=found.method,
        method_label=identity.verification_method_label(found.method) or "",
        verified_at=found.verified_at,
    )


def _case_id(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError as error:
        raise NotFound("verification.no_case", N_("There is no such verification.")) from error
