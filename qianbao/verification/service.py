"""Use cases of real-name verification by passport and face ("Verify face").

A case walks through the steps of the flow:

- passport: waiting for the photo page; a good read moves it to confirm;
- confirm: the person checks the name and nationality read (or retakes the photo);
- face: waiting for the liveness video. Live and a match: verified. Borderline, or the
  passport already verifies another account: review. Not live or no match: it stays at
  face, and the try counts against the daily cap;
- review: a reviewer approves (verified) or rejects (rejected), with a reason.

The heavy work (OCR, faces, liveness) is done by ``analysis.py`` outside any transaction;
the functions here are short transactions around it. Before each try the person's daily
cap is checked and the try recorded in its own transaction (``admit_try``), so parallel
requests cannot exceed it; a liveness challenge answers one try only, so a recorded
video cannot be replayed against it.

Personal data is sealed (AES-256-GCM, ``qianbao/sealing.py``), bound to its case and
slot so a sealed value cannot be moved to another row. What this module returns to the
API and pages is masked unless the reader is the reviewer.
"""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Any, Final

from sqlalchemy import delete, or_, select

from qianbao.db import Database, Tx
from qianbao.errors import Conflict, InvalidInput, NotFound, RecordedRefusal
from qianbao.i18n import N_
from qianbao.identity import security as identity_security
from qianbao.identity import service as identity
from qianbao.identity import staff
from qianbao.identity.codes import keyed_hash
from qianbao.observability import metrics
from qianbao.sealing import Keyring, Sealed
from qianbao.throttling import ratelimit
from qianbao.verification import analysis, chip, chip_authentication, liveness, trust_store
from qianbao.verification.analysis import FaceAssessment, PageReading
from qianbao.verification.models import (
    OPEN_STATUSES,
    FaceCheck,
    ReviewDecision,
    VerificationAttempt,
    VerificationCase,
    VerificationImage,
    VerifiedDocument,
)
from qianbao.verification.mrz import PassportMrz, masked_document_number
from qianbao.verification.trust import TrustStore

METHOD: Final = "passport_face"
METHODS: Final = ("passport_face", "passport_chip")
# ICAO 9303-11 active authentication: the terminal sends an 8-byte random challenge.
AA_CHALLENGE_BYTES: Final = 8
DAY: Final = timedelta(days=1)

REJECT_REASONS: Final = {
    "face_mismatch": N_("The face does not match the passport photo."),
    "document_unreadable": N_("The passport photo page cannot be read or checked."),
    "document_in_use": N_("This passport already verifies another account."),
    "suspected_spoof": N_("The face video was not of a live person."),
    "document_not_genuine": N_("The passport does not appear to be genuine."),
    "other": N_("Another reason (see the note)."),
}
APPROVE_REASONS: Final = {
    "face_matches": N_("The face matches the passport photo."),
    "document_owner_confirmed": N_("The person proved the passport is theirs."),
    "other": N_("Another reason (see the note)."),
}
REVIEW_REASONS: Final = {
    "face.borderline": N_("The face comparison score is near the threshold."),
    "document.in_use": N_("The passport already verifies another account."),
}

_NO_CASE: Final = N_("There is no verification in progress. Start again from the beginning.")
_WRONG_STEP: Final = N_("This step is not the current one. Continue from where you left off.")


@dataclass(frozen=True)
class Document:
    """What the photo page says, opened for its owner (or a reviewer)."""

    surname: str
    given_names: str
    document_number: str
    nationality: str
    issuing_state: str
    birth_date: date
    expiry_date: date
    sex: str

    @property
    def full_name(self) -> str:
        return f"{self.surname} {self.given_names}".strip()

    @property
    def masked_number(self) -> str:
        return masked_document_number(self.document_number)


@dataclass(frozen=True)
class CaseView:
    id: uuid.UUID
    method: str
    status: str
    document: Document | None
    challenge: tuple[str, ...] | None
    challenge_expires_at: datetime | None
    reason: str | None
    failure: str | None  # the last face check's failure code, while the case stays open
    tries_left: int
    next_try_at: datetime | None
    aa_challenge: str | None = None  # hex, for the phone to send to the chip


@dataclass(frozen=True)
class VerifiedIdentity:
    name: str
    nationality: str
    document_masked: str
    method: str
    verified_at: datetime


# --- the two heavy steps: a try is admitted, worked on outside the database, recorded ---


def submit_photo_page(
    db: Database, user_id: uuid.UUID, case_id: uuid.UUID, data: bytes
) -> CaseView:
    """Step 1: read the photo page; on success the person confirms what was read."""
    db.run(lambda tx: admit_try(tx, user_id, case_id, "page"), isolation="read committed")
    reading = analysis.read_photo_page(data, db.settings, db.clock.now().date())
    return db.run(lambda tx: record_page(tx, user_id, case_id, reading))


