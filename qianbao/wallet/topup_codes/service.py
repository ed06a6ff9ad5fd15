"""Top-up codes sold by stores: a person types the code from the receipt and its value
reaches their balance.

Money. A store sells a code over the counter and keeps the customer's cash; the wallet
must already hold the code's value, or redeeming it would create money. So a batch is
*prepaid* when it is created: its whole face value moves, in one ledger operation, from
the merchant's settlement account (money the wallet owes the store for its sales) or,
with ``paid_by_bank``, from bank clearing (the store wired the face value) into a ledger
account of the batch's own. Redeeming a code moves its value from that account to the
person's balance; voiding a batch moves what is left back to the merchant's settlement.
At every moment the batch account holds exactly value x codes still active, and the
ledger's floor (0) refuses anything else.

Codes. 15 random characters from a 32-letter alphabet without 0, O, 1 and I (75 bits),
then a Luhn mod 32 check character, printed in four groups: ``7KQF-M2XA-9HTC-WP4N``. The
check character catches every single mistyped character and most swapped neighbours
before anything is looked up. Only a keyed hash (HMAC-SHA-256 with the server's key) is
stored: the list printed at creation is the only copy.

Guessing. Every code that does not work (unknown, already redeemed by someone else,
void) counts against the account and against the address; after a few, each further
try waits twice as long as the one before (settings ``topup_code_*``). With 75 bits of
randomness and about 20 tries an account a day, guessing any one of a million live
codes takes longer than the universe has existed.

Who. Adding money to a balance is using the balance: the person's level must allow it
(``policy.Rights.use_balance``), as Alipay asks a visitor who bought a store code for
identification first. A refused person's code stays valid.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import insert, select

from qianbao.db import Database, Tx, new_id
from qianbao.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    QianbaoError,
    RecordedRefusal,
)
from qianbao.i18n import N_
from qianbao.identity.codes import keyed_hash
from qianbao.money import Money
from qianbao.risk import restrictions
from qianbao.standing import standing
from qianbao.throttling import ratelimit
from qianbao.wallet.ledger import service as ledger
from qianbao.wallet.payments import service as payments
from qianbao.wallet.payments.models import Merchant
from qianbao.wallet.topup_codes.models import TopupCode, TopupCodeBatch

CNY: Final = "CNY"
ALPHABET: Final = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"  # no 0, O, 1, I: nothing to misread
RANDOM_CHARACTERS: Final = 15  # 75 bits
CODE_LENGTH: Final = RANDOM_CHARACTERS + 1  # and the check character
GROUP: Final = 4
GUESS_WINDOW: Final = timedelta(days=1)

IDENTIFICATION_REQUIRED: Final = N_(
    "Per regulatory requirements, verify your identity before adding money to your "
    "balance. Your code stays valid: redeem it once you are verified."
)
_FROZEN: Final = N_("Your account is frozen, so no money can move. Open Wallet to see what to do.")


# --- the codes themselves -----------------------------------------------------------------


def check_character(payload: str) -> str:
    """Luhn mod 32 over ``payload``: the character that makes the whole code check."""
    total, factor = 0, 2
    for character in reversed(payload):
        addend = factor * ALPHABET.index(character)
        total += addend // len(ALPHABET) + addend % len(ALPHABET)
        factor = 1 if factor == 2 else 2
    return ALPHABET[-total % len(ALPHABET)]


def new_code() -> str:
    payload = "".join(secrets.choice(ALPHABET) for _ in range(RANDOM_CHARACTERS))
    return payload + check_character(payload)


def grouped(code: str) -> str:
    """``7KQFM2XA9HTCWP4N`` as it is printed: ``7KQF-M2XA-9HTC-WP4N``."""
    return "-".join(code[i : i + GROUP] for i in range(0, len(code), GROUP))


def parse_code(typed: str) -> str:
    """The code as stored (upper case, no spaces or dashes), or a clear error for a code
    that cannot be one: wrong length, a character codes never use, or a typing mistake
    the check character shows. Nothing is looked up, so none of this counts as a guess."""
    code = "".join(typed.split()).replace("-", "").upper()
    if len(code) != CODE_LENGTH or any(character not in ALPHABET for character in code):
        raise InvalidInput(
            "topup.format",
            N_(
                "A top-up code has 16 letters and digits, as printed on the receipt "
                "(codes never use 0, O, 1 or I)."
            ),
        )
    if check_character(code[:-1]) != code[-1]:
        raise InvalidInput(
            "topup.typo",
            N_("This code has a typing mistake. Check it against the receipt and try again."),
        )
    return code


def _code_hash(tx: Tx, code: str) -> str:
    return keyed_hash(tx.settings.hmac_key(), "topup-code", code)


# --- batches (the back office) --------------------------------------------------------------


@dataclass(frozen=True)
class NewBatch:
    id: uuid.UUID
    merchant: str
    value: Money
    codes: list[str]  # grouped for printing; this is the only time they exist in clear


@dataclass(frozen=True)
class VoidedBatch:
    id: uuid.UUID
    merchant: str
    voided: int
    already_redeemed: int
    returned: Money  # back to the merchant's settlement account


def create_batch(
    db: Database,
    merchant_name: str,
    value: str,
    count: int,
    *,
    paid_by_bank: str | None = None,
) -> NewBatch:
    """Create ``count`` codes of ``value`` CNY for a merchant, prepaid from its settlement
    account (or, with ``paid_by_bank``, the bank transfer reference of the store's
    payment). Returns the codes, in clear, once."""
    amount = _face_value(db, value)
    if not 1 <= count <= db.settings.topup_code_max_batch:
        raise InvalidInput(
            "topup.batch_count",
            N_("A batch has from 1 to {max} codes."),
            {"max": db.settings.topup_code_max_batch},
        )
    reference = (paid_by_bank or "").strip()
    if paid_by_bank is not None and not 1 <= len(reference) <= 128:
        raise InvalidInput(
            "topup.reference", N_("A bank transfer reference has 1 to 128 characters.")
        )
    codes = [new_code() for _ in range(count)]
    batch_id = db.run(
        lambda tx: _insert_batch(tx, merchant_name.strip(), amount, codes, reference or None),
        isolation="read committed",
    )
    return NewBatch(batch_id, merchant_name.strip(), amount, [grouped(code) for code in codes])


def _face_value(db: Database, value: str) -> Money:
    settings = db.settings
    low, high = settings.topup_code_min_value, settings.topup_code_max_value
    try:
        amount = Money.parse(value)
    except InvalidInput:  # not an amount: answered like one out of range, with the range
        amount = Money(CNY, 0)
    if amount.minor <= 0 or not low <= amount.major <= high:
        raise InvalidInput(
            "topup.batch_value",
            N_("A code is worth from {low} to {high}."),
            {"low": Money.of(CNY, low).format(), "high": Money.of(CNY, high).format()},
        )
    return amount


def _insert_batch(
    tx: Tx, merchant_name: str, value: Money, codes: list[str], bank_reference: str | None
) -> uuid.UUID:
    merchant = tx.session.scalar(select(Merchant).where(Merchant.name == merchant_name))
    if merchant is None:
        raise NotFound("topup.merchant", N_("There is no merchant with this name."))
    account = ledger.open_account(tx, kind="merchant_settlement", currency=CNY)
    batch = TopupCodeBatch(
        merchant_id=merchant.id,
        currency=CNY,
        value=value.minor,
        count=len(codes),
        account_id=account,
        funded_by="settlement" if bank_reference is None else "bank",
        funding_reference=bank_reference or "",
        created_at=tx.now(),
    )
    tx.session.add(batch)
    tx.session.flush()
    _prepay(tx, batch, merchant, Money(CNY, value.minor * len(codes)))
    rows = [
        {"id": new_id(), "batch_id": batch.id, "code_hash": _code_hash(tx, code), "state": "active"}
        for code in codes
    ]
    tx.session.execute(insert(TopupCode), rows)
    return batch.id


def _prepay(tx: Tx, batch: TopupCodeBatch, merchant: Merchant, total: Money) -> None:
    if batch.funded_by == "bank":
        payments.claim_wallets(tx, payments.SYSTEM)
        source = payments.account_of(tx, payments.SYSTEM, "bank_clearing")
    else:
        source = merchant.settlement_account_id
    request = {"op": "topup_batch", "batch": batch.id, "source": batch.funded_by, "total": total}
    # A bank transfer pays for one batch only: its reference is the operation's key, so
    # running the command again with it (a retry, a typo) cannot fund a second batch.
    key = (
        f"topup-bank:{batch.funding_reference}"
        if batch.funded_by == "bank"
        else f"topup-batch:{batch.id}:prepay"
    )
    try:
        receipt = ledger.execute(
            tx,
            key,
            request,
            lambda booking: _just(booking.transfer(source, batch.account_id, total)),
        )
    except Conflict as error:
        if error.code == "idempotency.mismatch":
            raise _reference_used(batch.funding_reference) from None
        if error.code != "ledger.insufficient_funds":
            raise
        raise Conflict(
            "topup.batch_unfunded",
            N_(
                "The merchant's settlement balance does not cover the batch ({total}). "
                "Record the store's bank transfer for it instead (--paid-by-bank)."
            ),
            {"total": total.format()},
        ) from None

    if receipt.replayed:  # cannot happen with a new batch id, but never fund twice
        raise _reference_used(batch.funding_reference)


def _reference_used(reference: str) -> Conflict:
    return Conflict(
        "topup.reference_used",
        N_(
            "The bank transfer {reference} already paid for a batch of codes. Each "
            "transfer pays for one batch."
        ),
        {"reference": reference},
    )


def _just(_transfer_id: uuid.UUID) -> None:
    return None


def void_batch(db: Database, batch_id: uuid.UUID) -> VoidedBatch:
    """Withdraw a batch's codes that are not redeemed (lost or stolen stock): they stop
    working, and their value goes back to the merchant's settlement account. Redeemed
    codes stay redeemed. Voiding again changes nothing."""
    return db.run(lambda tx: _void(tx, batch_id), isolation="read committed")


def _void(tx: Tx, batch_id: uuid.UUID) -> VoidedBatch:
    batch = tx.session.get(TopupCodeBatch, batch_id, with_for_update=True)
    if batch is None:
        raise NotFound("topup.batch", N_("There is no such batch of top-up codes."))
    merchant = tx.session.get_one(Merchant, batch.merchant_id)
    # Locked, so a redemption waiting on one of them then finds it void (and one that
    # got there first is not among them).
    active = list(
        tx.session.scalars(
            select(TopupCode)
            .where(TopupCode.batch_id == batch_id, TopupCode.state == "active")
            .with_for_update()
        )
    )
    for code in active:
        code.state = "void"
    returned = Money(CNY, batch.value * len(active))
    if active:
        ledger.transfer(
            tx,
            f"topup-batch:{batch_id}:void",
            batch.account_id,
            merchant.settlement_account_id,
            returned,
        )
    if batch.voided_at is None:
        batch.voided_at = tx.now()
    redeemed = tx.session.scalars(
        select(TopupCode.id).where(TopupCode.batch_id == batch_id, TopupCode.state == "redeemed")
    ).all()
    return VoidedBatch(batch_id, merchant.name, len(active), len(redeemed), returned)


# --- redeeming -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Redeemed:
    amount: Money
    balance: Money
    merchant: str
    redeemed_at: datetime
    replayed: bool  # this person had already redeemed this code: nothing moved now


@dataclass(frozen=True)
class Redemption:
    amount: Money
    merchant: str
    redeemed_at: datetime


def may_redeem(tx: Tx, user_id: uuid.UUID) -> bool:
    """Whether the person's level may add money to the balance (policy.py decides)."""
    return standing(tx, user_id).rights.use_balance


