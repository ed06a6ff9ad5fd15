"""Transfers between people: money from one person's balance to another's, "like PayPal".

The sender names the recipient by mobile number (with its country code; without one, a
number of the sender's own country) or by a proven email address, and sees the
recipient's masked verified name before confirming ("** JOHN (verified)"), so that a
mistyped number does not send money to a stranger. ``policy.py`` decides: the sender's
level must allow sending, the recipient's receiving, within the limits per transfer, per
day and per year (the balance limits count payments and transfers together). A
restricted sender may not send; a frozen account neither sends nor receives.

Confirmed with the payment password and idempotent per sender's key: the first try
writes one ledger operation (``p2p:<sender>:<key>``) and one row; a retry with the same
key and the same request gets that transfer back and moves nothing; the same key with
another request is refused. The recipient gets an SMS; both see it in their history.

Masked names: a name of one word (a Chinese name, a single name) keeps its last
character ("张小明" -> "**明"); a name of several words (a passport's "SURNAME GIVEN
NAMES") keeps its last word ("SMITH JOHN" -> "** JOHN"). A person verified by bank card
alone has no name on record and is shown by their masked number.
"""

from __future__ import annotations

import re
import unicodedata
import urllib.parse
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Final, Literal

from sqlalchemy import or_, select

from qianbao import batching
from qianbao.db import Database, Tx
from qianbao.errors import Conflict, Forbidden, InvalidInput, NotFound
from qianbao.i18n import N_, current_language, translate
from qianbao.identity import security
from qianbao.identity import service as identity
from qianbao.identity.phone import NON_GEOGRAPHIC, parse_mobile
from qianbao.money import Money
from qianbao.policy import LIMIT_LABELS, Rights
from qianbao.risk import restrictions
from qianbao.standing import standing
from qianbao.throttling import ratelimit
from qianbao.verification import service as verification
from qianbao.wallet import limits
from qianbao.wallet.ledger import service as ledger
from qianbao.wallet.payments import service as payments
from qianbao.wallet.transfers import receive_codes
from qianbao.wallet.transfers.models import PersonTransfer

CNY: Final = payments.CNY
MAX_KEY_CHARS: Final = 80
_KEY = re.compile(r"[A-Za-z0-9._:\-]{1,80}")
_AMOUNT = re.compile(r"[+-]?(\d{1,12}(\.\d*)?|\.\d+)")

SMS_RECEIVED: Final = N_("{sender} sent you {amount}. Open Wallet to see it.")
SMS_RECEIVED_NOTE: Final = N_(
    "{sender} sent you {amount} with the note “{note}”. Open Wallet to see it."
)


# --- values ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Recipient:
    id: uuid.UUID
    name: str  # masked verified name; "" when none is on record (bank card only)
    phone: str  # masked mobile number

    def shown(self) -> str:
        return shown_party(self.name, self.phone)


@dataclass(frozen=True)
class Remaining:
    """What is left of one of policy.py's limits (money, or a number of transfers)."""

    key: str  # the Rights field
    limit: Money | int
    left: Money | int

    def label(self) -> str:
        return translate(LIMIT_LABELS[self.key])

    def left_text(self) -> str:
        return _text(self.left)

    def limit_text(self) -> str:
        return _text(self.limit)


def _text(amount: Money | int) -> str:
    return amount.format() if isinstance(amount, Money) else str(amount)


@dataclass(frozen=True)
class Allowance:
    balance: Money  # what the sender has available now
    may_send: bool
    per_transfer: Money | None
    remaining: tuple[Remaining, ...]

    def most(self) -> Money:
        """The most one transfer may be now (never below zero)."""
        candidates = [self.balance.minor]
        if self.per_transfer is not None:
            candidates.append(self.per_transfer.minor)
        for line in self.remaining:
            if isinstance(line.left, Money):
                candidates.append(line.left.minor)
            elif line.left <= 0:
                candidates.append(0)
        return Money(CNY, max(0, min(candidates)) if self.may_send else 0)


@dataclass(frozen=True)
class Quote:
    """What the sender confirms: who, how much, the note, and what is left after."""

    recipient: Recipient
    amount: Money
    note: str
    allowance: Allowance


@dataclass(frozen=True)
class TransferView:
    id: uuid.UUID
    direction: Literal["sent", "received"]
    counterparty_name: str
    counterparty_phone: str
    amount: Money
    note: str
    created_at: datetime
    replayed: bool = False  # this answer is a retry's: the money moved once, before

    def counterparty(self) -> str:
        return shown_party(self.counterparty_name, self.counterparty_phone)