@dataclass(frozen=True)
class ChipProofs:
    """What the phone sent besides the files: the chip's answers, a photo of the page."""

    aa_signature: bytes | None = None
    ca_response: bytes | None = None
    page_photo: bytes | None = None


def submit_chip(
    db: Database,
    user_id: uuid.UUID,
    case_id: uuid.UUID,
    files: chip.ChipFiles,
    proofs: ChipProofs,
) -> CaseView:
    """Step 1 by chip: the files a phone read over NFC, and the chip's answer to this
    case's challenge (active or chip authentication); on success the person confirms
    what was read. A photo of the data page, when sent, must show the chip's zone."""
    db.run(lambda tx: admit_try(tx, user_id, case_id, "page"), isolation="read committed")
    answers, store = db.run(lambda tx: _chip_inputs(tx, user_id, case_id, proofs))
    today = db.clock.now().date()
    if proofs.page_photo is not None:
        printed = analysis.read_printed_zone(proofs.page_photo, db.settings, today)
        answers = replace(answers, printed_mrz=printed)
    reading = analysis.read_chip(files, store, answers, db.settings, today)
    return db.run(lambda tx: record_page(tx, user_id, case_id, reading))


def _chip_inputs(
    tx: Tx, user_id: uuid.UUID, case_id: uuid.UUID, proofs: ChipProofs
) -> tuple[analysis.ChipAnswers, TrustStore]:
    """The challenges the chip answered, used up (a fresh AA challenge replaces the old
    one; a new chip-authentication challenge must be asked for), and the trust store."""
    case = _own_case(tx, user_id, case_id)
    if case.method != "passport_chip" or case.aa_challenge is None:
        raise Conflict("verification.wrong_step", _WRONG_STEP)
    challenge = case.aa_challenge
    case.aa_challenge = secrets.token_bytes(AA_CHALLENGE_BYTES)
    answers = analysis.ChipAnswers(
        aa_challenge=challenge,
        aa_signature=proofs.aa_signature,
        ca_pending=_take_chip_authentication(tx, case),
        ca_response=proofs.ca_response,
    )
    return answers, trust_store.load(tx)


@dataclass(frozen=True)
class ChipAuthenticationView:
    """For the phone: run chip authentication with this key, then send ``command``."""

    protocol_oid: str
    key_id: int | None
    ephemeral_public_key: str  # hex, an uncompressed EC point
    command: str  # hex, the wrapped command APDU to send first after CA
    expires_at: datetime


def start_chip_authentication(
    db: Database, user_id: uuid.UUID, case_id: uuid.UUID, dg14: bytes, dg1: bytes
) -> ChipAuthenticationView:
    """A fresh chip-authentication challenge for the chip whose DG14 and DG1 these are
    (refused when DG14 offers nothing Qianbao can run). A new one replaces the last."""
    offer = chip_authentication.offer_of(dg14)
    if offer is None:
        raise chip_authentication.unsupported()
    challenge, pending = chip_authentication.start(offer, dg14, dg1)
    return db.run(lambda tx: _keep_chip_authentication(tx, user_id, case_id, challenge, pending))


def _keep_chip_authentication(
    tx: Tx,
    user_id: uuid.UUID,
    case_id: uuid.UUID,
    challenge: chip_authentication.Challenge,
    pending: chip_authentication.Pending,
) -> ChipAuthenticationView:
    case = _own_case(tx, user_id, case_id)
    if case.method != "passport_chip" or case.status != "passport":
        raise Conflict("verification.wrong_step", _WRONG_STEP)
    sealed = Keyring.from_settings(tx.settings).seal(pending.to_bytes(), _chip_context(case.id))
    case.chip_auth_sealed, case.chip_auth_issued_at = sealed.encode(), tx.now()
    ttl = timedelta(seconds=tx.settings.verification_chip_auth_ttl_seconds)
    return ChipAuthenticationView(
        protocol_oid=challenge.protocol_oid,
        key_id=challenge.key_id,
        ephemeral_public_key=challenge.ephemeral_public_key.hex(),
        command=challenge.command.hex(),
        expires_at=case.chip_auth_issued_at + ttl,
    )


def _take_chip_authentication(tx: Tx, case: VerificationCase) -> chip_authentication.Pending | None:
    """The pending chip-authentication challenge, used up; None if none or expired."""
    sealed, issued_at = case.chip_auth_sealed, case.chip_auth_issued_at
    case.chip_auth_sealed = case.chip_auth_issued_at = None
    if sealed is None or issued_at is None:
        return None
    ttl = timedelta(seconds=tx.settings.verification_chip_auth_ttl_seconds)
    if issued_at + ttl <= tx.now():
        return None
    opened = Keyring.from_settings(tx.settings).open(Sealed.decode(sealed), _chip_context(case.id))
    return chip_authentication.Pending.from_bytes(opened)


def _chip_context(case_id: uuid.UUID) -> bytes:
    return b"chip-authentication\x1f" + case_id.bytes


