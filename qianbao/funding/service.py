"""Use cases of payment instruments: binding a mainland bank card after the bank's
four-element check (card number, holder's name, passport number, reserved phone).

The bank is reached through a connector (``bank.py``: the sandbox bank by default, an
HTTP provider in production), always outside a transaction: a slow bank never holds a
database lock. The code the bank texts goes to the reserved phone through Qianbao's own
SMS outbox when the sandbox is used (a real bank texts it itself).

A card bound by an unverified person verifies them by bank card (Class II); a card
bound by a passport-verified person raises them to Class III (policy.py decides both).
For a passport-verified person the name and passport number must be the verified ones.
"""

from __future__ import annotations

import threading
import uuid
import weakref
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Final

import phonenumbers
from sqlalchemy import bindparam, func, select

from qianbao.db import Database, Tx
from qianbao.errors import Conflict, InvalidInput, NotFound
from qianbao.funding import cards
from qianbao.funding.bank import BankConnector
from qianbao.funding.connectors import connector_for
from qianbao.funding.models import BankCard, BankCardCheck
from qianbao.funding.sandbox.state import SqliteStore
from qianbao.i18n import N_, current_language, language_scope, translate
from qianbao.identity import service as identity
from qianbao.notify import service as notify
from qianbao.observability import metrics
from qianbao.throttling import ratelimit

DAY: Final = timedelta(days=1)
_connectors: weakref.WeakKeyDictionary[Database, BankConnector] = weakref.WeakKeyDictionary()
SANDBOX_BANK_FILE: Final = "sandbox_bank.sqlite3"
_connectors_lock = threading.Lock()
_BANK_SMS: Final = N_(
    "[Sandbox bank] Your code to add your bank card to Qianbao is {code}. Never share it."
)


@dataclass(frozen=True)
class CheckStarted:
    id: uuid.UUID
    masked_phone: str
    bank_name: str
    last4: str
    expires_at: datetime | None


@dataclass(frozen=True)
class BoundCard:
    id: uuid.UUID
    bank_name: str
    last4: str
    bound_at: datetime


@dataclass(frozen=True)
class CardHolder:
    """What the person typed, as the bank holds it."""

    card_number: str
    holder_name: str
    passport_number: str
    reserved_phone: str


# Asked for every payment's standing: one statement built once.
_BOUND_CARD: Final = (
    select(BankCard.id)
    .where(BankCard.user_id == bindparam("user_id"), BankCard.removed_at.is_(None))
    .limit(1)
)


def has_bank_card(tx: Tx, user_id: uuid.UUID) -> bool:
    """Whether the person has a bound mainland bank card (policy.py counts it)."""
    return tx.read(_BOUND_CARD, {"user_id": user_id}).first() is not None


def bank_cards(tx: Tx, user_id: uuid.UUID) -> list[BoundCard]:
    rows = tx.session.scalars(
        select(BankCard)
        .where(BankCard.user_id == user_id, BankCard.removed_at.is_(None))
        .order_by(BankCard.bound_at)
    )
    return [
        BoundCard(row.id, _bank_name(row.bank_name_en, row.bank_name_zh), row.last4, row.bound_at)
        for row in rows
    ]