def shown_party(name: str, phone: str) -> str:
    """How a party appears, in the current language: "** JOHN (verified)"."""
    if name:
        return translate(N_("{name} (verified)"), {"name": name})
    return translate(N_("{phone} (verified)"), {"phone": phone})


def masked_name(name: str) -> str:
    """A verified name with all but its end masked (see the module docstring)."""
    words = name.split()
    if not words:
        return ""
    if len(words) > 1:
        return f"** {words[-1]}"
    word = words[0]
    return "*" * (len(word) - 1) + word[-1]


# --- input ---------------------------------------------------------------------------


def parse_amount(text: str) -> Money:
    """A typed CNY amount, refused clearly: empty, not a number, zero, negative, more
    decimals than fen, too large."""
    cleaned = (text or "").strip().replace(",", "").replace(" ", "").removeprefix("¥")
    if not cleaned:
        raise InvalidInput("transfer.amount_missing", N_("Enter the amount to send."))
    if not _AMOUNT.fullmatch(cleaned):
        raise InvalidInput(
            "transfer.amount_format",
            N_("Write an amount in CNY with at most 2 decimals, like 288.00."),
        )
    try:
        value = Decimal(cleaned)
    except InvalidOperation as error:  # the pattern already excludes this
        raise InvalidInput(
            "transfer.amount_format",
            N_("Write an amount in CNY with at most 2 decimals, like 288.00."),
        ) from error
    if value < 0:
        raise InvalidInput("transfer.amount_negative", N_("An amount to send cannot be negative."))
    if value == 0:
        raise InvalidInput("transfer.amount_zero", N_("Send an amount more than zero."))
    if value * 100 != (value * 100).to_integral_value():
        raise InvalidInput(
            "transfer.amount_precision",
            N_("CNY amounts have at most 2 decimals (fen); {amount} has more."),
            {"amount": cleaned},
        )
    return Money.of(CNY, value)


def clean_note(tx_or_db: Tx | Database, note: str) -> str:
    """The note, trimmed, within the setting's length."""
    limit = tx_or_db.settings.transfer_note_max_chars
    cleaned = " ".join((note or "").split())
    if _has_control_characters(cleaned):
        raise InvalidInput(
            "transfer.note_invalid",
            N_("A note cannot contain control characters. Type it again as plain text."),
        )
    if len(cleaned) > limit:
        raise InvalidInput(
            "transfer.note_too_long",
            N_("A note has at most {limit} characters."),
            {"limit": limit},
        )
    return cleaned


def _has_control_characters(text: str) -> bool:
    """Control and format characters (NUL, escapes, right-to-left overrides): nothing a
    person types on purpose, and they would reach the recipient's SMS and statement."""
    return any(unicodedata.category(character) in ("Cc", "Cf") for character in text)


def check_key(key: str | None) -> str:
    if key is None or not _KEY.fullmatch(key):
        raise InvalidInput(
            "transfer.idempotency_key",
            N_(
                "Each transfer needs an idempotency key of 1 to 80 letters, digits or . _ : - "
                "(the same key again means the same transfer)."
            ),
        )
    return key


# --- the recipient --------------------------------------------------------------------


def find_recipient(tx: Tx, sender_id: uuid.UUID, to: str) -> Recipient:
    """The account that ``to`` names (a mobile number or a proven email address), with
    the masked name the sender will see."""
    return recipient(tx, recipient_id(tx, sender_id, to))


def recipient_id(tx: Tx, sender_id: uuid.UUID, to: str) -> uuid.UUID:
    """The id of the account that ``to`` names; refuses oneself and nobody."""
    text = (to or "").strip()
    if _has_control_characters(text):
        raise InvalidInput(
            "transfer.recipient_invalid",
            N_("Enter the recipient's mobile number (with the country code) or email."),
        )
    if not text:
        raise InvalidInput(
            "transfer.recipient_missing",
            N_("Enter the recipient's mobile number (with the country code) or email."),
        )
    if receive_codes.is_recipient_code(text):
        # A scanned receive code: a random token, not a number to guess at, so no
        # look-up throttle; an unknown one is refused by its own message.
        return _not_self(sender_id, receive_codes.owner(tx, receive_codes.token_in(text)))
    ratelimit.enforce(tx, *_lookup_limits(tx, sender_id))
    found = _email_owner(tx, text) if "@" in text else _phone_owner(tx, sender_id, text)
    if found is None:
        ratelimit.record(tx, _lookup_key(sender_id))
        raise UnknownRecipient(
            "transfer.recipient_unknown",
            N_("No Qianbao account uses this mobile number or email. Check it with the person."),
        )
    return _not_self(sender_id, found)