def submit_face(
    db: Database, user_id: uuid.UUID, case_id: uuid.UUID, uploads: Sequence[bytes]
) -> CaseView:
    """Step 2: the liveness frames; verified, to review, or refused with the reason."""
    frames = analysis.decode_frames(uploads, db.settings)  # bad files cost no try
    db.run(lambda tx: admit_try(tx, user_id, case_id, "face"), isolation="read committed")
    challenge, embedding = db.run(lambda tx: take_challenge(tx, user_id, case_id))
    assessment = analysis.assess_face(frames, challenge, embedding, db.settings)
    return db.run(lambda tx: record_face(tx, user_id, case_id, assessment))


# --- the person's steps --------------------------------------------------------------------


def current_case(tx: Tx, user_id: uuid.UUID) -> CaseView | None:
    """The person's latest case that is not cancelled, if any."""
    case = _latest_case(tx, user_id)
    return None if case is None else _view(tx, case)


def start_case(tx: Tx, user_id: uuid.UUID, method: str = METHOD) -> CaseView:
    """Resume the open case of this method, or open a new one at step 1 (an open case of
    the other method is cancelled: one verification at a time)."""
    account = identity.get_account(tx, user_id)
    if identity.is_verified(account.verification_level):
        raise Conflict("verification.already_verified", N_("Your account is already verified."))
    case = _latest_case(tx, user_id)
    if case is not None and case.status == "review":
        raise Conflict(
            "verification.in_review",
            N_("Your verification is being reviewed. You will get an SMS with the outcome."),
        )
    if method not in METHODS:
        raise InvalidInput("verification.method", N_("Unknown way of verifying."))
    if case is not None and case.status in OPEN_STATUSES and case.method != method:
        case.status, case.updated_at = "cancelled", tx.now()
        case = None
    if case is None or case.status not in OPEN_STATUSES:
        now = tx.now()
        case = VerificationCase(
            user_id=user_id, method=method, status="passport", created_at=now, updated_at=now
        )
        if method == "passport_chip":
            case.aa_challenge = secrets.token_bytes(AA_CHALLENGE_BYTES)
        tx.session.add(case)
        tx.session.flush()
    return _view(tx, case)


def cancel_case(tx: Tx, user_id: uuid.UUID) -> None:
    case = _latest_case(tx, user_id)
    if case is not None and case.status in OPEN_STATUSES:
        case.status = "cancelled"
        case.updated_at = tx.now()


def admit_try(tx: Tx, user_id: uuid.UUID, case_id: uuid.UUID, step: str) -> None:
    """Count a try against the daily cap, or refuse it, before any work is spent on it."""
    ratelimit.claim(tx, [f"kyc:{user_id}"])  # one person's tries queue here
    case = _own_case(tx, user_id, case_id, lock=False)
    expected = {"page": ("passport", "confirm"), "face": ("face",)}[step]
    if case.status not in expected:
        raise Conflict("verification.wrong_step", _WRONG_STEP)
    _refuse_over_cap(tx, user_id)
    tx.session.add(
        VerificationAttempt(
            user_id=user_id, case_id=case.id, step=step, outcome="started", attempted_at=tx.now()
        )
    )


def record_page(tx: Tx, user_id: uuid.UUID, case_id: uuid.UUID, reading: PageReading) -> CaseView:
    """Keep the read page (sealed) and ask the person to confirm what was read."""
    case = _own_case(tx, user_id, case_id)
    if case.status not in ("passport", "confirm"):
        raise Conflict("verification.wrong_step", _WRONG_STEP)
    keyring = Keyring.from_settings(tx.settings)
    mrz = reading.mrz
    sealed = keyring.seal(_document_json(mrz), _document_context(case.id))
    case.document_key_id, case.document_sealed = sealed.key_id, sealed.blob
    case.document_hash = document_hash(tx, mrz.issuing_state, mrz.document_number)
    case.document_masked = masked_document_number(mrz.document_number)
    case.nationality, case.issuing_state = mrz.nationality, mrz.issuing_state
    embedding = keyring.seal(reading.portrait_embedding, _embedding_context(case.id))
    case.portrait_key_id, case.portrait_embedding_sealed = embedding.key_id, embedding.blob
    _replace_images(tx, keyring, case, "page", [reading.page_jpeg] if reading.page_jpeg else [])
    _replace_images(tx, keyring, case, "portrait", [reading.portrait_jpeg])
    case.status, case.confirmed_at, case.updated_at = "confirm", None, tx.now()
    return _view(tx, case)


def retake_page(tx: Tx, user_id: uuid.UUID, case_id: uuid.UUID) -> CaseView:
    """The read was wrong: back to step 1 (the stored page is replaced by the next one)."""
    case = _own_case(tx, user_id, case_id)
    if case.status not in ("confirm", "face"):
        raise Conflict("verification.wrong_step", _WRONG_STEP)
    case.status, case.confirmed_at, case.challenge = "passport", None, None
    case.updated_at = tx.now()
    return _view(tx, case)


