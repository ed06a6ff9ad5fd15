"""Pages of real-name verification: the three options, then "Verify face" in three steps
(1 passport, 2 face, 3 result). One address shows whichever step the case is at, so the
flow can be left and resumed. Every step works without script (file uploads); with
script the camera takes the photo page and the face frames, and fills the same forms.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable
from typing import Annotated, Final

from fastapi import APIRouter, File, Request, UploadFile
from fastapi.responses import Response

from qianbao.db import Database
from qianbao.errors import QianbaoError
from qianbao.i18n import N_
from qianbao.identity import service as identity
from qianbao.identity.service import CurrentSession
from qianbao.verification import service
from qianbao.verification.api import read_upload
from qianbao.verification.service import CaseView
from qianbao.web.pages import CsrfField, DbDep, signed_in_or_home
from qianbao.web.render import check_csrf, page, public_url, redirect

router = APIRouter(include_in_schema=False)
OPTIONS: Final = "/me/verify"
FLOW: Final = "/me/verify/passport-face"

ACTION_PROMPTS: Final = {
    "turn_left": N_("Turn your head to your left"),
    "turn_right": N_("Turn your head to your right"),
    "blink": N_("Blink your eyes"),
    "smile": N_("Smile"),
}
STEP_OF_STATUS: Final = {"passport": 1, "confirm": 1, "face": 2}
REVIEW_EXPLAINED: Final = {
    "face.borderline": N_(
        "The comparison of your face with the passport photo was not clear enough for an "
        "automatic answer, so a person will check it."
    ),
    "document.in_use": N_(
        "This passport already verifies another Qianbao account. A person will check the "
        "case; if the other account is yours, you may be asked to prove it."
    ),
}
REJECTED_EXPLAINED: Final = service.REJECT_REASONS


@router.get(OPTIONS)
def options_page(request: Request, db: DbDep) -> Response:
    """The identity verification page: three ways to verify."""
    session = signed_in_or_home(request, db)
    if isinstance(session, Response):
        return session
    case = db.run(lambda tx: service.current_case(tx, session.account.id))
    return page(
        request,
        "verify_options.html",
        account=session.account,
        tab="me",
        case=case,
        verified=identity.is_verified(session.account.verification_level),
    )


@router.post(f"{FLOW}/start")
def start(request: Request, db: DbDep, csrf: CsrfField = "") -> Response:
    check_csrf(request, csrf)
    session = signed_in_or_home(request, db)
    if isinstance(session, Response):
        return session
    # Already verified, or in review: the flow page shows that outcome instead.
    with contextlib.suppress(QianbaoError):
        db.run(lambda tx: service.start_case(tx, session.account.id))
    return redirect(request, FLOW)


# Each step's title names the flow the person chose: after the chip is read, the
# confirm, face and result steps are still the chip flow, not "Verify face".
FLOW_TITLES: Final = {
    "passport_face": N_("Verify face"),
    "passport_chip": N_("Passport chip & face verification"),
}


@router.get(FLOW)
def flow_page(request: Request, db: DbDep) -> Response:
    """Whichever step the person's case is at."""
    session = signed_in_or_home(request, db)
    if isinstance(session, Response):
        return session
    case = db.run(lambda tx: service.current_case(tx, session.account.id))
    if case is None:
        return redirect(request, OPTIONS)
    if case.method == "passport_chip" and case.status == "passport":
        return redirect(request, CHIP)
    return _step_page(request, session, case)


def _step_page(
    request: Request,
    session: CurrentSession,
    case: CaseView,
    error: QianbaoError | None = None,
    status: int = 200,
) -> Response:
    template = {
        "passport": "verify_passport.html",
        "confirm": "verify_confirm.html",
        "face": "verify_face.html",
    }.get(case.status, "verify_result.html")
    return page(
        request,
        template,
        status=status,
        account=session.account,
        tab="me",
        case=case,
        step=STEP_OF_STATUS.get(case.status, 3),
        error=error,
        prompts=[ACTION_PROMPTS[action] for action in case.challenge or ()],
        challenge=list(case.challenge or ()),
        review_explained=REVIEW_EXPLAINED.get(case.reason or ""),
        rejected_explained=REJECTED_EXPLAINED.get(case.reason or ""),
        method_label=identity.verification_method_label(session.account.verification_level),
        flow_title=FLOW_TITLES.get(case.method, FLOW_TITLES["passport_face"]),
        max_frames=request.app.state.settings.verification_max_frames,
    )


@router.post(f"{FLOW}/photo-page")
def photo_page(
    request: Request,
    db: DbDep,
    image: Annotated[UploadFile, File()],
    csrf: CsrfField = "",
) -> Response:
    check_csrf(request, csrf)
    return _act(request, db, lambda user, case: _submit_page(db, user, case, image))


@router.post(f"{FLOW}/confirm")
def confirm(request: Request, db: DbDep, csrf: CsrfField = "") -> Response:
    check_csrf(request, csrf)
    return _act(
        request, db, lambda user, case: db.run(lambda tx: service.confirm_document(tx, user, case))
    )


@router.post(f"{FLOW}/retake")
def retake(request: Request, db: DbDep, csrf: CsrfField = "") -> Response:
    check_csrf(request, csrf)
    return _act(
        request, db, lambda user, case: db.run(lambda tx: service.retake_page(tx, user, case))
    )


@router.post(f"{FLOW}/challenge")
def challenge(request: Request, db: DbDep, csrf: CsrfField = "") -> Response:
    check_csrf(request, csrf)
    return _act(
        request, db, lambda user, case: db.run(lambda tx: service.issue_challenge(tx, user, case))
    )


