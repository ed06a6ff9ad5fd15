"""Refunds of merchants' orders, the way the money came, once per request number.

A refund that stays in the wallet (to the balance, the held money or a Tour Pass) is one
transaction. One that goes back to a card or a mainland bank card moves money outside
the ledger, so it runs in three steps, each safe to die after (README, "No money leaves
without a reservation"):

1. reserve (one transaction): under the order's row lock, what is left to refund is
   checked against the refunds done *and* those under way, the money is held in the
   ledger (merchant -> clearing), and the refund row is written as pending;
2. ask the card network or the bank, under the refund's own key (a retry gets the same
   refund back, never a second one);
3. settle (one transaction): the holds are posted and the row succeeds; or, when the
   outside party refused, the holds are voided and the row fails.

A request that dies between 1 and 3 leaves a pending row; a retry of the same request,
or the worker after the grace time (``finish_pending_refunds``), asks the outside party
again under the same key and settles from its answer. Nothing is given back to a card
without a reservation standing behind it, so racing refunds cannot exceed the order.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from functools import partial
from typing import Final

from sqlalchemy import func, select

from qianbao.db import Database, Tx
from qianbao.errors import Conflict, InvalidInput, NotFound, QianbaoError
from qianbao.funding import card_network, connectors
from qianbao.funding import service as funding
from qianbao.funding.bank import BankCreditExceeds, BankInputRefused, BankStateRefused
from qianbao.i18n import N_
from qianbao.money import Money
from qianbao.risk import restrictions
from qianbao.standing import standing
from qianbao.wallet import limits
from qianbao.wallet.ledger import service as ledger
from qianbao.wallet.payments import service as payments
from qianbao.wallet.payments.models import OrderRefund, PaymentOrder

log = logging.getLogger(__name__)
CNY: Final = "CNY"


@dataclass(frozen=True)
class RefundView:
    id: uuid.UUID
    out_request_no: str
    amount: Money
    fee_refunded: Money
    destination: str
    card_amount: int | None  # minor units of the card's currency
    status: str = "succeeded"
    created_at: datetime | None = None


@dataclass(frozen=True)
class _OutsideRefund:
    """A reserved refund to ask the card network or the bank for."""

    refund_id: uuid.UUID
    order_id: uuid.UUID
    destination: str  # foreign_card | bank_card
    amount: Money
    fee_part: Money
    key: str
    capture_id: str | None
    bank_debit_id: str | None


def refund(
    db: Database,
    merchant_id: uuid.UUID,
    order_id: uuid.UUID,
    out_request_no: str,
    amount: Money,
    *,
    to_balance: bool = False,
) -> RefundView:
    """Give back all or part of a paid order, the way it came, once per request number;
    ``to_balance`` sends a card payment's refund to the buyer's Qianbao balance instead
    (a closed card, or the merchant's choice: the seed's 1688 and Taobao refunds). Money
    for a person whose level may not use a balance is held, visible, until they are
    verified. The same request number with another amount or destination is refused
    (``idempotency.mismatch``); one whose card or bank refused it may be asked again."""
    request = _RefundRequest(
        merchant_id, order_id, check_request_no(out_request_no), amount, to_balance
    )
    started = db.run(partial(_start_refund, request=request), isolation="read committed")
    if isinstance(started, RefundView):
        return started  # done in the wallet, or a retry of a settled refund
    return _ask_outside(db, started)


MAX_REQUEST_NO: Final = 64  # OrderRefund.out_request_no, as Alipay's out_request_no


def check_request_no(text: str | None) -> str:
    """A refund's request number (the Idempotency-Key header or ``out_request_no``)."""
    if not text or len(text) > MAX_REQUEST_NO:
        raise InvalidInput(
            "refund.request_no",
            N_(
                "A refund needs a request number of 1 to 64 characters: the "
                "Idempotency-Key header or out_request_no."
            ),
        )
    return text


@dataclass(frozen=True)
class _RefundRequest:
    merchant_id: uuid.UUID
    order_id: uuid.UUID
    out_request_no: str
    amount: Money
    to_balance: bool

    def digest(self) -> str:
        # Every field that changes the refund's effect; the order is the row's own.
        return ledger.request_hash(
            {"op": "refund", "amount": self.amount, "to_balance": self.to_balance}
        )