def confirm_document(tx: Tx, user_id: uuid.UUID, case_id: uuid.UUID) -> CaseView:
    """The person says the name and nationality read are theirs: on to the face."""
    case = _own_case(tx, user_id, case_id)
    if case.status != "confirm":
        raise Conflict("verification.wrong_step", _WRONG_STEP)
    case.status, case.confirmed_at, case.updated_at = "face", tx.now(), tx.now()
    return _view(tx, case)


def issue_challenge(tx: Tx, user_id: uuid.UUID, case_id: uuid.UUID) -> CaseView:
    """A fresh random liveness challenge (two actions); it answers one try only."""
    case = _own_case(tx, user_id, case_id)
    if case.status != "face":
        raise Conflict("verification.wrong_step", _WRONG_STEP)
    case.challenge = ",".join(liveness.new_challenge())
    case.challenge_issued_at = case.updated_at = tx.now()
    return _view(tx, case)


def take_challenge(tx: Tx, user_id: uuid.UUID, case_id: uuid.UUID) -> tuple[tuple[str, str], bytes]:
    """The challenge to check the frames against and the portrait's embedding; the
    challenge is used up, whatever the outcome of the check."""
    case = _own_case(tx, user_id, case_id)
    if case.status != "face":
        raise Conflict("verification.wrong_step", _WRONG_STEP)
    expires = _challenge_expiry(tx, case)
    if case.challenge is None or expires is None or expires <= tx.now():
        raise Conflict(
            "liveness.challenge_expired",
            N_("The on-screen instructions have expired. Start the face check again."),
        )
    first, second = case.challenge.split(",")
    case.challenge = None
    assert case.portrait_key_id is not None
    assert case.portrait_embedding_sealed is not None
    embedding = Keyring.from_settings(tx.settings).open(
        Sealed(case.portrait_key_id, case.portrait_embedding_sealed), _embedding_context(case.id)
    )
    return (first, second), embedding


def record_face(
    tx: Tx, user_id: uuid.UUID, case_id: uuid.UUID, assessment: FaceAssessment
) -> CaseView:
    """The face check's outcome: verified, to review, or refused with its reason (the
    refusal commits: the try and its frames are kept)."""
    case = _own_case(tx, user_id, case_id)
    if case.status != "face":
        raise Conflict("verification.wrong_step", _WRONG_STEP)
    keyring = Keyring.from_settings(tx.settings)
    _replace_images(tx, keyring, case, "selfie", list(assessment.frames_jpeg))
    case.face_distance = assessment.distance
    case.liveness_report = assessment.report
    case.updated_at = tx.now()
    _mark_last_attempt(tx, case, assessment.reason or "match")
    if assessment.outcome in ("not_live", "no_match"):
        case.reason = assessment.reason
        assert assessment.reason is not None
        assert assessment.message is not None
        tries_left, next_try = _tries_left(tx, user_id)
        metrics.verification_outcome(case.method, "refused")
        raise RecordedRefusal(
            assessment.reason,
            assessment.message,
            assessment.params,
            details={
                "tries_left": tries_left,
                "next_try_at": next_try.isoformat() if next_try else None,
            },
            status=422,
        )
    if _document_in_use(tx, case):
        _to_review(tx, case, "document.in_use")
    elif assessment.outcome == "review":
        _to_review(tx, case, "face.borderline")
    else:
        _verify(tx, case)
    return _view(tx, case)


def verified_identity(tx: Tx, user_id: uuid.UUID) -> VerifiedIdentity | None:
    """The facts the certification center shows once a person is verified."""
    row = tx.session.scalar(select(VerifiedDocument).where(VerifiedDocument.user_id == user_id))
    if row is None:
        return None
    case = tx.session.get(VerificationCase, row.case_id)
    assert case is not None
    document = _open_document(tx, case)
    assert document is not None
    return VerifiedIdentity(
        name=document.full_name,
        nationality=document.nationality,
        document_masked=document.masked_number,
        method=case.method,
        verified_at=row.verified_at,
    )


@dataclass(frozen=True)
class VerifiedEvidence:
    """How a passport-verified person was verified, with the passport opened: what
    Log in with Qianbao tells a shop the person allowed (openplatform/oidc/claims.py)."""

    method: str  # passport_face (photo page) | passport_chip
    document: Document
    verified_at: datetime
    reviewed: bool  # a reviewer compared the face and approved (not the machine alone)


def verified_evidence(tx: Tx, user_id: uuid.UUID) -> VerifiedEvidence | None:
    """The verified passport and how it was checked; None when not passport-verified."""
    row = tx.session.scalar(select(VerifiedDocument).where(VerifiedDocument.user_id == user_id))
    case = None if row is None else tx.session.get(VerificationCase, row.case_id)
    document = None if case is None else _open_document(tx, case)
    if row is None or case is None or document is None:
        return None
    approved = tx.session.scalar(
        select(ReviewDecision.id).where(
            ReviewDecision.case_id == case.id, ReviewDecision.decision == "approve"
        )
    )
    return VerifiedEvidence(case.method, document, row.verified_at, approved is not None)


