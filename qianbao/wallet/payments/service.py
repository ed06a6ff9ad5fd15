"""Merchant payments: orders, the cashier (balance or a foreign card), refunds, and money
held for people whose level may not use a balance yet.

Every movement is a ledger operation (``ledger.py``) under an idempotency key derived
from the order (``order:<id>:pay``, ``order:<id>:refund:<request no>``), so a retried
request never moves money twice. What a person may do is asked of ``policy.py``.

A foreign card is charged on the card network first (outside any transaction: a slow
network never holds a lock), then the ledger records the money arriving in the card
clearing account and going to the merchant (and the fee to fee income). Card refunds go
the same way back, converted by the network at the refund day's rate.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import Final, Protocol
from weakref import WeakKeyDictionary

from sqlalchemy import func, or_, select
from sqlalchemy.orm.util import identity_key

from qianbao import batching
from qianbao.db import Database, Tx, new_id
from qianbao.errors import Conflict, Forbidden, InvalidInput, NotFound
from qianbao.funding import card_network, connectors, foreign_cards
from qianbao.funding import service as funding
from qianbao.i18n import N_
from qianbao.identity import security
from qianbao.identity import service as identity
from qianbao.money import Money
from qianbao.policy import Rights
from qianbao.risk import restrictions
from qianbao.standing import standing
from qianbao.throttling import ratelimit
from qianbao.wallet import limits
from qianbao.wallet.ledger import service as ledger
from qianbao.wallet.payments import in_database
from qianbao.wallet.payments.models import (
    Merchant,
    PaymentAttemptReversal,
    PaymentOrder,
    WalletAccount,
)

log = logging.getLogger(__name__)
CNY: Final = "CNY"
SYSTEM: Final = "system"
MERCHANT_SHARDS: Final = 8  # a merchant's settlement account is not one hot row
DEFAULT_ORDER_TIMEOUT: Final = timedelta(minutes=15)

_BALANCE_NOT_ALLOWED: Final = N_(
    "Per regulatory requirements, complete identity verification to pay with your "
    "balance. You can pay with a card now."
)


# --- accounts -----------------------------------------------------------------------------


# Which ledger account is an owner's (owner, kind, currency) never changes once opened,
# so each process remembers the ones it has read, per database: one query less per
# movement. An id is remembered once its transaction has committed (it may have been
# opened by that very transaction, which could still roll back).
_OPENED: WeakKeyDictionary[Database, dict[tuple[str, str, str], uuid.UUID]] = WeakKeyDictionary()


def account_of(tx: Tx, owner_key: str, kind: ledger.AccountKind, currency: str = CNY) -> uuid.UUID:
    """The ledger account for (owner, kind), opened on first use. Callers hold the
    owner's claim (``claim_wallets``) so two first uses cannot open two accounts."""
    remembered = _OPENED.setdefault(tx.db, {}).get((owner_key, kind, currency))
    if remembered is not None:
        return remembered
    found = tx.session.scalar(
        select(WalletAccount.account_id).where(
            WalletAccount.owner_key == owner_key,
            WalletAccount.kind == kind,
            WalletAccount.currency == currency,
        )
    )
    if found is not None:
        tx.after_commit(partial(_remember, _OPENED[tx.db], (owner_key, kind, currency), found))
        return found
    owner_id = None if owner_key == SYSTEM else uuid.UUID(owner_key)
    account_id = ledger.open_account(tx, kind=kind, currency=currency, owner_id=owner_id)
    tx.session.add(
        WalletAccount(owner_key=owner_key, kind=kind, currency=currency, account_id=account_id)
    )
    tx.session.flush()
    return account_id


def _remember(
    opened: dict[tuple[str, str, str], uuid.UUID], key: tuple[str, str, str], account: uuid.UUID
) -> None:
    if len(opened) > 1_000_000:
        opened.clear()
    opened[key] = account


def balance_account(tx: Tx, owner_key: str) -> uuid.UUID | None:
    """The person's CNY balance account if it is open (a read: opens nothing)."""
    remembered = _OPENED.setdefault(tx.db, {}).get((owner_key, "user_balance", CNY))
    if remembered is not None:
        return remembered
    return tx.session.scalar(
        select(WalletAccount.account_id).where(
            WalletAccount.owner_key == owner_key,
            WalletAccount.kind == "user_balance",
            WalletAccount.currency == CNY,
        )
    )


def money_of(tx: Tx, user_id: uuid.UUID) -> tuple[Money, Money]:
    """The person's balance and held money (a read: opens nothing, releases nothing), for
    the back office's lookup and for what a freeze on the account holds."""
    amounts = []
    for kind in ("user_balance", "user_held"):
        account = tx.session.scalar(
            select(WalletAccount.account_id).where(
                WalletAccount.owner_key == str(user_id),
                WalletAccount.kind == kind,
                WalletAccount.currency == CNY,
            )
        )
        amounts.append(Money(CNY, ledger.balance(tx, account).posted if account else 0))
    return amounts[0], amounts[1]


def frozen_money(tx: Tx, user_id: uuid.UUID) -> int:
    """What a freeze on the account holds, in fen: its balance and its held money."""
    balance, held = money_of(tx, user_id)
    return balance.minor + held.minor


def claim_wallets(tx: Tx, *owners: str) -> None:
    ratelimit.claim(tx, [f"wallet:{owner}" for owner in owners])


@dataclass(frozen=True)
class WalletView:
    balance: Money
    held: Money
    can_use_balance: bool
    cards: list[foreign_cards.ForeignCardView]
    # Mainland bank cards bound after the bank's check (the bank-card route).
    bank_cards: list[funding.BoundCard]