def start_check(
    db: Database,
    user_id: uuid.UUID,
    holder: CardHolder,
    verified_identity: tuple[str, str] | None,
) -> CheckStarted:
    """Check the card number, then ask the bank to check the four elements and text a
    code to the reserved phone. ``verified_identity`` is (name, passport number) of a
    passport-verified person, which the card must match."""
    card = cards.unionpay_card(cards.normalize_card_number(holder.card_number))
    number = cards.normalize_card_number(holder.card_number)
    reserved = _reserved_phone(holder.reserved_phone)
    if verified_identity is not None:
        _must_match_verified(holder, verified_identity)
    card_hash = cards.card_token(number, db.settings.hmac_key())
    db.run(lambda tx: _admit(tx, user_id, card_hash), isolation="read committed")
    sent: list[tuple[str, str]] = []
    with metrics.verification_refusals("bank_card"):
        challenge = _connector(db, sent).start_verification(
            number, holder.holder_name, "passport", holder.passport_number, reserved
        )

    def record(tx: Tx) -> CheckStarted:
        check = BankCardCheck(
            user_id=user_id,
            card_hash=card_hash,
            bank_name_en=card.bank_name_en,
            bank_name_zh=card.bank_name_zh,
            last4=card.last4,
            bank_reference=challenge.reference,
            masked_phone=challenge.masked_phone,
            started_at=tx.now(),
        )
        tx.session.add(check)
        tx.session.flush()
        for phone, code in sent:  # the sandbox bank's text, through Qianbao's outbox
            language = identity.get_account(tx, user_id).language
            with language_scope(language):
                text = translate(_BANK_SMS, {"code": code})
            notify.queue_sms(tx, phone, text, language, signed=False)
        return CheckStarted(
            check.id,
            challenge.masked_phone,
            _bank_name(card.bank_name_en, card.bank_name_zh),
            card.last4,
            challenge.expires_at,
        )

    return db.run(record)


def confirm_check(db: Database, user_id: uuid.UUID, check_id: uuid.UUID, code: str) -> BoundCard:
    """The code from the bank's SMS: the card is bound, and the person's level follows."""
    reference = db.run(lambda tx: _open_check(tx, user_id, check_id).bank_reference)
    with metrics.verification_refusals("bank_card"):
        result = _connector(db, []).confirm(reference, code.strip())

    def bind(tx: Tx) -> BoundCard:
        check = _open_check(tx, user_id, check_id)
        if result.last4 != check.last4:
            raise Conflict("bank.card_changed", N_("The bank confirmed another card. Start again."))
        check.finished_at, check.outcome = tx.now(), "bound"
        existing = tx.session.scalar(
            select(BankCard).where(
                BankCard.user_id == user_id,
                BankCard.card_hash == check.card_hash,
                BankCard.removed_at.is_(None),
            )
        )
        if existing is not None:
            raise Conflict("card.already_bound", N_("This card is already on your account."))
        card = BankCard(
            user_id=user_id,
            card_hash=check.card_hash,
            bank_name_en=check.bank_name_en,
            bank_name_zh=check.bank_name_zh,
            last4=check.last4,
            bank_token=result.card_token_from_bank,
            bound_at=tx.now(),
        )
        tx.session.add(card)
        tx.session.flush()
        account = identity.get_account(tx, user_id)
        if not identity.is_verified(account.verification_level):
            # The wallet hears of it (identity.on_level_set) and releases held refunds.
            identity.set_verification_level(tx, user_id, "bank_card")
            identity.tell(tx, user_id, identity.VERIFIED_SMS)  # as the passport route does
        metrics.verification_outcome("bank_card", "verified")
        return BoundCard(
            card.id, _bank_name(card.bank_name_en, card.bank_name_zh), card.last4, card.bound_at
        )

    return db.run(bind)


def pending_check(tx: Tx, user_id: uuid.UUID, check_id: uuid.UUID) -> CheckStarted | None:
    """A check still waiting for its code (to show the code form again)."""
    check = tx.session.get(BankCardCheck, check_id)
    if check is None or check.user_id != user_id or check.finished_at is not None:
        return None
    name = _bank_name(check.bank_name_en, check.bank_name_zh)
    return CheckStarted(check.id, check.masked_phone, name, check.last4, None)


def bank_token(tx: Tx, user_id: uuid.UUID, card_id: uuid.UUID) -> str:
    """The bank's quick-payment agreement for one of the person's bound cards."""
    card = tx.session.get(BankCard, card_id)
    if card is None or card.user_id != user_id or card.removed_at is not None:
        raise NotFound("card.not_found", N_("There is no such card on your account."))
    if card.bank_token is None:
        raise Conflict(
            "bank.no_agreement", N_("This bank card cannot pay yet. Add it again to pay with it.")
        )
    return card.bank_token