def verified_holder(tx: Tx, user_id: uuid.UUID) -> tuple[str, str] | None:
    """(name, passport number) of a passport-verified person: a bank card they add must
    be held under them."""
    case = _verified_case(tx, user_id)
    document = None if case is None else _open_document(tx, case)
    return None if document is None else (document.full_name, document.document_number)


def verified_birth_date(tx: Tx, user_id: uuid.UUID) -> date | None:
    """The birth date of a verified person (the payment password may not be it)."""
    row = tx.session.scalar(select(VerifiedDocument).where(VerifiedDocument.user_id == user_id))
    if row is None:
        return None
    case = tx.session.get(VerificationCase, row.case_id)
    document = None if case is None else _open_document(tx, case)
    return None if document is None else document.birth_date


def document_hash(tx: Tx, issuing_state: str, document_number: str) -> str:
    """Finds a passport used twice without keeping its number in clear."""
    return keyed_hash(tx.settings.hmac_key(), "passport", issuing_state, document_number)


# --- a fresh face check of a verified person ---------------------------------------------


@dataclass(frozen=True)
class FaceCheckView:
    id: uuid.UUID
    challenge: tuple[str, ...]
    expires_at: datetime


def start_face_check(tx: Tx, user_id: uuid.UUID) -> FaceCheckView:
    """A liveness challenge to prove, against the verified portrait, that it is still the
    verified person (a payment-password reset needs one)."""
    case = _verified_case(tx, user_id)
    if case is None or case.portrait_embedding_sealed is None:
        raise Conflict(
            "face_check.not_verified",
            N_("A face check needs an account verified by passport and face."),
        )
    check = FaceCheck(
        user_id=user_id, challenge=",".join(liveness.new_challenge()), issued_at=tx.now()
    )
    tx.session.add(check)
    tx.session.flush()
    ttl = timedelta(seconds=tx.settings.verification_challenge_ttl_seconds)
    assert check.challenge is not None
    return FaceCheckView(check.id, tuple(check.challenge.split(",")), check.issued_at + ttl)


def submit_face_check(
    db: Database, user_id: uuid.UUID, check_id: uuid.UUID, uploads: Sequence[bytes]
) -> None:
    """Passes (and records the pass for identity) or refuses with the reason."""
    frames = analysis.decode_frames(uploads, db.settings)
    challenge, embedding = db.run(lambda tx: _take_face_check(tx, user_id, check_id))
    assessment = analysis.assess_face(frames, challenge, embedding, db.settings)
    db.run(lambda tx: _record_face_check(tx, user_id, check_id, assessment))


def _take_face_check(
    tx: Tx, user_id: uuid.UUID, check_id: uuid.UUID
) -> tuple[tuple[str, str], bytes]:
    ratelimit.claim(tx, [f"kyc:{user_id}"])
    check = tx.session.get(FaceCheck, check_id, with_for_update=True)
    if check is None or check.user_id != user_id:
        raise NotFound("face_check.not_found", N_("There is no such face check."))
    ttl = timedelta(seconds=tx.settings.verification_challenge_ttl_seconds)
    if check.challenge is None or check.issued_at + ttl <= tx.now():
        raise Conflict(
            "liveness.challenge_expired",
            N_("The on-screen instructions have expired. Start the face check again."),
        )
    case = _verified_case(tx, user_id)
    if case is None or case.portrait_key_id is None or case.portrait_embedding_sealed is None:
        raise Conflict(
            "face_check.not_verified",
            N_("A face check needs an account verified by passport and face."),
        )
    _refuse_over_cap(tx, user_id)
    tx.session.add(
        VerificationAttempt(
            user_id=user_id,
            case_id=case.id,
            step="recheck",
            outcome="started",
            attempted_at=tx.now(),
        )
    )
    first, second = check.challenge.split(",")
    check.challenge = None  # one try per challenge
    embedding = Keyring.from_settings(tx.settings).open(
        Sealed(case.portrait_key_id, case.portrait_embedding_sealed), _embedding_context(case.id)
    )
    return (first, second), embedding


def _record_face_check(
    tx: Tx, user_id: uuid.UUID, check_id: uuid.UUID, assessment: FaceAssessment
) -> None:
    check = tx.session.get(FaceCheck, check_id, with_for_update=True)
    assert check is not None
    check.finished_at, check.face_distance = tx.now(), assessment.distance
    check.outcome = assessment.reason or "match"
    if assessment.outcome == "match":
        identity_security.record_face_check_pass(tx, user_id)
        return
    message = assessment.message or N_(
        "The face check was not clear enough. Face a bright light, look straight at the "
        "camera and try again."
    )
    raise RecordedRefusal(
        assessment.reason or "face.borderline", message, assessment.params, status=422
    )


def _verified_case(tx: Tx, user_id: uuid.UUID) -> VerificationCase | None:
    row = tx.session.scalar(select(VerifiedDocument).where(VerifiedDocument.user_id == user_id))
    return None if row is None else tx.session.get(VerificationCase, row.case_id)