def wallet(tx: Tx, user_id: uuid.UUID) -> WalletView:
    """The person's balance, the money held for them, and their cards. Held money is
    released here too, the first time they are allowed to use it."""
    release_held(tx, user_id)
    key = str(user_id)
    claim_wallets(tx, key)
    balance = ledger.balance(tx, account_of(tx, key, "user_balance"))
    held = ledger.balance(tx, account_of(tx, key, "user_held"))
    return WalletView(
        balance=Money(CNY, balance.available),
        held=Money(CNY, held.available),
        can_use_balance=standing(tx, user_id).rights.use_balance,
        cards=foreign_cards.cards_of(tx, user_id),
        bank_cards=funding.bank_cards(tx, user_id),
    )


def release_held(tx: Tx, user_id: uuid.UUID) -> Money:
    """Move held money to the balance once the person's level may use it and the account
    is not frozen (called when they are verified, and whenever their wallet is shown)."""
    if not standing(tx, user_id).rights.use_balance or restrictions.is_frozen(tx, user_id):
        return Money(CNY, 0)
    key = str(user_id)
    claim_wallets(tx, key)
    held_account = account_of(tx, key, "user_held")
    held = ledger.balance(tx, held_account).available
    if held <= 0:
        return Money(CNY, 0)
    amount = Money(CNY, held)
    ledger.transfer(
        tx,
        f"release:{user_id}:{new_id()}",
        held_account,
        account_of(tx, key, "user_balance"),
        amount,
    )
    return amount


# --- merchants and orders --------------------------------------------------------------


@dataclass(frozen=True)
class OrderView:
    id: uuid.UUID
    merchant: str
    out_trade_no: str
    subject: str
    amount: Money
    refunded: Money
    status: str
    created_at: datetime
    expires_at: datetime
    paid_at: datetime | None
    source: str | None
    fee: Money
    card_amount: Money | None
    # Whose order it is, and who paid it: a friend, through a pay-for-me link, pays an
    # order that stays the asker's (``pay_for_me.py``).
    buyer_id: uuid.UUID | None = None
    payer_id: uuid.UUID | None = None


def create_merchant(tx: Tx, name: str) -> uuid.UUID:
    name = name.strip()
    if not 1 <= len(name) <= 128:
        raise InvalidInput("merchant.name", N_("A merchant's name has 1 to 128 characters."))
    if tx.session.scalar(select(Merchant.id).where(Merchant.name == name)):
        raise Conflict("merchant.exists", N_("A merchant with this name exists."))
    account = ledger.open_account(
        tx, kind="merchant_settlement", currency=CNY, shards=MERCHANT_SHARDS
    )
    merchant = Merchant(name=name, settlement_account_id=account, created_at=tx.now())
    tx.session.add(merchant)
    tx.session.flush()
    return merchant.id


def account_of_merchant(tx: Tx, merchant_id: uuid.UUID) -> uuid.UUID:
    """The merchant's settlement account (its shards included in its balance)."""
    return merchant_of(tx, merchant_id).settlement_account_id


def merchant_by_name(tx: Tx, name: str) -> uuid.UUID | None:
    return tx.session.scalar(select(Merchant.id).where(Merchant.name == name))


DEMO_SHOP: Final = "Demo Shop"


def demo_merchant(db: Database) -> uuid.UUID:
    """The demo mode's shop, created on first use (callers check demo mode)."""
    if not db.settings.demo:
        raise NotFound("demo.off", N_("The demo shop runs only in demo mode."))
    found = db.run(lambda tx: merchant_by_name(tx, DEMO_SHOP))
    if found is not None:
        return found
    try:
        return db.run(lambda tx: create_merchant(tx, DEMO_SHOP))
    except Conflict:  # created meanwhile by another request
        found = db.run(lambda tx: merchant_by_name(tx, DEMO_SHOP))
        assert found is not None
        return found


def create_order(
    tx: Tx,
    merchant_id: uuid.UUID,
    out_trade_no: str,
    subject: str,
    amount: Money,
    timeout: timedelta = DEFAULT_ORDER_TIMEOUT,
) -> OrderView:
    """A merchant's order; the same order number with the same content returns it."""
    if amount.currency != CNY or amount.minor <= 0:
        raise InvalidInput("order.amount", N_("An order is a positive amount in CNY."))
    if not 1 <= len(out_trade_no) <= 64 or not out_trade_no.replace("_", "").isalnum():
        raise InvalidInput(
            "order.trade_no", N_("An order number is 1 to 64 letters, digits or underscores.")
        )
    existing = tx.session.scalar(
        select(PaymentOrder).where(
            PaymentOrder.merchant_id == merchant_id, PaymentOrder.out_trade_no == out_trade_no
        )
    )
    if existing is not None:
        if (existing.amount, existing.subject) != (amount.minor, subject):
            raise Conflict(
                "order.trade_no_used", N_("This order number was used for another order.")
            )
        return order_view(tx, existing)
    order = PaymentOrder(
        merchant_id=merchant_id,
        out_trade_no=out_trade_no,
        subject=subject[:256],
        currency=CNY,
        amount=amount.minor,
        status="WAIT_BUYER_PAY",
        created_at=tx.now(),
        expires_at=tx.now() + timeout,
    )
    tx.session.add(order)
    tx.session.flush()
    return order_view(tx, order)


def merchant_order(
    tx: Tx, merchant_id: uuid.UUID, *, order_id: uuid.UUID | None = None, out_trade_no: str = ""
) -> OrderView | None:
    """One of the merchant's orders, by id or by its own order number; None if the
    merchant has no such order."""
    if order_id is not None:
        order = tx.session.get(PaymentOrder, order_id)
    else:
        order = tx.session.scalar(
            select(PaymentOrder).where(
                PaymentOrder.merchant_id == merchant_id, PaymentOrder.out_trade_no == out_trade_no
            )
        )
    if order is None or order.merchant_id != merchant_id:
        return None
    return order_view(tx, order)