def _start_refund(tx: Tx, *, request: _RefundRequest) -> RefundView | _OutsideRefund:
    order = tx.session.get(PaymentOrder, request.order_id, with_for_update=True)
    if order is None or order.merchant_id != request.merchant_id:
        raise NotFound("order.not_found", N_("There is no such order."))
    row = tx.session.scalar(
        select(OrderRefund)
        .where(
            OrderRefund.order_id == order.id,
            OrderRefund.out_request_no == request.out_request_no,
        )
        .with_for_update()
    )
    if row is not None and row.status != "failed":
        _same_request(row, request)
        if row.status == "succeeded":
            return _refund_view(row)
        return _outside_refund(order, row)  # under way: ask the outside party again
    _check_refundable(order, request.amount)
    fee_part = Money(CNY, _fee_share(tx, order, request.amount.minor))
    if order.bank_debit_id is None and (order.card_capture_id is None or request.to_balance):
        return _refund_in_wallet(tx, order, request, fee_part, row)
    return _reserve_refund(tx, order, request, fee_part, row)


def _same_request(row: OrderRefund, request: _RefundRequest) -> None:
    # Rows written before digests were kept are compared by amount alone.
    same = (
        row.request_hash == request.digest()
        if row.request_hash is not None
        else row.amount == request.amount.minor
    )
    if not same:
        raise Conflict(
            "idempotency.mismatch",
            N_(
                "This refund request number was used for another refund (another amount "
                "or destination). Use a new request number for a new refund."
            ),
            details={"out_request_no": request.out_request_no},
        )


def _check_refundable(order: PaymentOrder, amount: Money) -> None:
    if order.status not in ("TRADE_SUCCESS",) or order.buyer_id is None:
        raise Conflict("refund.not_refundable", N_("Only a paid order can be refunded."))
    if amount.currency != CNY or amount.minor <= 0:
        raise InvalidInput("refund.amount", N_("A refund is a positive amount in CNY."))
    left = order.amount - order.refunded - order.refund_pending
    if amount.minor > left:
        raise InvalidInput(
            "refund.too_much",
            N_("No more than {left} of this order is left to refund."),
            {"left": Money(CNY, left).format()},
            details={"left": str(Money(CNY, left).major)},
        )


def _refund_row(
    tx: Tx,
    order: PaymentOrder,
    request: _RefundRequest,
    fee_part: Money,
    earlier: OrderRefund | None,
    destination: str,
) -> OrderRefund:
    """The refund's row: a new one, or a failed one asked again as a new attempt."""
    row = earlier or OrderRefund(order_id=order.id, out_request_no=request.out_request_no)
    row.attempt = 0 if earlier is None else earlier.attempt + 1
    row.destination = destination
    row.amount, row.fee_refunded = request.amount.minor, fee_part.minor
    row.request_hash, row.to_balance = request.digest(), request.to_balance
    row.failure_code, row.card_amount, row.card_rate = None, None, None
    row.created_at = tx.now()
    if earlier is None:
        tx.session.add(row)
    return row


def _refund_in_wallet(
    tx: Tx,
    order: PaymentOrder,
    request: _RefundRequest,
    fee_part: Money,
    earlier: OrderRefund | None,
) -> RefundView:
    """A refund that stays in the wallet: one transaction, checked and posted at once."""
    payer_id = order.payer_id  # the money goes back to whoever paid (a friend, maybe)
    assert payer_id is not None
    merchant = payments.merchant_of(tx, order.merchant_id)
    payer = str(payer_id)
    payments.claim_wallets(tx, payer, payments.SYSTEM)
    registered = payments.payment_source(order.source)
    if registered is not None:  # back to what it was paid from (the Tour Pass)
        destination = registered.name
        target = registered.refund_target(tx, order.id)
    else:
        usable = standing(tx, payer_id).rights.use_balance and not (
            restrictions.is_frozen(tx, payer_id)
        )
        destination = "balance" if usable else "held"
        target = payments.account_of(tx, payer, "user_balance" if usable else "user_held")
    row = _refund_row(tx, order, request, fee_part, earlier, destination)
    amount = request.amount

    def build(booking: ledger.Booking) -> None:
        booking.transfer(merchant.settlement_account_id, target, amount)
        if fee_part.minor:  # a card payment's fee comes back with it
            booking.transfer(
                payments.account_of(tx, payments.SYSTEM, "fee_income"), target, fee_part
            )

    receipt = ledger.execute(
        tx,
        _refund_key(order.id, request.out_request_no, row.attempt),
        {"order": order.id, "request": request.out_request_no, "amount": amount},
        build,
    )
    row.status, row.ledger_operation_id = "succeeded", receipt.operation_id
    _add_refunded(tx, order, amount.minor)
    tx.session.flush()
    return _refund_view(row)


