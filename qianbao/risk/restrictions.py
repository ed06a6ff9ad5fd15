"""Restrictions and freezes: what a risk rule or a reviewer can do to an account, what
the person sees, and how they appeal.

- **restricted**: no money out (no paying, no transfers); money may still come in.
- **frozen**: no money movement at all; money that arrives is held.

The rules are data (thresholds in settings), evaluated where the facts are (the wallet
calls ``impose`` when a rule fires). A person sees what happened and what to do: verify
their real name, or send documents (the passport page, a selfie holding the passport, a
card statement), which land in the risk officers' queue; a risk officer lifts or keeps
the restriction. Every change is recorded with who and why (the staff audit log), and the
person gets an SMS.

A freeze on an account holding more than ``QIANBAO_FREEZE_TWO_PERSON_RELEASE_ABOVE`` is
released by two people: the first risk officer approves, a second, different one
releases. How much a freeze holds is the wallet's to say (it builds on risk, so it tells
us through ``on_measure_held``); with nobody to say, every freeze takes two.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from PIL import Image
from sqlalchemy import bindparam, select

from qianbao import audit
from qianbao.db import Database, Tx
from qianbao.errors import Conflict, Forbidden, InvalidInput, NotFound
from qianbao.i18n import N_
from qianbao.identity import service as identity
from qianbao.identity.phone import PhoneNumber
from qianbao.money import Money
from qianbao.risk.models import AccountRestriction, AppealDocument, RestrictionAppeal
from qianbao.sealing import Keyring, Sealed
from qianbao.text_guard import check_shown_text

# The same safe image intake and re-encoding as verification's own uploads.
from qianbao.verification import images
from qianbao.verification.analysis import shrink, to_jpeg

KINDS: Final = ("restricted", "frozen")
CNY: Final = "CNY"
DOCUMENT_KINDS: Final = ("passport_page", "selfie_with_passport", "card_statement")
REASONS: Final = {
    "card_velocity": N_(
        "Many card payments were made in a short time from an account that is not verified."
    ),
    "shared_card": N_("The same card is used by several accounts."),
    "reviewer": N_("A reviewer restricted the account after a check."),
    "risk_officer": N_("A risk officer restricted the account after a check."),
}
WHAT_TO_DO: Final = N_(
    "Verify your real name, or send us your documents (your passport's photo page, a "
    "selfie holding the passport, and a statement of the card) and a reviewer will check "
    "them, usually within 48 hours."
)
WHAT_TO_DO_VERIFIED: Final = N_(
    "Send us your documents (your passport's photo page, a selfie holding the passport, "
    "and a statement of the card) and a reviewer will check them, usually within 48 hours."
)


def what_to_do(*, verified: bool) -> str:
    """The advice (a msgid) for a restricted person: verifying is a way out only for
    someone not yet verified."""
    return WHAT_TO_DO_VERIFIED if verified else WHAT_TO_DO


_SMS: Final = {
    "restricted": N_("Your account is restricted ({reason}). Open the app to see what to do."),
    "frozen": N_("Your account is frozen ({reason}). Open the app to see what to do."),
    "lifted": N_("The restriction on your account is lifted. Thank you."),
    "kept": N_(
        "After checking your documents, the restriction on your account stays. Reason: {note}"
    ),
}


@dataclass(frozen=True)
class RestrictionView:
    id: uuid.UUID
    kind: str
    reason: str
    reason_text: str  # a msgid
    created_at: datetime
    appeal_status: str | None


def active(tx: Tx, user_id: uuid.UUID) -> RestrictionView | None:
    """The account's strongest restriction in force (a freeze before a restriction)."""
    rows = list(
        tx.session.scalars(
            select(AccountRestriction).where(
                AccountRestriction.user_id == user_id, AccountRestriction.lifted_at.is_(None)
            )
        )
    )
    if not rows:
        return None
    row = max(rows, key=lambda r: (r.kind == "frozen", r.created_at))
    appeal = tx.session.scalar(
        select(RestrictionAppeal.status)
        .where(RestrictionAppeal.restriction_id == row.id)
        .order_by(RestrictionAppeal.created_at.desc())
        .limit(1)
    )
    return RestrictionView(
        row.id, row.kind, row.reason, REASONS.get(row.reason, row.reason), row.created_at, appeal
    )