def redeem(db: Database, user_id: uuid.UUID, typed: str, ip: str) -> Redeemed:
    """Add a code's value to the person's balance, once. The same person redeeming the
    same code again gets the same answer; anyone else is told it is used."""
    code = parse_code(typed)
    return db.run(lambda tx: _redeem(tx, user_id, code, ip), isolation="read committed")


def _redeem(tx: Tx, user_id: uuid.UUID, code: str, ip: str) -> Redeemed:
    if not may_redeem(tx, user_id):
        raise Forbidden("topup.verification_required", IDENTIFICATION_REQUIRED)
    if restrictions.is_frozen(tx, user_id):
        raise Forbidden("account.frozen", _FROZEN)
    keys = (f"topup:user:{user_id}", f"topup:ip:{ratelimit.address(ip)}")
    # One person's (and one address's) tries queue here: parallel guesses see each other.
    ratelimit.claim(tx, keys)
    _wait_if_guessing(tx, keys[0], tx.settings.topup_code_failures_before_delay)
    _wait_if_guessing(tx, keys[1], tx.settings.topup_code_failures_before_delay_per_ip)
    found = tx.session.scalar(
        select(TopupCode).where(TopupCode.code_hash == _code_hash(tx, code)).with_for_update()
    )
    if found is not None and found.state == "redeemed" and found.redeemed_by == user_id:
        return _answer(tx, found, user_id, replayed=True)
    if found is None or found.state != "active":
        for key in keys:
            ratelimit.record(tx, key)
        raise _not_redeemable(found)
    return _credit(tx, found, user_id)