def _not_self(sender_id: uuid.UUID, found: uuid.UUID) -> uuid.UUID:
    if found == sender_id:
        raise InvalidInput(
            "transfer.to_self", N_("This is your own account. Send money to someone else.")
        )
    return found


class UnknownRecipient(NotFound):
    keeps_changes = True  # the miss counts against the sender's lookups


def _lookup_key(sender_id: uuid.UUID) -> str:
    return f"transfer-unknown-recipient:{sender_id}"


def _lookup_limits(tx: Tx, sender_id: uuid.UUID) -> tuple[ratelimit.Limit, ...]:
    message = N_(
        "Too many numbers or emails that name no account. Check the details with the "
        "person and try again in {wait}."
    )
    key, settings = _lookup_key(sender_id), tx.settings
    return (
        ratelimit.Limit(
            key,
            settings.transfer_unknown_recipients_per_hour,
            timedelta(hours=1),
            "transfer.too_many_unknown",
            message,
        ),
        ratelimit.Limit(
            key,
            settings.transfer_unknown_recipients_per_day,
            timedelta(days=1),
            "transfer.too_many_unknown",
            message,
        ),
    )


def recipient(tx: Tx, user_id: uuid.UUID) -> Recipient:
    account = identity.get_account(tx, user_id)
    found = verification.verified_identity(tx, user_id)
    return Recipient(
        user_id, masked_name(found.name) if found is not None else "", account.phone.masked()
    )


def _email_owner(tx: Tx, text: str) -> uuid.UUID | None:
    user = security.find_login(tx, text, None)  # proven addresses only
    return user.id if user is not None else None


def _own_country(tx: Tx, sender_id: uuid.UUID) -> str:
    """Without "+" or "00", a number is read as one of the sender's own country."""
    own = identity.get_account(tx, sender_id).phone
    return own.region if own.region != NON_GEOGRAPHIC else f"001-{own.country_code}"


def _phone_owner(tx: Tx, sender_id: uuid.UUID, text: str) -> uuid.UUID | None:
    phone = parse_mobile(text, _own_country(tx, sender_id), current_language())
    try:
        return identity.account_by_phone(tx, phone).id
    except NotFound:
        return None


# --- limits ---------------------------------------------------------------------------


def allowance(tx: Tx, user_id: uuid.UUID, rights: Rights | None = None) -> Allowance:
    """The sender's balance and what is left of each limit that applies to a transfer."""
    if rights is None:
        rights = standing(tx, user_id).rights
    used = limits.usage(tx, user_id)
    lines: list[Remaining] = []
    if rights.transfers_per_day is not None:
        left = max(0, rights.transfers_per_day - used.transfers_today)
        lines.append(Remaining("transfers_per_day", rights.transfers_per_day, left))
    # The balance limits count payments from the balance and transfers together.
    spent = {
        "transfer_per_day": used.sent_today,
        "balance_per_day": used.balance_today,
        "balance_per_year": used.balance_this_year,
    }
    for key, amount in spent.items():
        limit: Money | None = getattr(rights, key)
        if limit is not None:
            lines.append(Remaining(key, limit, Money(CNY, max(0, limit.minor - amount))))
    return Allowance(
        balance=_balance(tx, user_id),
        may_send=rights.send_transfers,
        per_transfer=rights.transfer_per_payment,
        remaining=tuple(lines),
    )


def _balance(tx: Tx, user_id: uuid.UUID) -> Money:
    """What the person may spend now (read only: no account is opened for it)."""
    account = payments.balance_account(tx, str(user_id))
    return Money(CNY, ledger.balance(tx, account).available if account else 0)


_OVER_LIMIT: Final[Mapping[str, str]] = {
    "transfer_per_day": N_(
        "This transfer would pass your limit of {limit} in transfers a day: {left} left today."
    ),
    "balance_per_day": N_(
        "This transfer would pass your limit of {limit} a day from your balance (payments "
        "and transfers together): {left} left today."
    ),
    "balance_per_year": N_(
        "This transfer would pass your limit of {limit} a year from your balance (payments "
        "and transfers together): {left} left this year."
    ),
}