# Every payment and transfer asks, and nearly every account has none: one statement
# built once, and the full view only when something is in force.
_ANY_IN_FORCE: Final = (
    select(AccountRestriction.id)
    .where(
        AccountRestriction.user_id == bindparam("user_id"), AccountRestriction.lifted_at.is_(None)
    )
    .limit(1)
)


def refuse_money_out(tx: Tx, user_id: uuid.UUID) -> None:
    """Raise if the account may not pay or send money."""
    if tx.read(_ANY_IN_FORCE, {"user_id": user_id}).first() is None:
        return
    found = active(tx, user_id)
    if found is None:
        return
    message = (
        N_("Your account is frozen, so no money can move. Open Wallet to see what to do.")
        if found.kind == "frozen"
        else N_(
            "Your account is restricted, so no money can leave it. Open Wallet to see what to do."
        )
    )
    raise Forbidden(f"account.{found.kind}", message, details={"reason": found.reason})


def is_frozen(tx: Tx, user_id: uuid.UUID) -> bool:
    if tx.read(_ANY_IN_FORCE, {"user_id": user_id}).first() is None:
        return False  # the common case, from one built-once read (every transfer asks)
    found = active(tx, user_id)
    return found is not None and found.kind == "frozen"


def impose(
    tx: Tx,
    user_id: uuid.UUID,
    kind: str,
    reason: str,
    *,
    imposed_by: str,
    note: str = "",
) -> uuid.UUID:
    """Restrict or freeze (once: the same kind in force is not imposed twice)."""
    if kind not in KINDS:
        raise InvalidInput("restriction.kind", N_("A restriction is 'restricted' or 'frozen'."))
    existing = tx.session.scalar(
        select(AccountRestriction.id).where(
            AccountRestriction.user_id == user_id,
            AccountRestriction.kind == kind,
            AccountRestriction.lifted_at.is_(None),
        )
    )
    if existing is not None:
        return existing
    row = AccountRestriction(
        user_id=user_id,
        kind=kind,
        reason=reason,
        imposed_by=imposed_by,
        note=note.strip()[:2000],
        created_at=tx.now(),
    )
    tx.session.add(row)
    tx.session.flush()
    audit.record(
        tx, imposed_by, "restriction.imposed", f"restriction:{row.id}", note, {"kind": kind}
    )
    identity.tell(tx, user_id, _SMS[kind], msgid_params={"reason": REASONS.get(reason, reason)})
    return row.id


def impose_by_officer(
    tx: Tx, staff_id: uuid.UUID, number: PhoneNumber, kind: str, note: str
) -> uuid.UUID:
    """A risk officer restricts or freezes an account by its mobile number, saying why
    (the back-office page and the staff API both come here)."""
    if not note.strip():
        raise InvalidInput("restriction.note_required", N_("Say why in the note."))
    check_shown_text("note", note)  # the person and other staff read it
    account = identity.account_by_phone(tx, number)
    return impose(
        tx, account.id, kind, "risk_officer", imposed_by=audit.staff_actor(staff_id), note=note
    )


# --- release: one risk officer, or two above the threshold -----------------------------

HeldMeasure = Callable[[Tx, uuid.UUID], int]
_measures: list[HeldMeasure] = []


def on_measure_held(measure: HeldMeasure) -> None:
    """``measure(tx, user_id)``: the CNY fen an account holds (balance and held money)."""
    if measure not in _measures:
        _measures.append(measure)


def held_by(tx: Tx, user_id: uuid.UUID) -> Money | None:
    """What a freeze on the account holds; None when no wallet is there to say."""
    if not _measures:
        return None
    return Money(CNY, sum(measure(tx, user_id) for measure in _measures))


def needs_two(tx: Tx, kind: str, held: Money | None) -> bool:
    """Whether releasing this takes a second risk officer."""
    threshold = Money.of(CNY, tx.settings.freeze_two_person_release_above)
    return kind == "frozen" and (held is None or held.minor > threshold.minor)


def release(tx: Tx, restriction_id: uuid.UUID, staff_id: uuid.UUID, note: str) -> bool:
    """A risk officer lifts a restriction or freeze, saying why. True when it is lifted;
    False when the freeze holds more than the threshold and this was the first of the
    two approvals it takes (the second must come from someone else)."""
    note = note.strip()
    if not note:
        raise InvalidInput("restriction.note_required", N_("Say why in the note."))
    row = tx.session.get(AccountRestriction, restriction_id, with_for_update=True)
    if row is None:
        raise NotFound("restriction.not_found", N_("No such restriction."))
    if row.lifted_at is not None:
        raise Conflict("restriction.lifted", N_("This restriction has already been lifted."))
    return _release(tx, row, staff_id, note)