# Where the person goes once an order is paid at the cashier: a page of the shop that
# asked for it (the trade API's return_url), if one registered an answer.
ReturnPage = Callable[[Tx, uuid.UUID], "str | None"]
_RETURN_PAGES: list[ReturnPage] = []


def add_return_page(finder: ReturnPage) -> None:
    if finder not in _RETURN_PAGES:
        _RETURN_PAGES.append(finder)


def return_page(tx: Tx, order_id: uuid.UUID) -> str | None:
    for finder in _RETURN_PAGES:
        found = finder(tx, order_id)
        if found:
            return found
    return None


def get_order(tx: Tx, order_id: uuid.UUID) -> OrderView:
    return order_view(tx, _order(tx, order_id))


def merchant_orders_paid_between(
    tx: Tx, merchant_id: uuid.UUID, since: datetime, until: datetime
) -> list[OrderView]:
    """The merchant's orders paid from ``since`` to before ``until`` (a daily bill)."""
    rows = tx.session.scalars(
        select(PaymentOrder)
        .where(
            PaymentOrder.merchant_id == merchant_id,
            PaymentOrder.paid_at >= since,
            PaymentOrder.paid_at < until,
        )
        .order_by(PaymentOrder.paid_at)
    )
    return [order_view(tx, row) for row in rows]


def merchant_orders(tx: Tx, merchant_id: uuid.UUID, limit: int = 50) -> list[OrderView]:
    rows = tx.session.scalars(
        select(PaymentOrder)
        .where(PaymentOrder.merchant_id == merchant_id)
        .order_by(PaymentOrder.created_at.desc())
        .limit(limit)
    )
    return [order_view(tx, row) for row in rows]