def _refuse_over_limits(found: Allowance, amount: Money) -> None:
    if found.per_transfer is not None and amount.minor > found.per_transfer.minor:
        raise Forbidden(
            "transfer.limit_per_transfer",
            N_("One transfer may be at most {limit}."),
            {"limit": found.per_transfer.format()},
            details={"limit": "transfer_per_payment", "left": str(found.per_transfer.major)},
        )
    for line in found.remaining:
        if isinstance(line.left, int):
            if line.left <= 0:
                raise Forbidden(
                    "transfer.limit_count",
                    N_("You have made the {limit} transfers allowed in a day. Try again later."),
                    {"limit": line.limit},
                    details={"limit": line.key, "left": 0},
                )
            continue
        if amount.minor > line.left.minor:
            assert isinstance(line.limit, Money)
            raise Forbidden(
                f"transfer.limit_{line.key}",
                _OVER_LIMIT[line.key],
                {"limit": line.limit.format(), "left": line.left.format()},
                details={"limit": line.key, "left": str(line.left.major)},
            )


# --- checks ---------------------------------------------------------------------------


def _refuse(tx: Tx, sender_id: uuid.UUID, to: Recipient, amount: Money) -> Allowance:
    """Every rule of a transfer but the payment password; returns the sender's allowance
    before it."""
    sender = standing(tx, sender_id).rights
    if not sender.send_transfers:
        raise Forbidden(
            "transfer.sender_not_verified",
            N_(
                "Your account level does not allow sending transfers. Verify your real name "
                "(passport and face, or a mainland bank card) under Me › Verify, then send "
                "again."
            ),
            details={"who": "sender", "verify": "/me/verify"},
        )
    restrictions.refuse_money_out(tx, sender_id)
    if not _may_receive(tx, to.id):
        raise Forbidden(
            "transfer.recipient_not_verified",
            N_(
                "{recipient} cannot receive transfers yet: they must verify their real name "
                "first. Ask them to open Qianbao and verify under Me › Verify."
            ),
            {"recipient": to.phone},
            details={"who": "recipient", "verify": "/me/verify"},
        )
    if restrictions.is_frozen(tx, to.id):
        raise Forbidden(
            "transfer.recipient_frozen",
            N_("The recipient's account is frozen, so it cannot receive money now."),
        )
    found = allowance(tx, sender_id, sender)
    _refuse_over_limits(found, amount)
    if amount.minor > found.balance.minor:
        raise Conflict(
            "transfer.insufficient_balance",
            N_("Your balance is {balance}, less than {amount}."),
            {"balance": found.balance.format(), "amount": amount.format()},
        )
    return found


def _may_receive(tx: Tx, user_id: uuid.UUID) -> bool:
    rights: Rights = standing(tx, user_id).rights
    return rights.receive_transfers


def quote(tx: Tx, sender_id: uuid.UUID, to: str, amount_text: str, note: str) -> Quote:
    """What the sender will confirm, every rule checked (nothing is written)."""
    amount = parse_amount(amount_text)
    cleaned = clean_note(tx, note)
    found = find_recipient(tx, sender_id, to)
    return Quote(found, amount, cleaned, _refuse(tx, sender_id, found, amount))


# --- sending --------------------------------------------------------------------------


def send(
    db: Database,
    sender_id: uuid.UUID,
    to: str,
    amount_text: str,
    note: str,
    payment_password: str,
    idempotency_key: str | None,
    *,
    expected_recipient: uuid.UUID | None = None,
) -> TransferView:
    """Send money, once per key (see the module docstring). The input is checked before
    the payment password, so a typo does not cost one of its tries. ``expected_recipient``
    is the account the sender saw (masked) when confirming: if ``to`` names another one
    now, nothing is sent."""
    key = check_key(idempotency_key)
    amount = parse_amount(amount_text)
    cleaned = clean_note(db, note)

    def run(tx: Tx) -> TransferView:
        # A retry is answered from its key, before anything that may have changed since
        # (the recipient's number, the look-up throttle, the limits). The key names the
        # request as the client sent it: to whom (as typed), how much, with which note.
        digest, replayed = _replay(tx, sender_id, key, to, amount, cleaned)
        if replayed is not None:
            return replayed
        to_id = recipient_id(tx, sender_id, to)
        if expected_recipient is not None and to_id != expected_recipient:
            raise Conflict(
                "transfer.recipient_changed",
                N_(
                    "This number or email now belongs to another account than the one you "
                    "checked. Look at the recipient again before sending."
                ),
            )
        # After the input's checks (a typo costs no try), before anything moves: a wrong
        # entry's count is kept when this transaction ends in its refusal.
        security.check_payment_password(tx, sender_id, payment_password)
        return _send(tx, sender_id, to_id, amount, cleaned, key, digest)

    return batching.run(db, run, isolation="read committed")