def connector(db: Database) -> BankConnector:
    """The process's bank connector."""
    return _connector(db, [])


def _admit(tx: Tx, user_id: uuid.UUID, card_hash: str) -> None:
    ratelimit.claim(tx, [f"bank:{user_id}"])
    since = tx.now() - DAY
    started = list(
        tx.session.scalars(
            select(BankCardCheck.started_at)
            .where(BankCardCheck.user_id == user_id, BankCardCheck.started_at > since)
            .order_by(BankCardCheck.started_at)
        )
    )
    limit = tx.settings.bank_checks_per_day
    if len(started) >= limit:
        wait = (started[len(started) - limit] + DAY - tx.now()).total_seconds()
        raise ratelimit.refusal(
            "bank.too_many_checks",
            N_("You have tried to add a bank card too many times today. Try again in {wait}."),
            wait,
            quota=limit,
            window=DAY,
        )
    same_card = select(func.count()).where(
        BankCardCheck.card_hash == card_hash, BankCardCheck.started_at > since
    )
    if int(tx.session.scalar(same_card) or 0) >= limit:
        raise ratelimit.refusal(
            "bank.too_many_checks",
            N_("You have tried to add a bank card too many times today. Try again in {wait}."),
            DAY.total_seconds(),
            quota=limit,
            window=DAY,
        )


def _open_check(tx: Tx, user_id: uuid.UUID, check_id: uuid.UUID) -> BankCardCheck:
    check = tx.session.get(BankCardCheck, check_id)
    if check is None or check.user_id != user_id:
        raise NotFound("bank.check_not_found", N_("There is no such bank card check."))
    if check.finished_at is not None:
        raise Conflict("bank.challenge_unknown", N_("This card check is finished. Start again."))
    return check


def _reserved_phone(text: str) -> str:
    """The reserved number in E.164; a mainland number may be typed without +86."""
    try:
        parsed = phonenumbers.parse(text, "CN")
    except phonenumbers.NumberParseException as error:
        raise InvalidInput(
            "bank.reserved_phone",
            N_("Enter the mobile number reserved at your bank, with its country code."),
        ) from error
    if not phonenumbers.is_possible_number(parsed):
        raise InvalidInput(
            "bank.reserved_phone",
            N_("Enter the mobile number reserved at your bank, with its country code."),
        )
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def _must_match_verified(holder: CardHolder, verified: tuple[str, str]) -> None:
    name, passport_number = verified

    def words(text: str) -> list[str]:  # banks write a foreign name in either order
        return sorted(text.upper().replace("<", " ").split())

    if words(holder.holder_name) != words(name) or words(holder.passport_number) != words(
        passport_number
    ):
        raise InvalidInput(
            "card.holder_mismatch",
            N_(
                "The name and passport number must be those of your verified passport: "
                "only your own bank card can be added."
            ),
        )


def _connector(db: Database, sent: list[tuple[str, str]]) -> BankConnector:
    """One connector per process and database (the sandbox keeps its records in a file
    of its own that every process shares); what the sandbox texts is collected in
    ``sent`` for the outbox."""
    with _connectors_lock:
        found = _connectors.get(db)
        if found is None:
            store = SqliteStore(Path(db.settings.var_dir) / SANDBOX_BANK_FILE)
            found = connector_for(db.settings, send_sms=_relay, clock=db.clock, store=store)
            _connectors[db] = found
    _pending.sent = sent
    return found


class _Pending(threading.local):
    sent: list[tuple[str, str]]


_pending = _Pending()


def _relay(phone: str, code: str) -> None:
    _pending.sent.append((phone, code))


def _bank_name(english: str, chinese: str) -> str:
    return chinese if current_language() == "zh_Hans" and chinese else english