def _credit(tx: Tx, code: TopupCode, user_id: uuid.UUID) -> Redeemed:
    batch = tx.session.get_one(TopupCodeBatch, code.batch_id)
    amount = Money(batch.currency, batch.value)
    payments.claim_wallets(tx, str(user_id))
    balance_account = payments.account_of(tx, str(user_id), "user_balance")
    receipt = ledger.execute(
        tx,
        f"topup-code:{code.id}:redeem",
        {"op": "topup_code", "code": code.id, "user": user_id, "amount": amount},
        lambda booking: _just(booking.transfer(batch.account_id, balance_account, amount)),
    )
    code.state, code.redeemed_by, code.redeemed_at = "redeemed", user_id, tx.now()
    code.ledger_operation_id = receipt.operation_id
    tx.session.flush()
    return _answer(tx, code, user_id, replayed=False)


def _answer(tx: Tx, code: TopupCode, user_id: uuid.UUID, *, replayed: bool) -> Redeemed:
    batch = tx.session.get_one(TopupCodeBatch, code.batch_id)
    merchant = tx.session.get_one(Merchant, batch.merchant_id)
    account = payments.account_of(tx, str(user_id), "user_balance")
    assert code.redeemed_at is not None
    return Redeemed(
        amount=Money(batch.currency, batch.value),
        balance=Money(CNY, ledger.balance(tx, account).available),
        merchant=merchant.name,
        redeemed_at=code.redeemed_at,
        replayed=replayed,
    )