def request_digest(tx: Tx, sender_id: uuid.UUID, to: str, amount: Money, note: str) -> str:
    """The digest an idempotency key is bound to: every field of the request that changes
    its effect. The recipient is taken as the client named them (a number in E.164, an
    email in lower case), not as the account it names now, so a retry is recognised even
    if that number has changed hands since."""
    named = _named(tx, sender_id, " ".join(to.split()))
    return ledger.request_hash({"op": "p2p", "to": named, "amount": amount, "note": note})


def _named(tx: Tx, sender_id: uuid.UUID, to: str) -> str:
    if "@" in to:
        return to.casefold()
    try:
        return parse_mobile(to, _own_country(tx, sender_id), current_language()).e164
    except InvalidInput:  # not a number: refused later, after the key is checked
        return to


def _replay(
    tx: Tx, sender_id: uuid.UUID, key: str, to: str, amount: Money, note: str
) -> tuple[str, TransferView | None]:
    digest = request_digest(tx, sender_id, to, amount, note)
    earlier = _by_key(tx, sender_id, key)
    if earlier is None:
        return digest, None
    if earlier.request_hash != digest:
        raise ledger.idempotency_mismatch(key)
    return digest, _view(earlier, sender_id, replayed=True)


def _request(
    sender_id: uuid.UUID, recipient_id: uuid.UUID, amount: Money, note: str
) -> dict[str, Any]:
    return {
        "op": "p2p",
        "sender": sender_id,
        "recipient": recipient_id,
        "amount": amount,
        "note": note,
    }


def _send(
    tx: Tx,
    sender_id: uuid.UUID,
    recipient_id: uuid.UUID,
    amount: Money,
    note: str,
    key: str,
    digest: str,
) -> TransferView:
    # Both wallets first, in one fixed order: the limits and the balance read below stay
    # true until commit, and a retry of this key waits here for its first try.
    payments.claim_wallets(tx, str(sender_id), str(recipient_id))
    request = _request(sender_id, recipient_id, amount, note)
    earlier = _by_key(tx, sender_id, key)
    if earlier is not None:
        if earlier.request_hash != digest:
            raise ledger.idempotency_mismatch(key)
        return _view(earlier, sender_id, replayed=True)
    to = recipient(tx, recipient_id)
    _refuse(tx, sender_id, to, amount)
    debit = payments.account_of(tx, str(sender_id), "user_balance")
    credit = payments.account_of(tx, str(recipient_id), "user_balance")
    receipt = ledger.execute(
        tx,
        f"p2p:{sender_id}:{key}",
        request,
        lambda booking: _move(booking, debit, credit, amount),
    )
    row = _record(tx, sender_id, to, amount, note, key, digest, receipt.operation_id)
    identity.tell(tx, recipient_id, *_sms(row))
    return _view(row, sender_id)


def _move(booking: ledger.Booking, debit: uuid.UUID, credit: uuid.UUID, amount: Money) -> None:
    booking.transfer(debit, credit, amount)


def _record(
    tx: Tx,
    sender_id: uuid.UUID,
    to: Recipient,
    amount: Money,
    note: str,
    key: str,
    digest: str,
    operation_id: uuid.UUID,
) -> PersonTransfer:
    sender = recipient(tx, sender_id)  # the sender as the recipient will see them
    row = PersonTransfer(
        sender_id=sender_id,
        recipient_id=to.id,
        currency=amount.currency,
        amount=amount.minor,
        note=note,
        sender_name=sender.name,
        sender_phone=sender.phone,
        recipient_name=to.name,
        recipient_phone=to.phone,
        idempotency_key=key,
        request_hash=digest,
        ledger_operation_id=operation_id,
        created_at=tx.now(),
    )
    tx.session.add(row)
    tx.session.flush()
    limits.count_transfer(tx, sender_id, row.amount, row.created_at)
    return row