# --- review ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReviewItem:
    id: uuid.UUID
    reason: str
    nationality: str | None
    document_masked: str | None
    waiting_since: datetime


@dataclass(frozen=True)
class DecisionView:
    reviewer: str
    decision: str
    reason: str
    note: str
    decided_at: datetime


@dataclass(frozen=True)
class ReviewCase:
    id: uuid.UUID
    status: str
    reason: str | None
    document: Document | None
    face_distance: float | None
    liveness: dict[str, Any] | None
    images: list[tuple[uuid.UUID, str, int]]  # id, kind, position
    decisions: list[DecisionView]
    match_threshold: float
    review_margin: float


def review_queue(tx: Tx) -> list[ReviewItem]:
    cases = tx.session.scalars(
        select(VerificationCase)
        .where(VerificationCase.status == "review")
        .order_by(VerificationCase.updated_at)
    )
    return [
        ReviewItem(c.id, c.reason or "", c.nationality, c.document_masked, c.updated_at)
        for c in cases
    ]


def review_case(tx: Tx, case_id: uuid.UUID) -> ReviewCase:
    case = tx.session.get(VerificationCase, case_id)
    if case is None:
        raise NotFound("verification.case_not_found", N_("No such verification case."))
    images = tx.session.execute(
        select(VerificationImage.id, VerificationImage.kind, VerificationImage.position)
        .where(VerificationImage.case_id == case.id)
        .order_by(VerificationImage.kind, VerificationImage.position)
    ).all()
    decisions = tx.session.scalars(
        select(ReviewDecision)
        .where(ReviewDecision.case_id == case.id)
        .order_by(ReviewDecision.decided_at)
    )
    return ReviewCase(
        id=case.id,
        status=case.status,
        reason=case.reason,
        document=_open_document(tx, case),
        face_distance=case.face_distance,
        liveness=json.loads(case.liveness_report) if case.liveness_report else None,
        images=[(row.id, row.kind, row.position) for row in images],
        decisions=[
            DecisionView(
                staff.staff_name(tx, d.reviewer_id), d.decision, d.reason, d.note, d.decided_at
            )
            for d in decisions
        ],
        match_threshold=tx.settings.face_match_threshold,
        review_margin=tx.settings.face_review_margin,
    )


def case_image(tx: Tx, case_id: uuid.UUID, image_id: uuid.UUID) -> bytes:
    image = tx.session.get(VerificationImage, image_id)
    if image is None or image.case_id != case_id:
        raise NotFound("verification.image_not_found", N_("No such image."))
    return Keyring.from_settings(tx.settings).open(
        Sealed(image.key_id, image.sealed), _image_context(case_id, image.kind, image.position)
    )


def decide(
    tx: Tx, reviewer_id: uuid.UUID, case_id: uuid.UUID, decision: str, reason: str, note: str
) -> ReviewCase:
    """A reviewer's decision on a case in review; recorded whatever it is."""
    reasons = APPROVE_REASONS if decision == "approve" else REJECT_REASONS
    if decision not in ("approve", "reject") or reason not in reasons:
        raise InvalidInput("review.reason", N_("Choose a decision and one of its reasons."))
    note = note.strip()
    if reason == "other" and not note:
        raise InvalidInput("review.note_required", N_("Say why in the note."))
    if len(note) > 2000:
        raise InvalidInput("review.note_too_long", N_("The note is too long (2,000 at most)."))
    case = tx.session.get(VerificationCase, case_id, with_for_update=True)
    if case is None:
        raise NotFound("verification.case_not_found", N_("No such verification case."))
    if case.status != "review":
        raise Conflict("review.decided", N_("This case has already been decided."))
    if decision == "approve" and _document_in_use(tx, case):
        raise Conflict(
            "document.in_use",
            N_("This passport already verifies another account; it cannot verify two."),
        )
    tx.session.add(
        ReviewDecision(
            case_id=case.id,
            reviewer_id=reviewer_id,
            decision=decision,
            reason=reason,
            note=note,
            decided_at=tx.now(),
        )
    )
    if decision == "approve":
        _verify(tx, case)
    else:
        case.status, case.reason = "rejected", reason
        metrics.verification_outcome(case.method, "rejected")
        case.decided_at = case.updated_at = tx.now()
        identity.tell(
            tx, case.user_id, REJECTED_SMS, msgid_params={"reason": REJECT_REASONS[reason]}
        )
    return review_case(tx, case.id)


# --- data protection -------------------------------------------------------------------