def _not_redeemable(code: TopupCode | None) -> QianbaoError:
    """Unknown says only that; a used or void code says so, which the buyer needs to know
    and which tells a guesser nothing about any other code."""
    if code is None:
        return RecordedRefusal(
            "topup.unknown",
            N_("This code does not work. Check it against the receipt."),
            status=404,
        )
    if code.state == "redeemed":
        return RecordedRefusal(
            "topup.redeemed",
            N_("This code has already been redeemed. Each code adds money only once."),
            status=409,
        )
    return RecordedRefusal(
        "topup.void",
        N_(
            "This code was withdrawn by the store that sold it and no longer works. "
            "Ask the store for help."
        ),
        status=409,
    )


def _wait_if_guessing(tx: Tx, key: str, free_failures: int) -> None:
    """After ``free_failures`` codes that did not work in a day, each further try waits
    twice as long after the last failure as the one before, up to the cap."""
    failures = ratelimit.count(tx, key, tx.now() - GUESS_WINDOW)
    if failures < free_failures:
        return
    last = ratelimit.latest(tx, key)
    assert last is not None
    settings = tx.settings
    delay = min(
        float(settings.topup_code_delay_cap_seconds),
        settings.topup_code_delay_base_seconds * 2.0 ** (failures - free_failures),
    )
    wait = (last + timedelta(seconds=delay) - tx.now()).total_seconds()
    if wait > 0:
        raise ratelimit.refusal(
            "topup.throttled",
            N_("Too many codes that did not work. Try again in {wait}."),
            wait,
        )


def redemptions(tx: Tx, user_id: uuid.UUID, limit: int = 20) -> list[Redemption]:
    """The person's redeemed codes, newest first."""
    rows = tx.session.execute(
        select(TopupCodeBatch.currency, TopupCodeBatch.value, Merchant.name, TopupCode.redeemed_at)
        .join(TopupCodeBatch, TopupCodeBatch.id == TopupCode.batch_id)
        .join(Merchant, Merchant.id == TopupCodeBatch.merchant_id)
        .where(TopupCode.redeemed_by == user_id)
        .order_by(TopupCode.redeemed_at.desc())
        .limit(limit)
    ).all()
    return [Redemption(Money(row.currency, row.value), row.name, row.redeemed_at) for row in rows]