@router.post(f"{FLOW}/face")
def face(
    request: Request,
    db: DbDep,
    frames: Annotated[list[UploadFile], File()],
    csrf: CsrfField = "",
) -> Response:
    check_csrf(request, csrf)
    return _act(request, db, lambda user, case: _submit_face(db, user, case, frames))


@router.post(f"{FLOW}/cancel")
def cancel(request: Request, db: DbDep, csrf: CsrfField = "") -> Response:
    check_csrf(request, csrf)
    session = signed_in_or_home(request, db)
    if isinstance(session, Response):
        return session
    db.run(lambda tx: service.cancel_case(tx, session.account.id))
    return redirect(request, OPTIONS)


# --- passport chip & face: the chip step (the rest is the flow above) -------------------
# A browser cannot talk to the chip: the page says what the app on a phone (NFC) or
# `qianbao chip read` on a computer with a contactless reader does, and moves on to the
# face step once one of them has sent the chip's files to the API.

CHIP: Final = "/me/verify/passport-chip"


@router.get(CHIP)
def chip_page(request: Request, db: DbDep) -> Response:
    session = signed_in_or_home(request, db)
    if isinstance(session, Response):
        return session
    case = db.run(lambda tx: service.current_case(tx, session.account.id))
    if case is not None and case.method == "passport_chip" and case.status != "passport":
        return redirect(request, FLOW)  # the chip was read: confirm, then the face
    ready = case is not None and case.method == "passport_chip"
    return page(
        request,
        "verify_chip.html",
        account=session.account,
        tab="me",
        case=case if ready else None,
        step=1,
        server=public_url(request, ""),
    )


@router.post(CHIP + "/start")
def chip_start(request: Request, db: DbDep, csrf: CsrfField = "") -> Response:
    check_csrf(request, csrf)
    session = signed_in_or_home(request, db)
    if isinstance(session, Response):
        return session
    with contextlib.suppress(QianbaoError):
        db.run(lambda tx: service.start_case(tx, session.account.id, "passport_chip"))
    return redirect(request, CHIP)


# --- a fresh face check (before a verified person's payment-password reset) -----------

FACE_CHECK: Final = "/me/security/face-check"


@router.get(FACE_CHECK)
def face_check_page(request: Request, db: DbDep, passed: str | None = None) -> Response:
    session = signed_in_or_home(request, db)
    if isinstance(session, Response):
        return session
    return page(
        request,
        "face_check.html",
        account=session.account,
        tab="me",
        check=None,
        passed=bool(passed),
        max_frames=request.app.state.settings.verification_max_frames,
    )


@router.post(FACE_CHECK)
def face_check_start(request: Request, db: DbDep, csrf: CsrfField = "") -> Response:
    check_csrf(request, csrf)
    session = signed_in_or_home(request, db)
    if isinstance(session, Response):
        return session
    error: QianbaoError | None = None
    check = None
    try:
        check = db.run(lambda tx: service.start_face_check(tx, session.account.id))
    except QianbaoError as refused:
        error = refused
    return page(
        request,
        "face_check.html",
        status=error.status if error else 200,
        account=session.account,
        tab="me",
        check=check,
        error=error,
        passed=False,
        challenge=list(check.challenge) if check else [],
        prompts=[ACTION_PROMPTS[action] for action in check.challenge] if check else [],
        max_frames=request.app.state.settings.verification_max_frames,
    )


@router.post(FACE_CHECK + "/{check_id}")
def face_check_submit(
    request: Request,
    db: DbDep,
    check_id: uuid.UUID,
    frames: Annotated[list[UploadFile], File()],
    csrf: CsrfField = "",
) -> Response:
    check_csrf(request, csrf)
    session = signed_in_or_home(request, db)
    if isinstance(session, Response):
        return session
    kept = frames[: db.settings.verification_max_frames + 1]
    try:
        uploads = [read_upload(frame, db.settings) for frame in kept]
        service.submit_face_check(db, session.account.id, check_id, uploads)
    except QianbaoError as error:
        return page(
            request,
            "face_check.html",
            status=error.status,
            account=session.account,
            tab="me",
            check=None,
            error=error,
            passed=False,
            max_frames=db.settings.verification_max_frames,
        )
    return redirect(request, FACE_CHECK + "?passed=1")


# --- inside ----------------------------------------------------------------------------

Step = Callable[[uuid.UUID, uuid.UUID], object]


def _act(request: Request, db: Database, step: Step) -> Response:
    """Run a step on the person's current case; a refusal redraws the step with its
    reason (and the status code the API would give), success shows the next step."""
    session = signed_in_or_home(request, db)
    if isinstance(session, Response):
        return session
    case = db.run(lambda tx: service.current_case(tx, session.account.id))
    if case is None:
        return redirect(request, OPTIONS)
    try:
        step(session.account.id, case.id)
    except QianbaoError as error:
        fresh = db.run(lambda tx: service.current_case(tx, session.account.id))
        return _step_page(request, session, fresh or case, error, status=error.status)
    return redirect(request, FLOW)


def _submit_page(db: Database, user: uuid.UUID, case: uuid.UUID, image: UploadFile) -> CaseView:
    return service.submit_photo_page(db, user, case, read_upload(image, db.settings))


def _submit_face(
    db: Database, user: uuid.UUID, case: uuid.UUID, frames: list[UploadFile]
) -> CaseView:
    # One more than allowed is enough to be refused for it; the rest is not read.
    kept = frames[: db.settings.verification_max_frames + 1]
    return service.submit_face(db, user, case, [read_upload(f, db.settings) for f in kept])