def _reserve_refund(
    tx: Tx,
    order: PaymentOrder,
    request: _RefundRequest,
    fee_part: Money,
    earlier: OrderRefund | None,
) -> _OutsideRefund:
    """Hold the refund in the ledger and write it as pending (step 1)."""
    merchant = payments.merchant_of(tx, order.merchant_id)
    payments.claim_wallets(tx, str(order.payer_id), payments.SYSTEM)
    destination = "bank_card" if order.bank_debit_id is not None else "foreign_card"
    row = _refund_row(tx, order, request, fee_part, earlier, destination)
    clearing = payments.account_of(
        tx, payments.SYSTEM, "bank_clearing" if order.bank_debit_id else "card_clearing"
    )
    expires_at = tx.now() + timedelta(days=tx.settings.refund_hold_days)
    key = _refund_key(order.id, request.out_request_no, row.attempt)
    holds: dict[str, uuid.UUID] = {}

    def build(booking: ledger.Booking) -> None:
        holds["amount"] = booking.hold(
            merchant.settlement_account_id, clearing, request.amount, expires_at=expires_at
        )
        if fee_part.minor:
            fee_income = payments.account_of(tx, payments.SYSTEM, "fee_income")
            holds["fee"] = booking.hold(fee_income, clearing, fee_part, expires_at=expires_at)

    ledger.execute(
        tx,
        f"{key}:reserve",
        {"order": order.id, "request": request.out_request_no, "amount": request.amount},
        build,
    )
    row.status, row.outside_key = "pending", key
    row.hold_id, row.fee_hold_id = holds["amount"], holds.get("fee")
    order.refund_pending += request.amount.minor
    tx.session.flush()
    return _outside_refund(order, row)


def _refund_key(order_id: uuid.UUID, request_no: str, attempt: int) -> str:
    # The first attempt keeps the key refunds always had, so a refund asked before this
    # code shipped is still known to the card network by it.
    base = f"order:{order_id}:refund:{request_no}"
    return base if attempt == 0 else f"{base}:{attempt}"


def _outside_refund(order: PaymentOrder, row: OrderRefund) -> _OutsideRefund:
    assert row.outside_key is not None
    return _OutsideRefund(
        refund_id=row.id,
        order_id=order.id,
        destination=row.destination,
        amount=Money(CNY, row.amount),
        fee_part=Money(CNY, row.fee_refunded),
        key=row.outside_key,
        capture_id=order.card_capture_id,
        bank_debit_id=order.bank_debit_id,
    )


def _ask_outside(db: Database, plan: _OutsideRefund) -> RefundView:
    """Step 2 and 3: the card network or the bank gives the money back under the refund's
    key, then the ledger posts (or, on a refusal, voids) what step 1 held. An error that
    leaves the answer unknown (a timeout) leaves the refund pending for a retry or the
    worker."""
    try:
        card_refund = _give_back_outside(db, plan)
    except _OUTSIDE_REFUSALS as refusal:
        db.run(partial(_fail_refund, plan=plan, code=refusal.code), isolation="read committed")
        raise
    return db.run(
        partial(_settle_refund, plan=plan, card_refund=card_refund), isolation="read committed"
    )


# What the card network or the bank answers when it will not give the money back: final,
# so the reservation goes. Anything else (a timeout) leaves the answer unknown.
_OUTSIDE_REFUSALS: Final = (
    card_network.CardStateRefused,
    card_network.CardInputRefused,
    BankStateRefused,
    BankInputRefused,
    BankCreditExceeds,
)