def _release(tx: Tx, row: AccountRestriction, staff_id: uuid.UUID, note: str) -> bool:
    held = held_by(tx, row.user_id)
    actor, subject = audit.staff_actor(staff_id), f"restriction:{row.id}"
    details: dict[str, object] = {"kind": row.kind, "held_fen": held.minor if held else None}
    if needs_two(tx, row.kind, held):
        if row.release_approved_by is None:
            row.release_approved_by, row.release_approved_at = staff_id, tx.now()
            audit.record(tx, actor, "freeze.release_approved", subject, note, details)
            return False
        if row.release_approved_by == staff_id:
            raise Conflict(
                "freeze.second_approver",
                N_(
                    "You approved this release already: a second, different risk officer "
                    "must release this freeze."
                ),
            )
        details["first_approver"] = audit.staff_actor(row.release_approved_by)
    row.lifted_at, row.lifted_by, row.lift_note = tx.now(), actor, note[:2000]
    audit.record(tx, actor, "restriction.lifted", subject, note, details)
    identity.tell(tx, row.user_id, _SMS["lifted"])
    return True


@dataclass(frozen=True)
class RestrictionRow:
    id: uuid.UUID
    user_id: uuid.UUID
    user_phone: str
    kind: str
    reason: str
    imposed_by: str
    note: str
    created_at: datetime
    lifted_at: datetime | None
    held: Money | None
    needs_two: bool
    release_approved_by: uuid.UUID | None


def in_force(tx: Tx) -> list[RestrictionRow]:
    """Every restriction and freeze not lifted, oldest first."""
    rows = tx.session.scalars(
        select(AccountRestriction)
        .where(AccountRestriction.lifted_at.is_(None))
        .order_by(AccountRestriction.created_at)
        .limit(500)
    )
    return [_row(tx, row) for row in rows]


def of_person(tx: Tx, user_id: uuid.UUID) -> list[RestrictionRow]:
    """A person's restrictions, lifted ones too, newest first."""
    rows = tx.session.scalars(
        select(AccountRestriction)
        .where(AccountRestriction.user_id == user_id)
        .order_by(AccountRestriction.created_at.desc())
    )
    return [_row(tx, row) for row in rows]


def restriction(tx: Tx, restriction_id: uuid.UUID) -> RestrictionRow:
    """One restriction, lifted or not (what the staff API answers after a change)."""
    row = tx.session.get(AccountRestriction, restriction_id)
    if row is None:
        raise NotFound("restriction.not_found", N_("No such restriction."))
    return _row(tx, row)


def _row(tx: Tx, row: AccountRestriction) -> RestrictionRow:
    held = held_by(tx, row.user_id)
    return RestrictionRow(
        id=row.id,
        user_id=row.user_id,
        user_phone=identity.get_account(tx, row.user_id).phone.international(),
        kind=row.kind,
        reason=row.reason,
        imposed_by=row.imposed_by,
        note=row.note,
        created_at=row.created_at,
        lifted_at=row.lifted_at,
        held=held,
        needs_two=needs_two(tx, row.kind, held),
        release_approved_by=row.release_approved_by,
    )


def appeal(
    db: Database,
    user_id: uuid.UUID,
    documents: Mapping[str, bytes],
    message: str,
) -> uuid.UUID:
    """The person's documents against their restriction, sealed, to the review queue."""
    check_shown_text("message", message)  # a reviewer reads it
    if not documents:
        raise InvalidInput("appeal.documents", N_("Send at least one document."))
    checked = {}
    for kind, data in documents.items():
        if kind not in DOCUMENT_KINDS:
            raise InvalidInput("appeal.document_kind", N_("Unknown kind of document."))
        picture = images.decode_upload(
            data,
            max_bytes=db.settings.verification_max_upload_bytes,
            max_pixels=db.settings.verification_max_pixels,
        )
        checked[kind] = _jpeg(picture)

    def submit(tx: Tx) -> uuid.UUID:
        found = active(tx, user_id)
        if found is None:
            raise Conflict("appeal.nothing", N_("Your account has no restriction to appeal."))
        if found.appeal_status == "pending":
            raise Conflict("appeal.pending", N_("Your documents are already being checked."))
        row = RestrictionAppeal(
            restriction_id=found.id,
            user_id=user_id,
            message=message.strip()[:2000],
            status="pending",
            created_at=tx.now(),
        )
        tx.session.add(row)
        tx.session.flush()
        keyring = Keyring.from_settings(tx.settings)
        for kind, jpeg in checked.items():
            sealed = keyring.seal(jpeg, _context(row.id, kind))
            tx.session.add(
                AppealDocument(
                    appeal_id=row.id, kind=kind, key_id=sealed.key_id, sealed=sealed.blob
                )
            )
        return row.id

    return db.run(submit)