def purge_images(tx: Tx) -> tuple[int, int]:
    """Delete the images of up to 500 cases decided (or abandoned) longer ago than the
    retention period: (cases, images). The decision, the masked facts and a verified
    person's document stay."""
    cutoff = tx.now() - timedelta(days=tx.settings.verification_image_retention_days)
    finished = (
        select(VerificationCase.id)
        .where(
            VerificationCase.images_purged_at.is_(None),
            or_(
                VerificationCase.decided_at < cutoff,
                VerificationCase.updated_at < cutoff,
            ),
            or_(
                VerificationCase.decided_at.is_not(None),
                VerificationCase.status.in_(("cancelled", *OPEN_STATUSES)),
            ),
        )
        .limit(500)
    )
    case_ids = list(tx.session.scalars(finished))
    if not case_ids:
        return 0, 0
    removed = tx.session.execute(
        delete(VerificationImage).where(VerificationImage.case_id.in_(case_ids))
    )
    for case in tx.session.scalars(
        select(VerificationCase).where(VerificationCase.id.in_(case_ids))
    ):
        case.images_purged_at = tx.now()
        if case.status != "verified":
            # A verified person's document and portrait embedding (a 512-byte template,
            # not an image) stay: the certification center shows the first, and the face
            # check before a payment-password reset compares with the second.
            case.document_key_id = case.document_sealed = None
            case.portrait_key_id = case.portrait_embedding_sealed = None
    return len(case_ids), int(getattr(removed, "rowcount", 0) or 0)


def rotate_keys(tx: Tx, batch: int = 200) -> int:
    """Reseal up to ``batch`` sealed values that are not under the current key."""
    keyring = Keyring.from_settings(tx.settings)
    current = keyring.current_id
    done = 0
    images = tx.session.scalars(
        select(VerificationImage).where(VerificationImage.key_id != current).limit(batch)
    )
    for image in images:
        context = _image_context(image.case_id, image.kind, image.position)
        fresh = keyring.reseal(Sealed(image.key_id, image.sealed), context)
        image.key_id, image.sealed = fresh.key_id, fresh.blob
        done += 1
    cases = tx.session.scalars(
        select(VerificationCase)
        .where(
            or_(
                VerificationCase.document_key_id != current,
                VerificationCase.portrait_key_id != current,
            )
        )
        .limit(batch)
    )
    for case in cases:
        if case.document_key_id is not None and case.document_sealed is not None:
            fresh = keyring.reseal(
                Sealed(case.document_key_id, case.document_sealed), _document_context(case.id)
            )
            case.document_key_id, case.document_sealed = fresh.key_id, fresh.blob
        if case.portrait_key_id is not None and case.portrait_embedding_sealed is not None:
            fresh = keyring.reseal(
                Sealed(case.portrait_key_id, case.portrait_embedding_sealed),
                _embedding_context(case.id),
            )
            case.portrait_key_id, case.portrait_embedding_sealed = fresh.key_id, fresh.blob
        done += 1
    return done


# --- inside ------------------------------------------------------------------------------

# The same text whichever route verified the person (passport or bank card).
VERIFIED_SMS: Final = identity.VERIFIED_SMS
REVIEW_SMS: Final = N_(
    "Your real-name verification needs a manual review. We will send you an SMS "
    "with the outcome, usually within 48 hours."
)
REJECTED_SMS: Final = N_(
    "Your real-name verification was not approved. Reason: {reason} You can try again in the app."
)


def _verify(tx: Tx, case: VerificationCase) -> None:
    assert case.document_hash is not None
    now = tx.now()
    case.status, case.reason, case.decided_at, case.updated_at = "verified", None, now, now
    metrics.verification_outcome(case.method, "verified")
    tx.session.add(
        VerifiedDocument(
            document_hash=case.document_hash,
            user_id=case.user_id,
            case_id=case.id,
            verified_at=now,
        )
    )
    # The wallet hears of it (identity.on_level_set): refunds held while unverified are
    # the person's now.
    identity.set_verification_level(tx, case.user_id, case.method)
    identity.tell(tx, case.user_id, VERIFIED_SMS)


def _to_review(tx: Tx, case: VerificationCase, reason: str) -> None:
    case.status, case.reason, case.updated_at = "review", reason, tx.now()
    metrics.verification_outcome(case.method, "review")
    identity.tell(tx, case.user_id, REVIEW_SMS)


def _document_in_use(tx: Tx, case: VerificationCase) -> bool:
    owner = tx.session.scalar(
        select(VerifiedDocument.user_id).where(VerifiedDocument.document_hash == case.document_hash)
    )
    return owner is not None and owner != case.user_id


def _refuse_over_cap(tx: Tx, user_id: uuid.UUID) -> None:
    tries_left, next_try = _tries_left(tx, user_id)
    if tries_left > 0:
        return
    assert next_try is not None
    error = ratelimit.refusal(
        "verification.daily_cap",
        N_("You have used all of today's verification tries. Try again in {wait}."),
        (next_try - tx.now()).total_seconds(),
        quota=tx.settings.verification_attempts_per_day,
        window=DAY,
    )
    error.details["next_try_at"] = next_try.isoformat()
    raise error