def user_orders(
    tx: Tx,
    user_id: uuid.UUID,
    limit: int = 100,
    *,
    source: str | None = None,
    status: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[OrderView]:
    """The person's payments (their own orders, and those they paid for a friend),
    newest first, filtered by source, status and time."""
    query = select(PaymentOrder).where(
        or_(PaymentOrder.buyer_id == user_id, PaymentOrder.payer_id == user_id)
    )
    if source:
        query = query.where(PaymentOrder.source == source)
    if status:
        query = query.where(PaymentOrder.status == status)
    if since:
        query = query.where(PaymentOrder.paid_at >= since)
    if until:
        query = query.where(PaymentOrder.paid_at < until)
    rows = tx.session.scalars(query.order_by(PaymentOrder.paid_at.desc()).limit(limit))
    return [order_view(tx, row) for row in rows]


def user_order(tx: Tx, user_id: uuid.UUID, order_id: uuid.UUID) -> OrderView:
    """One of the person's payments (nobody else's)."""
    order = tx.session.get(PaymentOrder, order_id)
    if order is None or user_id not in (order.buyer_id, order.payer_id):
        raise NotFound("order.not_found", N_("There is no such order."))
    return order_view(tx, order)


def keep_payable_until(tx: Tx, order: PaymentOrder, until: datetime) -> None:
    """An unpaid order (locked by the caller) stays payable at least until ``until``:
    a pay-for-me link that lives longer than the order's own timeout carries it along.
    Never shortens the order's time."""
    if order.status == "WAIT_BUYER_PAY" and order.expires_at < until:
        order.expires_at = until
        tx.session.flush()


def close_expired_orders(tx: Tx, limit: int = 500) -> int:
    """Unpaid orders close after their timeout (Alipay's TRADE_CLOSED)."""
    rows = list(
        tx.session.scalars(
            select(PaymentOrder)
            .where(PaymentOrder.status == "WAIT_BUYER_PAY", PaymentOrder.expires_at <= tx.now())
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )
    for row in rows:
        row.status = "TRADE_CLOSED"
    return len(rows)


# --- payments left half-way ----------------------------------------------------------------


def _begin_attempt(tx: Tx, order: PaymentOrder, key: str) -> None:
    """Make ``key`` the order's one live attempt; an earlier one goes to be sent back
    (if its request is still running, it can no longer record itself, and sends its own
    money back; the worker's reversal is idempotent with that)."""
    if order.card_attempt_key is not None and order.card_attempt_key != key:
        _give_up(tx, order)
    order.card_attempt_key, order.card_attempt_at = key, tx.now()


def _give_up(tx: Tx, order: PaymentOrder) -> None:
    assert order.card_attempt_key is not None
    if tx.session.get(PaymentAttemptReversal, order.card_attempt_key) is None:
        tx.session.add(
            PaymentAttemptReversal(
                key=order.card_attempt_key, order_id=order.id, created_at=tx.now()
            )
        )
    order.card_attempt_key = None


def abandon_stranded_card_attempts(tx: Tx, limit: int = 100) -> int:
    """Give up payment attempts left unrecorded past the grace time (the process died
    between the network and the ledger, or the person never came back from 3-D Secure):
    from then on they can no longer be recorded, and ``reverse_card_attempts`` sends back
    what they took."""
    grace = timedelta(seconds=tx.settings.card_attempt_grace_seconds)
    rows = list(
        tx.session.scalars(
            select(PaymentOrder)
            .where(
                PaymentOrder.card_attempt_key.is_not(None),
                PaymentOrder.paid_at.is_(None),
                PaymentOrder.card_attempt_at <= tx.now() - grace,
            )
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )
    for row in rows:
        _give_up(tx, row)
    return len(rows)


def reverse_card_attempts(db: Database, limit: int = 100) -> int:
    """Send back what each given-up attempt got: a card capture refunded in full, an
    approval voided, a bank debit credited back. Each step is idempotent, so a worker
    that dies half-way and the next one do it once; the row goes only after."""
    reversals = db.run(lambda tx: _reversals(tx, limit), isolation="read committed")
    done = 0
    for order_id, key in reversals:
        try:
            if ":bank:" in key:
                _reverse_bank_debit(db, order_id, key)
            else:
                _reverse_on_network(db, order_id, key)
        except Exception:  # one network's trouble must not hold the others back
            log.exception("sending back payment attempt %s failed; the next run retries", key)
            continue
        db.run(partial(_reversed, key=key))
        done += 1
    return done


def _reversals(tx: Tx, limit: int) -> list[tuple[uuid.UUID, str]]:
    rows = tx.session.scalars(
        select(PaymentAttemptReversal).order_by(PaymentAttemptReversal.created_at).limit(limit)
    )
    return [(row.order_id, row.key) for row in rows]


def _reverse_on_network(db: Database, order_id: uuid.UUID, key: str) -> None:
    network = connectors.network_for(db)
    authorization = network.find_authorization(key)
    if authorization is None:  # the network never took it: nothing to send back
        return
    if authorization.status == "captured":
        capture = network.capture(authorization.id)  # the same capture, asked again
        network.refund(
            capture.id,
            capture.amount,
            rate_date=db.clock.now().astimezone(UTC).date(),
            idempotency_key=f"order:{order_id}:undo:{capture.id}",
        )
    elif authorization.status in ("approved", "challenge_required"):
        with contextlib.suppress(card_network.NotVoidable):  # voided meanwhile: done
            network.void(authorization.id)


def _reverse_bank_debit(db: Database, order_id: uuid.UUID, key: str) -> None:
    bank = funding.connector(db)
    debit = bank.find_debit(key)
    if debit is not None:
        bank.credit(debit.id, debit.amount, idempotency_key=f"order:{order_id}:undo:{debit.id}")


def _reversed(tx: Tx, *, key: str) -> None:
    found = tx.session.get(PaymentAttemptReversal, key, with_for_update=True)
    if found is not None:
        tx.session.delete(found)


# --- the cashier ---------------------------------------------------------------------------


@dataclass(frozen=True)
class OnBehalf:
    """A friend pays someone else's order (pay-for-me, ``pay_for_me.py``): whose order
    it stays, and what to record (order id, payer) in the payment's own transaction."""

    buyer_id: uuid.UUID
    record: Callable[[Tx, uuid.UUID, uuid.UUID], None]


@dataclass(frozen=True)
class CardQuote:
    card: foreign_cards.ForeignCardView
    fee: Money
    total: Money
    # The total in the card's own currency at today's rate, shown BEFORE paying (as the
    # Tour Pass quote does); None for a currency without a configured rate.
    card_total: Money | None = None


@dataclass(frozen=True)
class Cashier:
    order: OrderView
    balance: Money
    can_use_balance: bool
    balance_refusal: str | None  # a msgid when the balance may not be used
    quotes: list[CardQuote]
    bank_cards: list[funding.BoundCard]  # mainland cards: no fee
    tour_pass: Money | None = None  # what the person's open Tour Pass holds, if they have one


def cashier(tx: Tx, user_id: uuid.UUID, order_id: uuid.UUID) -> Cashier:
    """The order and the ways this person may pay it. A paid order is shown only to the
    person it was for and the one who paid it (a friend, by pay-for-me); to anyone else
    it answers as an unknown one does, so an order's id tells a stranger nothing."""
    row = _order(tx, order_id)
    _refuse_strangers(row, user_id)
    order = order_view(tx, row)
    view = wallet(tx, user_id)
    quotes = []
    for card in view.cards:
        fee = _fee(tx, order.amount)
        total = order.amount + fee
        rate = tx.settings.fx_rates.get(card.currency)
        in_card_currency = (
            card_network.to_card_currency(total, card.currency, rate) if rate else None
        )
        quotes.append(CardQuote(card, fee, total, in_card_currency))
    return Cashier(
        order=order,
        balance=view.balance,
        can_use_balance=view.can_use_balance,
        balance_refusal=None if view.can_use_balance else _BALANCE_NOT_ALLOWED,
        quotes=quotes,
        bank_cards=funding.bank_cards(tx, user_id),
        tour_pass=_tour_pass_balance(tx, user_id),
    )


@dataclass(frozen=True)
class PaymentSource:
    """A way of paying that builds on this module (the Tour Pass): what it holds for a
    person, for the cashier, and where a refund of an order it paid goes back to (a
    ledger account). It registers itself (``add_payment_source``), so that this module
    need not import it."""

    name: str
    balance: Callable[[Tx, uuid.UUID], Money | None]
    refund_target: Callable[[Tx, uuid.UUID], uuid.UUID]


_payment_sources: dict[str, PaymentSource] = {}


def add_payment_source(source: PaymentSource) -> None:
    _payment_sources[source.name] = source


def payment_source(name: str | None) -> PaymentSource | None:
    """The registered way of paying called ``name`` (an order's ``source``), if any."""
    return _payment_sources.get(name or "")


def _tour_pass_balance(tx: Tx, user_id: uuid.UUID) -> Money | None:
    source = _payment_sources.get("tour_pass")
    return None if source is None else source.balance(tx, user_id)


def pay_with_balance(
    db: Database,
    user_id: uuid.UUID,
    order_id: uuid.UUID,
    payment_password: str,
    *,
    on_behalf: OnBehalf | None = None,
) -> OrderView:
    """``user_id`` pays from their balance, for themselves or, with ``on_behalf``, for
    a friend (pay-for-me). The same for every source. One transaction: the payment
    password and its failure count, the order, the rules and limits, the ledger."""

    def in_one_call(tx: Tx) -> OrderView | None:
        if on_behalf is not None or not in_database.enabled(tx):
            return None
        paid = in_database.pay_from_balance(tx, user_id, order_id, payment_password)
        return None if paid is None else _paid_in_database(tx, paid)

    def pay(tx: Tx) -> OrderView:
        security.check_payment_password(tx, user_id, payment_password)
        return _pay_from_balance(tx, user_id, order_id, on_behalf)

    return batching.run(db, pay, isolation="read committed", first=in_one_call)


def _paid_in_database(tx: Tx, paid: OrderFields) -> OrderView:
    """After ``in_database`` paid: a copy of the order this session loaded before is
    stale (forgotten), then the listeners, as ``mark_paid`` calls them."""
    loaded = tx.session.identity_map.get(identity_key(PaymentOrder, paid.id))
    if loaded is not None:
        tx.session.expire(loaded)
    _announce_paid(tx, paid.id)
    return order_view(tx, paid)


def pay_with_balance_by_code(
    db: Database, order_id: uuid.UUID, payer: Callable[[Tx], uuid.UUID]
) -> OrderView:
    """A shop scanned a person's payment code (the trade API's barcode payment):
    ``payer`` redeems the code, in this transaction, and names who pays from their
    balance; the code stands for the payment password (``wallet/payment_codes``)."""
    return db.run(
        lambda tx: _pay_from_balance(tx, payer(tx), order_id, None), isolation="read committed"
    )


def _pay_from_balance(
    tx: Tx, user_id: uuid.UUID, order_id: uuid.UUID, on_behalf: OnBehalf | None
) -> OrderView:
    order = payable_order(tx, user_id, order_id, on_behalf=on_behalf)
    if order is None:  # already paid by this person: a retry
        return get_order(tx, order_id)
    restrictions.refuse_money_out(tx, user_id)
    rights = standing(tx, user_id).rights
    if not rights.use_balance:
        raise Forbidden("policy.balance_not_allowed", _BALANCE_NOT_ALLOWED)
    amount = Money(CNY, order.amount)
    key = str(user_id)
    claim_wallets(tx, key)  # before the limits: a parallel payment or transfer waits
    _within_balance_limits(tx, user_id, amount, rights)
    merchant = merchant_facts(tx, order.merchant_id)
    receipt = ledger.transfer(
        tx,
        f"order:{order.id}:pay",
        account_of(tx, key, "user_balance"),
        merchant.settlement_account_id,
        amount,
    )
    mark_paid(tx, order, user_id, "balance", receipt.operation_id, on_behalf=on_behalf)
    return order_view(tx, order)


def pay_with_card(
    db: Database,
    user_id: uuid.UUID,
    order_id: uuid.UUID,
    card_id: uuid.UUID,
    payment_password: str,
    *,
    challenge_return_url: str | None = None,
    on_behalf: OnBehalf | None = None,
) -> OrderView | str:
    """The order paid by a foreign card, or the URL of the issuer's 3-D Secure check to
    send the person to (then ``finish_card_payment``)."""

    def start(tx: Tx) -> _CardCharge | None:
        security.check_payment_password(tx, user_id, payment_password)
        return _card_charge(tx, user_id, order_id, card_id, on_behalf)

    charge = db.run(start)
    if charge is None:  # a retry after the payment went through: its answer, again
        return db.run(lambda tx: get_order(tx, order_id))
    network = connectors.network_for(db)
    authorization = network.authorize(
        charge.token,
        charge.total,
        idempotency_key=charge.key,
        three_ds_return_url=challenge_return_url,
    )
    if authorization.status == "challenge_required":
        assert authorization.challenge_url is not None
        return authorization.challenge_url
    return _capture_and_record(db, user_id, order_id, charge, authorization.id, on_behalf)


def pay_with_bank_card(
    db: Database,
    user_id: uuid.UUID,
    order_id: uuid.UUID,
    bank_card_id: uuid.UUID,
    payment_password: str,
    *,
    on_behalf: OnBehalf | None = None,
) -> OrderView:
    """A quick payment from a bound mainland bank card: the bank debits the account (no
    fee), then the ledger records the money arriving and going to the merchant."""

    def check(tx: Tx) -> tuple[str, str, Money] | None:
        security.check_payment_password(tx, user_id, payment_password)
        order = payable_order(tx, user_id, order_id, on_behalf=on_behalf)
        if order is None:  # already paid by this person: a retry
            return None
        restrictions.refuse_money_out(tx, user_id)
        token = funding.bank_token(tx, user_id, bank_card_id)
        # One debit per attempt: a retry with the same card gets the same one back.
        prefix = f"order:{order.id}:bank:{bank_card_id}:"
        if not (order.card_attempt_key or "").startswith(prefix):
            _begin_attempt(tx, order, prefix + secrets.token_hex(4))
        assert order.card_attempt_key is not None
        return token, order.card_attempt_key, Money(CNY, order.amount)

    started = db.run(check)
    if started is None:
        return db.run(lambda tx: get_order(tx, order_id))
    token, key, amount = started
    debit = funding.connector(db).debit(token, amount, idempotency_key=key)

    def record(tx: Tx) -> OrderView:
        order = payable_order(tx, user_id, order_id, on_behalf=on_behalf)
        if order is None:  # paid already: by this very debit (a retry), or another way
            if tx.session.get_one(PaymentOrder, order_id).bank_debit_id != debit.id:
                raise Conflict("order.paid", N_("This order is already paid."))
            return get_order(tx, order_id)
        if order.card_attempt_key != key:
            raise _attempt_ended(order)
        claim_wallets(tx, SYSTEM)
        clearing = account_of(tx, SYSTEM, "bank_clearing")
        merchant = merchant_of(tx, order.merchant_id)
        receipt = ledger.execute(
            tx,
            f"order:{order.id}:pay",
            {"order": order.id, "source": "bank_card", "debit": debit.id},
            lambda booking: _just_transfer(
                booking, clearing, merchant.settlement_account_id, amount
            ),
        )
        order.bank_card_id, order.bank_debit_id = bank_card_id, debit.id
        order.card_attempt_key = None  # this attempt is the payment
        mark_paid(tx, order, user_id, "bank_card", receipt.operation_id, on_behalf=on_behalf)
        return order_view(tx, order)

    try:
        return db.run(record, isolation="read committed")
    except Conflict:
        # Paid or closed meanwhile: the debit was never recorded, so the bank gives it back.
        funding.connector(db).credit(
            debit.id, amount, idempotency_key=f"order:{order_id}:undo:{debit.id}"
        )
        raise


def _just_transfer(
    booking: ledger.Booking, debit: uuid.UUID, credit: uuid.UUID, amount: Money
) -> None:
    booking.transfer(debit, credit, amount)


def finish_card_payment(
    db: Database, user_id: uuid.UUID, order_id: uuid.UUID, *, on_behalf: OnBehalf | None = None
) -> OrderView:
    """After the issuer's 3-D Secure check: the order's authorization (the network gives
    the same one back for the order's key) is captured and recorded."""
    card_id = db.run(lambda tx: _order(tx, order_id).card_id)
    if card_id is None:
        raise Conflict("order.not_payable", N_("This order cannot be paid now."))
    charge = db.run(lambda tx: _card_charge(tx, user_id, order_id, card_id, on_behalf))
    if charge is None:  # finished already (a second return from the check)
        return db.run(lambda tx: get_order(tx, order_id))
    authorization = connectors.network_for(db).authorize(
        charge.token, charge.total, idempotency_key=charge.key
    )
    if authorization.status != "approved":
        raise Conflict(
            "card.challenge_failed",
            N_(
                "The card's bank could not confirm it is you, so the payment was not made. "
                "Pay again and answer your bank's check, or use another card."
            ),
        )
    return _capture_and_record(db, user_id, order_id, charge, authorization.id, on_behalf)


def _capture_and_record(
    db: Database,
    user_id: uuid.UUID,
    order_id: uuid.UUID,
    charge: _CardCharge,
    auth_id: str,
    on_behalf: OnBehalf | None = None,
) -> OrderView:
    capture = connectors.network_for(db).capture(auth_id)
    card_id = charge.card_id

    def record(tx: Tx) -> OrderView:
        order = payable_order(tx, user_id, order_id, on_behalf=on_behalf)
        if order is None:  # paid already: by this very capture (a retry), or another way
            if tx.session.get_one(PaymentOrder, order_id).card_capture_id != capture.id:
                raise Conflict("order.paid", N_("This order is already paid."))
            return get_order(tx, order_id)
        if order.card_attempt_key != charge.key:
            raise _attempt_ended(order)
        amount = Money(CNY, order.amount)
        fee = capture.amount - amount
        claim_wallets(tx, SYSTEM)
        clearing = account_of(tx, SYSTEM, "card_clearing")
        merchant = merchant_of(tx, order.merchant_id)

        def build(booking: ledger.Booking) -> None:
            booking.transfer(clearing, merchant.settlement_account_id, amount)
            if fee.minor > 0:
                booking.transfer(clearing, account_of(tx, SYSTEM, "fee_income"), fee)

        receipt = ledger.execute(
            tx,
            f"order:{order.id}:pay",
            {"order": order.id, "source": "foreign_card", "capture": capture.id},
            build,
        )
        order.fee = fee.minor
        order.card_id = card_id
        order.card_currency = capture.amount_in_card_currency.currency
        order.card_amount = capture.amount_in_card_currency.minor
        order.card_rate = capture.rate
        order.card_capture_id = capture.id
        order.card_attempt_key = None  # this attempt is the payment
        mark_paid(tx, order, user_id, "foreign_card", receipt.operation_id, on_behalf=on_behalf)
        _card_velocity_rule(tx, user_id)
        return order_view(tx, order)

    try:
        return db.run(record, isolation="read committed")
    except Conflict:
        # Paid or closed meanwhile (two friends paying one pay-for-me link at once): this
        # capture was never recorded, so the card gets it back, once whatever the retries.
        connectors.network_for(db).refund(
            capture.id,
            capture.amount,
            rate_date=db.clock.now().astimezone(UTC).date(),
            idempotency_key=f"order:{order_id}:undo:{capture.id}",
        )
        raise


@dataclass(frozen=True)
class _CardCharge:
    card_id: uuid.UUID
    token: str
    total: Money  # the order and the fee, in CNY
    key: str  # the network's idempotency key for this attempt


def _card_charge(
    tx: Tx,
    user_id: uuid.UUID,
    order_id: uuid.UUID,
    card_id: uuid.UUID,
    on_behalf: OnBehalf | None = None,
) -> _CardCharge | None:
    """Check a card payment may start, and record the attempt on the order before the
    network is asked: one key per order and card (a retry, or the return from 3-D
    Secure, gets the same authorization back; another card asks for a new one), and a
    trace the worker finds if the process dies between the card and the ledger. None:
    this person has paid the order already (a retry whose first answer was lost)."""
    order = payable_order(tx, user_id, order_id, on_behalf=on_behalf)
    if order is None:
        return None
    restrictions.refuse_money_out(tx, user_id)
    card = foreign_cards.usable_card(tx, user_id, card_id)
    amount = Money(CNY, order.amount)
    _within_card_limits(tx, user_id, amount, standing(tx, user_id).rights)
    live = order.card_attempt_key
    if order.card_id != card_id or live is None or ":card:" not in live:
        order.card_id = card_id
        _begin_attempt(tx, order, f"order:{order.id}:card:{card_id}:{secrets.token_hex(4)}")
    assert order.card_attempt_key is not None
    return _CardCharge(card_id, card.token, amount + _fee(tx, amount), order.card_attempt_key)


# --- inside --------------------------------------------------------------------------------


def _order(tx: Tx, order_id: uuid.UUID) -> PaymentOrder:
    order = tx.session.get(PaymentOrder, order_id)
    if order is None:
        raise NotFound("order.not_found", N_("There is no such order."))
    return order


def merchant_of(tx: Tx, merchant_id: uuid.UUID) -> Merchant:
    merchant = tx.session.get(Merchant, merchant_id)
    assert merchant is not None
    return merchant


@dataclass(frozen=True)
class MerchantFacts:
    """What a payment needs of its merchant; none of it changes once the merchant is
    created (nothing updates a ``merchants`` row)."""

    name: str
    settlement_account_id: uuid.UUID


# Remembered per process and database, as account ids are (``_OPENED``): one load less
# on every payment and every order shown.
_MERCHANTS: WeakKeyDictionary[Database, dict[uuid.UUID, MerchantFacts]] = WeakKeyDictionary()


def merchant_facts(tx: Tx, merchant_id: uuid.UUID) -> MerchantFacts:
    remembered = _MERCHANTS.setdefault(tx.db, {}).get(merchant_id)
    if remembered is not None:
        return remembered
    merchant = merchant_of(tx, merchant_id)
    facts = MerchantFacts(merchant.name, merchant.settlement_account_id)
    tx.after_commit(partial(_remember_merchant, _MERCHANTS[tx.db], merchant_id, facts))
    return facts


def _remember_merchant(
    known: dict[uuid.UUID, MerchantFacts], merchant_id: uuid.UUID, facts: MerchantFacts
) -> None:
    if len(known) > 100_000:
        known.clear()
    known[merchant_id] = facts


def _refuse_strangers(order: PaymentOrder, user_id: uuid.UUID) -> None:
    """An order someone has paid is theirs and the buyer's: to anyone else it is unknown
    (the same 404 as a made-up id, so that no answer tells whether it exists)."""
    if order.payer_id is not None and user_id not in (order.buyer_id, order.payer_id):
        raise NotFound("order.not_found", N_("There is no such order."))


def _attempt_ended(order: PaymentOrder) -> Conflict:
    """Why a card or bank card attempt may no longer be recorded (what it took is sent
    back): another attempt replaced it (the person chose another way of paying, or a
    second friend started paying the same pay-for-me order), or the worker gave it up
    as stranded."""
    if order.card_attempt_key is not None:
        return Conflict(
            "card.attempt_replaced",
            N_(
                "Another payment of this order started while yours was under way, so yours "
                "was cancelled and anything taken from your card goes back to it. Look at "
                "the order before paying again."
            ),
        )
    return Conflict(
        "card.attempt_abandoned",
        N_("This card payment took too long and was cancelled. Pay again."),
    )


def payable_order(
    tx: Tx, user_id: uuid.UUID, order_id: uuid.UUID, *, on_behalf: OnBehalf | None = None
) -> PaymentOrder | None:
    """The order, locked, if it may be paid now; None if this person already paid it.
    Someone else's paid order is unknown to them, unless they come by a pay-for-me link
    (``on_behalf``), which is told it was paid."""
    order = tx.session.get(PaymentOrder, order_id, with_for_update=True)
    if order is None:
        raise NotFound("order.not_found", N_("There is no such order."))
    if on_behalf is None:
        _refuse_strangers(order, user_id)
    if order.status == "TRADE_SUCCESS" and order.payer_id == user_id:
        return None
    if order.status != "WAIT_BUYER_PAY":
        raise Conflict("order.not_payable", N_("This order cannot be paid now."))
    if order.expires_at <= tx.now():
        order.status = "TRADE_CLOSED"
        raise Conflict("order.expired", N_("This order has expired. Ask the shop for a new one."))
    return order


def mark_paid(
    tx: Tx,
    order: PaymentOrder,
    user_id: uuid.UUID,
    source: str,
    operation_id: uuid.UUID,
    *,
    on_behalf: OnBehalf | None = None,
) -> None:
    """``user_id`` paid: their limits, rights and refunds follow the payment; the order
    stays the asker's when a friend paid it (``on_behalf``)."""
    order.status, order.source = "TRADE_SUCCESS", source
    order.buyer_id = on_behalf.buyer_id if on_behalf else user_id
    order.payer_id = user_id
    order.paid_at, order.ledger_operation_id = tx.now(), operation_id
    limits.count_payment(tx, user_id, source, order.amount, order.paid_at)
    if order.card_attempt_key is not None:
        # Paid another way while a card or bank attempt was under way: that one is
        # given up and what it may have taken goes back. (The attempt being recorded
        # cleared its own key first.)
        _give_up(tx, order)
    if on_behalf is not None:
        on_behalf.record(tx, order.id, user_id)
    _announce_paid(tx, order.id)


# Who is told, in the paying (or refunding) transaction, that an order was paid or
# refunded: the trade API queues the shop's notification there, so that the payment and
# the notification commit together (a domain above payments registers; payments never
# imports it).
OrderListener = Callable[[Tx, uuid.UUID], None]
_PAID_LISTENERS: list[OrderListener] = []
_REFUND_LISTENERS: list[OrderListener] = []


def on_paid(listener: OrderListener) -> None:
    if listener not in _PAID_LISTENERS:
        _PAID_LISTENERS.append(listener)


def on_refunded(listener: OrderListener) -> None:
    if listener not in _REFUND_LISTENERS:
        _REFUND_LISTENERS.append(listener)


def _announce_paid(tx: Tx, order_id: uuid.UUID) -> None:
    for listener in _PAID_LISTENERS:
        listener(tx, order_id)


def announce_refund(tx: Tx, order_id: uuid.UUID) -> None:
    """Called by the refunds once a refund's money has moved (refunds.py)."""
    for listener in _REFUND_LISTENERS:
        listener(tx, order_id)


def close_order(tx: Tx, merchant_id: uuid.UUID, order_id: uuid.UUID) -> OrderView:
    """The merchant closes its unpaid order (Alipay's trade close): nobody can pay it any
    more; a card attempt under way is given up and whatever it took goes back."""
    order = tx.session.get(PaymentOrder, order_id, with_for_update=True)
    if order is None or order.merchant_id != merchant_id:
        raise NotFound("order.not_found", N_("There is no such order."))
    if order.status == "WAIT_BUYER_PAY":
        order.status = "TRADE_CLOSED"
        if order.card_attempt_key is not None:
            _give_up(tx, order)
    elif order.status != "TRADE_CLOSED":
        raise Conflict("order.not_closable", N_("A paid order cannot be closed."))
    return order_view(tx, order)


def _fee(tx: Tx, amount: Money) -> Money:
    settings = tx.settings
    major, _, currency = settings.foreign_card_fee_threshold.partition(" ")
    return card_network.foreign_card_fee(
        amount,
        threshold=Money.of(currency.strip() or CNY, major),
        rate_percent=settings.foreign_card_fee_percent,
    )


def _card_velocity_rule(tx: Tx, user_id: uuid.UUID) -> None:
    """Risk rule: an unverified account paying by card faster than the velocity limit."""
    if standing(tx, user_id).level != "unverified":
        return
    window = timedelta(minutes=tx.settings.risk_card_velocity_minutes)
    recent = tx.session.scalar(
        select(func.count()).where(
            PaymentOrder.payer_id == user_id,
            PaymentOrder.source == "foreign_card",
            PaymentOrder.paid_at > tx.now() - window,
        )
    )
    if int(recent or 0) >= tx.settings.risk_card_velocity_payments:
        restrictions.impose(
            tx, user_id, "restricted", "card_velocity", imposed_by="rule:card_velocity"
        )


def _within_balance_limits(tx: Tx, user_id: uuid.UUID, amount: Money, rights: Rights) -> None:
    used = limits.usage(tx, user_id)
    for limit, spent, code in (
        (rights.balance_per_day, used.balance_today, "policy.balance_day_limit"),
        (rights.balance_per_year, used.balance_this_year, "policy.balance_year_limit"),
    ):
        if limit is not None and spent + amount.minor > limit.minor:
            raise Forbidden(
                code,
                N_("This payment would pass your limit of {limit} ({used} used)."),
                {"limit": limit.format(), "used": Money(CNY, spent).format()},
            )


def within_card_limits(tx: Tx, user_id: uuid.UUID, amount: Money) -> None:
    """Refuse a foreign card charge of ``amount`` (CNY) that would pass the person's
    card limits (policy.py): per payment, and the calendar year's total."""
    _within_card_limits(tx, user_id, amount, standing(tx, user_id).rights)


def _within_card_limits(tx: Tx, user_id: uuid.UUID, amount: Money, rights: Rights) -> None:
    rates = tx.settings.fx_rates
    used = limits.usage(tx, user_id).card_this_year
    checks = [(rights.card_per_payment, amount.minor, "policy.card_payment_limit")]
    checks.append((rights.card_per_year, used + amount.minor, "policy.card_year_limit"))
    for limit, cny_minor, code in checks:
        if limit is None:
            continue
        in_limit_currency = Decimal(cny_minor) / rates[limit.currency]
        if in_limit_currency > limit.minor:
            raise Forbidden(
                code,
                N_("This payment would pass your foreign card limit of {limit}."),
                {"limit": limit.format()},
            )


class OrderFields(Protocol):
    """What ``order_view`` reads of an order: a ``PaymentOrder``, or the row the
    in-database payment returns."""

    id: uuid.UUID
    merchant_id: uuid.UUID
    out_trade_no: str
    subject: str
    currency: str
    amount: int
    refunded: int
    status: str
    created_at: datetime
    expires_at: datetime
    paid_at: datetime | None
    source: str | None
    fee: int
    card_currency: str | None
    card_amount: int | None
    buyer_id: uuid.UUID | None
    payer_id: uuid.UUID | None


def order_view(tx: Tx, order: OrderFields) -> OrderView:
    merchant = merchant_facts(tx, order.merchant_id)
    card_amount = (
        Money(order.card_currency, order.card_amount)
        if order.card_currency and order.card_amount is not None
        else None
    )
    return OrderView(
        id=order.id,
        merchant=merchant.name,
        out_trade_no=order.out_trade_no,
        subject=order.subject,
        amount=Money(order.currency, order.amount),
        refunded=Money(order.currency, order.refunded),
        status=order.status,
        created_at=order.created_at,
        expires_at=order.expires_at,
        paid_at=order.paid_at,
        source=order.source,
        fee=Money(order.currency, order.fee),
        card_amount=card_amount,
        buyer_id=order.buyer_id,
        payer_id=order.payer_id,
    )


# Held refunds become the person's the moment they are verified, in that transaction.
identity.on_level_set(release_held)
# Releasing a freeze takes two risk officers above a threshold of what it holds.
restrictions.on_measure_held(frozen_money)