@dataclass(frozen=True)
class AppealView:
    id: uuid.UUID
    user_phone: str
    kind: str
    reason: str
    message: str
    status: str
    created_at: datetime
    documents: list[tuple[uuid.UUID, str]]
    restriction_id: uuid.UUID
    release_approved_by: uuid.UUID | None  # the first of two approvals, when it takes two


def pending_appeals(tx: Tx) -> list[AppealView]:
    rows = tx.session.scalars(
        select(RestrictionAppeal)
        .where(RestrictionAppeal.status == "pending")
        .order_by(RestrictionAppeal.created_at)
    )
    return [_appeal_view(tx, row) for row in rows]


def get_appeal(tx: Tx, appeal_id: uuid.UUID) -> AppealView:
    row = tx.session.get(RestrictionAppeal, appeal_id)
    if row is None:
        raise NotFound("appeal.not_found", N_("No such appeal."))
    return _appeal_view(tx, row)


def appeal_document(tx: Tx, appeal_id: uuid.UUID, document_id: uuid.UUID) -> bytes:
    row = tx.session.get(AppealDocument, document_id)
    if row is None or row.appeal_id != appeal_id:
        raise NotFound("appeal.document_not_found", N_("No such document."))
    keyring = Keyring.from_settings(tx.settings)
    return keyring.open(Sealed(row.key_id, row.sealed), _context(appeal_id, row.kind))


def decide_appeal(
    tx: Tx, appeal_id: uuid.UUID, staff_id: uuid.UUID, lift: bool, note: str
) -> AppealView:
    """A reviewer lifts the restriction or keeps it, saying why; recorded and told."""
    note = note.strip()
    if not note:
        raise InvalidInput("appeal.note_required", N_("Say why in the note."))
    row = tx.session.get(RestrictionAppeal, appeal_id, with_for_update=True)
    if row is None:
        raise NotFound("appeal.not_found", N_("No such appeal."))
    if row.status != "pending":
        raise Conflict("appeal.decided", N_("This appeal has already been decided."))
    if lift:
        restriction = tx.session.get(AccountRestriction, row.restriction_id, with_for_update=True)
        assert restriction is not None
        if restriction.lifted_at is None and not _release(tx, restriction, staff_id, note):
            return _appeal_view(tx, row)  # stays pending until a second risk officer lifts
    else:
        identity.tell(tx, row.user_id, _SMS["kept"], {"note": note[:200]})
    row.status = "lifted" if lift else "kept"
    row.decided_at, row.decided_by, row.decision_note = tx.now(), staff_id, note[:2000]
    audit.record(tx, audit.staff_actor(staff_id), f"appeal.{row.status}", f"appeal:{row.id}", note)
    return _appeal_view(tx, row)


def _appeal_view(tx: Tx, row: RestrictionAppeal) -> AppealView:
    restriction = tx.session.get(AccountRestriction, row.restriction_id)
    assert restriction is not None
    documents = tx.session.execute(
        select(AppealDocument.id, AppealDocument.kind).where(AppealDocument.appeal_id == row.id)
    ).all()
    return AppealView(
        id=row.id,
        user_phone=identity.get_account(tx, row.user_id).phone.international(),
        kind=restriction.kind,
        reason=restriction.reason,
        message=row.message,
        status=row.status,
        created_at=row.created_at,
        documents=[(doc.id, doc.kind) for doc in documents],
        restriction_id=restriction.id,
        release_approved_by=restriction.release_approved_by,
    )


def _context(appeal_id: uuid.UUID, kind: str) -> bytes:
    return f"appeal-document:{appeal_id}:{kind}".encode()


def _jpeg(picture: object) -> bytes:
    assert isinstance(picture, Image.Image)
    return to_jpeg(shrink(picture, 1600))