def _give_back_outside(db: Database, plan: _OutsideRefund) -> card_network.Refund | None:
    if plan.destination == "bank_card":
        assert plan.bank_debit_id is not None
        funding.connector(db).credit(plan.bank_debit_id, plan.amount, idempotency_key=plan.key)
        return None
    assert plan.capture_id is not None
    return connectors.network_for(db).refund(
        plan.capture_id,
        plan.amount + plan.fee_part,
        rate_date=db.clock.now().astimezone(UTC).date(),
        idempotency_key=plan.key,
    )


def _locked_refund(tx: Tx, plan: _OutsideRefund) -> tuple[PaymentOrder, OrderRefund]:
    order = tx.session.get_one(PaymentOrder, plan.order_id, with_for_update=True)
    row = tx.session.get_one(OrderRefund, plan.refund_id, with_for_update=True)
    return order, row


def _settle_refund(
    tx: Tx, *, plan: _OutsideRefund, card_refund: card_network.Refund | None
) -> RefundView:
    order, row = _locked_refund(tx, plan)
    if row.status != "pending" or row.outside_key != plan.key:
        if row.status == "succeeded" and row.outside_key == plan.key:
            return _refund_view(row)  # settled meanwhile (a double submit, the worker)
        # The outside party gave money back for an attempt this row no longer stands
        # for: nothing in the ledger covers it. Never expected (a refusal is final);
        # loud, so that an operator reconciles it by hand.
        log.error("refund %s given back outside without its reservation", plan.key)
        raise Conflict("refund.state_changed", N_("This refund changed while it was made."))
    holds = [row.hold_id, row.fee_hold_id]
    receipt = ledger.execute(
        tx,
        f"{plan.key}:post",
        {"op": "post", "holds": holds},
        lambda booking: _post_all(booking, holds),
    )
    row.status, row.ledger_operation_id = "succeeded", receipt.operation_id
    if card_refund is not None:
        row.card_amount = card_refund.amount_in_card_currency.minor
        row.card_rate = card_refund.rate
    order.refund_pending -= row.amount
    _add_refunded(tx, order, row.amount)
    tx.session.flush()
    return _refund_view(row)


def _fail_refund(tx: Tx, *, plan: _OutsideRefund, code: str) -> None:
    """The outside party refused: the reservation goes, the request number may be used
    again (to the balance, say)."""
    order, row = _locked_refund(tx, plan)
    if row.status != "pending" or row.outside_key != plan.key:
        return
    holds = [row.hold_id, row.fee_hold_id]
    ledger.execute(
        tx,
        f"{plan.key}:void",
        {"op": "void", "holds": holds},
        lambda booking: _void_all(booking, holds),
    )
    row.status, row.failure_code = "failed", code[:64]
    order.refund_pending -= row.amount


def _post_all(booking: ledger.Booking, holds: list[uuid.UUID | None]) -> None:
    for hold in holds:
        if hold is not None:
            booking.post(hold)


def _void_all(booking: ledger.Booking, holds: list[uuid.UUID | None]) -> None:
    for hold in holds:
        if hold is not None:
            booking.void(hold)


def _add_refunded(tx: Tx, order: PaymentOrder, amount_minor: int) -> None:
    order.refunded += amount_minor
    if order.payer_id is not None and order.source is not None and order.paid_at is not None:
        # Off the periods the payment was counted in, as the history's sums would be.
        limits.count_payment(tx, order.payer_id, order.source, -amount_minor, order.paid_at)
    if order.refunded == order.amount:
        order.status = "TRADE_CLOSED"  # Alipay: a fully refunded trade is closed
    payments.announce_refund(tx, order.id)


def finish_pending_refunds(db: Database, limit: int = 100) -> int:
    """Refunds left pending past the grace time (the request died after step 1 or 2) are
    asked of the outside party again under their key, and settled from its answer: the
    same refund if it was made, a new one if it was not (the merchant asked for it and
    the money is held for it), a failure if it is refused. Returns how many settled."""
    due = db.run(partial(_pending_refunds, limit=limit), isolation="read committed")
    done = 0
    for plan in due:
        try:
            _ask_outside(db, plan)
        except QianbaoError as refusal:
            log.info("pending refund %s refused: %s", plan.key, refusal.code)
        except Exception:  # one outside party's trouble must not hold the others back
            log.exception("finishing refund %s failed; the next run retries", plan.key)
            continue
        done += 1
    return done