def _tries_left(tx: Tx, user_id: uuid.UUID) -> tuple[int, datetime | None]:
    """Tries left in the 24 hours behind now, and when one comes back if none is left."""
    since = tx.now() - DAY
    times = list(
        tx.session.scalars(
            select(VerificationAttempt.attempted_at)
            .where(VerificationAttempt.user_id == user_id, VerificationAttempt.attempted_at > since)
            .order_by(VerificationAttempt.attempted_at)
        )
    )
    cap = tx.settings.verification_attempts_per_day
    left = max(0, cap - len(times))
    next_try = times[len(times) - cap] + DAY if left == 0 and times else None
    return left, next_try


def _mark_last_attempt(tx: Tx, case: VerificationCase, outcome: str) -> None:
    attempt = tx.session.scalar(
        select(VerificationAttempt)
        .where(VerificationAttempt.case_id == case.id, VerificationAttempt.step == "face")
        .order_by(VerificationAttempt.attempted_at.desc())
        .limit(1)
    )
    if attempt is not None:
        attempt.outcome = outcome[:64]


def _latest_case(tx: Tx, user_id: uuid.UUID) -> VerificationCase | None:
    return tx.session.scalar(
        select(VerificationCase)
        .where(VerificationCase.user_id == user_id, VerificationCase.status != "cancelled")
        .order_by(VerificationCase.created_at.desc())
        .limit(1)
    )


def _own_case(
    tx: Tx, user_id: uuid.UUID, case_id: uuid.UUID, *, lock: bool = True
) -> VerificationCase:
    case = tx.session.get(VerificationCase, case_id, with_for_update=lock)
    if case is None or case.user_id != user_id:
        raise NotFound("verification.no_case", _NO_CASE)
    return case


def _view(tx: Tx, case: VerificationCase) -> CaseView:
    tries_left, next_try = _tries_left(tx, case.user_id)
    challenge = tuple(case.challenge.split(",")) if case.challenge else None
    return CaseView(
        id=case.id,
        method=case.method,
        status=case.status,
        document=_open_document(tx, case) if case.status != "passport" else None,
        challenge=challenge,
        challenge_expires_at=_challenge_expiry(tx, case) if challenge else None,
        reason=case.reason,
        failure=case.reason if case.status == "face" else None,
        tries_left=tries_left,
        next_try_at=next_try,
        aa_challenge=case.aa_challenge.hex()
        if case.aa_challenge and case.status == "passport"
        else None,
    )


def _challenge_expiry(tx: Tx, case: VerificationCase) -> datetime | None:
    if case.challenge_issued_at is None:
        return None
    ttl = timedelta(seconds=tx.settings.verification_challenge_ttl_seconds)
    return case.challenge_issued_at + ttl


def _document_json(mrz: PassportMrz) -> bytes:
    return json.dumps(
        {
            "surname": mrz.surname,
            "given_names": mrz.given_names,
            "document_number": mrz.document_number,
            "nationality": mrz.nationality,
            "issuing_state": mrz.issuing_state,
            "birth_date": mrz.birth_date.isoformat(),
            "expiry_date": mrz.expiry_date.isoformat(),
            "sex": mrz.sex,
        }
    ).encode()


def _open_document(tx: Tx, case: VerificationCase) -> Document | None:
    if case.document_key_id is None or case.document_sealed is None:
        return None
    opened = Keyring.from_settings(tx.settings).open(
        Sealed(case.document_key_id, case.document_sealed), _document_context(case.id)
    )
    fields = json.loads(opened)
    return Document(
        surname=fields["surname"],
        given_names=fields["given_names"],
        document_number=fields["document_number"],
        nationality=fields["nationality"],
        issuing_state=fields["issuing_state"],
        birth_date=date.fromisoformat(fields["birth_date"]),
        expiry_date=date.fromisoformat(fields["expiry_date"]),
        sex=fields["sex"],
    )


def _replace_images(
    tx: Tx, keyring: Keyring, case: VerificationCase, kind: str, jpegs: Sequence[bytes]
) -> None:
    tx.session.execute(
        delete(VerificationImage).where(
            VerificationImage.case_id == case.id, VerificationImage.kind == kind
        )
    )
    now = tx.now()
    for position, jpeg in enumerate(jpegs):
        sealed = keyring.seal(jpeg, _image_context(case.id, kind, position))
        tx.session.add(
            VerificationImage(
                case_id=case.id,
                kind=kind,
                position=position,
                key_id=sealed.key_id,
                sealed=sealed.blob,
                created_at=now,
            )
        )
    case.images_purged_at = None


def _document_context(case_id: uuid.UUID) -> bytes:
    return f"kyc-document:{case_id}".encode()


def _embedding_context(case_id: uuid.UUID) -> bytes:
    return f"kyc-portrait-embedding:{case_id}".encode()


def _image_context(case_id: uuid.UUID, kind: str, position: int) -> bytes:
    return f"kyc-image:{case_id}:{kind}:{position}".encode()


# A verified person's birth date may not be their payment password.
identity_security.on_birth_date_asked(verified_birth_date)