def _sms(row: PersonTransfer) -> tuple[str, dict[str, str]]:
    params = {
        "sender": f"{row.sender_name} {row.sender_phone}".strip(),
        "amount": Money(row.currency, row.amount).format(),
    }
    if row.note:
        return SMS_RECEIVED_NOTE, {**params, "note": row.note}
    return SMS_RECEIVED, params


def _by_key(tx: Tx, sender_id: uuid.UUID, key: str) -> PersonTransfer | None:
    return tx.session.scalar(
        select(PersonTransfer).where(
            PersonTransfer.sender_id == sender_id, PersonTransfer.idempotency_key == key
        )
    )


# --- history --------------------------------------------------------------------------


def user_transfers(
    tx: Tx,
    user_id: uuid.UUID,
    limit: int = 100,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[TransferView]:
    """The person's transfers, sent and received, newest first."""
    query = select(PersonTransfer).where(
        or_(PersonTransfer.sender_id == user_id, PersonTransfer.recipient_id == user_id)
    )
    if since is not None:
        query = query.where(PersonTransfer.created_at >= since)
    if until is not None:
        query = query.where(PersonTransfer.created_at < until)
    rows = tx.session.scalars(query.order_by(PersonTransfer.created_at.desc()).limit(limit))
    return [_view(row, user_id) for row in rows]


def history(
    tx: Tx, user_id: uuid.UUID, limit: int, filters: Mapping[str, Any]
) -> list[TransferView]:
    """The transfers that the payment history's filters let through: none when they ask
    for a card or an order status (a transfer is always from the balance, and done)."""
    if filters.get("source", "balance") != "balance" or "status" in filters:
        return []
    return user_transfers(
        tx, user_id, limit, since=filters.get("since"), until=filters.get("until")
    )


def csv_rows(views: list[TransferView]) -> list[list[str]]:
    """Transfers as rows of the history's CSV (its columns: paid_at, merchant, order_no,
    subject, amount, currency, fee, refunded, source, status, card_amount,
    card_currency); the source says the direction."""
    return [
        [
            view.created_at.isoformat(),
            view.counterparty(),
            str(view.id),
            view.note,
            str(view.amount.major),
            view.amount.currency,
            "0",
            "0",
            f"transfer_{view.direction}",
            "SUCCESS",
            "",
            "",
        ]
        for view in views
    ]


def user_transfer(tx: Tx, user_id: uuid.UUID, transfer_id: uuid.UUID) -> TransferView:
    """One transfer, for its sender or its recipient only."""
    row = tx.session.get(PersonTransfer, transfer_id)
    if row is None or user_id not in (row.sender_id, row.recipient_id):
        raise NotFound("transfer.not_found", N_("There is no such transfer."))
    return _view(row, user_id)


def _view(row: PersonTransfer, user_id: uuid.UUID, *, replayed: bool = False) -> TransferView:
    sent = row.sender_id == user_id
    return TransferView(
        id=row.id,
        direction="sent" if sent else "received",
        counterparty_name=row.recipient_name if sent else row.sender_name,
        counterparty_phone=row.recipient_phone if sent else row.sender_phone,
        amount=Money(row.currency, row.amount),
        note=row.note,
        created_at=row.created_at,
        replayed=replayed,
    )


# --- asking for money -------------------------------------------------------------------


def request_link(
    tx: Tx, user_id: uuid.UUID, amount_text: str = "", note: str = "", *, by_email: bool = False
) -> str:
    """The path of a transfer form prefilled to pay this person (to share as a link)."""
    query: dict[str, str] = {"to": identity.get_account(tx, user_id).phone.e164}
    if by_email:
        email = security.status(tx, user_id).email
        if email is None:
            raise InvalidInput(
                "transfer.no_email",
                N_("Add and confirm an email address first, or use your number."),
            )
        query["to"] = email
    if amount_text.strip():
        query["amount"] = str(parse_amount(amount_text).major)
    cleaned = clean_note(tx, note)
    if cleaned:
        query["note"] = cleaned
    return "/wallet/transfer?" + urllib.parse.urlencode(query, quote_via=urllib.parse.quote)


def receive_code_path(tx: Tx, user_id: uuid.UUID, amount_text: str = "", note: str = "") -> str:
    """The path of the person's receive code, with the amount and note they chose
    (optional), both checked as a transfer's would be."""
    amount = str(parse_amount(amount_text).major) if amount_text.strip() else ""
    return receive_codes.path(receive_codes.token_of(tx, user_id), amount, clean_note(tx, note))