def _pending_refunds(tx: Tx, *, limit: int) -> list[_OutsideRefund]:
    grace = timedelta(seconds=tx.settings.refund_grace_seconds)
    rows = tx.session.execute(
        select(OrderRefund, PaymentOrder)
        .join(PaymentOrder, PaymentOrder.id == OrderRefund.order_id)
        .where(OrderRefund.status == "pending", OrderRefund.created_at <= tx.now() - grace)
        .order_by(OrderRefund.created_at)
        .limit(limit)
    ).all()
    return [_outside_refund(order, row) for row, order in rows]


def order_refunds(tx: Tx, order_id: uuid.UUID) -> list[RefundView]:
    rows = tx.session.scalars(
        select(OrderRefund).where(OrderRefund.order_id == order_id).order_by(OrderRefund.created_at)
    )
    return [_refund_view(row) for row in rows]


def merchant_refunds_between(
    tx: Tx, merchant_id: uuid.UUID, since: datetime, until: datetime
) -> list[tuple[uuid.UUID, RefundView]]:
    """The merchant's refunds done from ``since`` to before ``until`` (a daily bill),
    each with its order's id, oldest first."""
    rows = tx.session.execute(
        select(OrderRefund.order_id, OrderRefund)
        .join(PaymentOrder, PaymentOrder.id == OrderRefund.order_id)
        .where(
            PaymentOrder.merchant_id == merchant_id,
            OrderRefund.status == "succeeded",
            OrderRefund.created_at >= since,
            OrderRefund.created_at < until,
        )
        .order_by(OrderRefund.created_at)
    ).all()
    return [(order_id, _refund_view(row)) for order_id, row in rows]


def _fee_share(tx: Tx, order: PaymentOrder, refund_minor: int) -> int:
    """The fee refunded with ``refund_minor``: in proportion, the last refund taking
    whatever the others (done or under way) have not, so the whole fee comes back with
    the whole amount, to the fen."""
    if order.fee == 0:
        return 0
    if order.refunded + order.refund_pending + refund_minor == order.amount:
        already = tx.session.scalar(
            select(func.coalesce(func.sum(OrderRefund.fee_refunded), 0)).where(
                OrderRefund.order_id == order.id, OrderRefund.status != "failed"
            )
        )
        return order.fee - int(already or 0)
    share = Decimal(order.fee) * refund_minor / order.amount
    return int(share.quantize(Decimal(1), ROUND_HALF_UP))


def _refund_view(row: OrderRefund) -> RefundView:
    return RefundView(
        id=row.id,
        out_request_no=row.out_request_no,
        amount=Money(CNY, row.amount),
        fee_refunded=Money(CNY, row.fee_refunded),
        destination=row.destination,
        card_amount=row.card_amount,
        status=row.status,
        created_at=row.created_at,
    )


@dataclass(frozen=True)
class HeldRefunds:
    """What the held money is made of, when it is refunds alone: the refunds proper and
    the share of the card fee that came back with them (CNY 100 + CNY 3 = CNY 103)."""

    refunded: Money
    fee_returned: Money


def held_refunds(tx: Tx, payer_id: uuid.UUID, held: Money) -> HeldRefunds | None:
    """Break ``held`` down into refunds and returned fee shares. Held money is released
    all at once, so it is the newest refunds kept as held that add up to it; None when
    they do not (money held for another reason), so nothing untrue is said."""
    rows = tx.session.execute(
        select(OrderRefund.amount, OrderRefund.fee_refunded)
        .join(PaymentOrder, PaymentOrder.id == OrderRefund.order_id)
        .where(PaymentOrder.payer_id == payer_id, OrderRefund.destination == "held")
        .order_by(OrderRefund.created_at.desc())
    )
    refunded = fee = 0
    for amount, fee_part in rows:
        if refunded + fee >= held.minor:
            break
        refunded, fee = refunded + amount, fee + fee_part
    if held.minor <= 0 or refunded + fee != held.minor:
        return None
    return HeldRefunds(Money(held.currency, refunded), Money(held.currency, fee))
