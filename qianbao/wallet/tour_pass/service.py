"""Tour Pass: a prepaid balance for visitors, topped up by foreign card.

The rules (alipay_rules.md section 4; every number is a setting, ``QIANBAO_TOUR_PASS_*``):

- Who: a person verified by passport (``policy.may_open_tour_pass``), whose mobile number
  is not from a refused region (default: mainland China, Hong Kong, Macao, Taiwan; the
  2019 Tour Pass wanted a foreign passport and an overseas number).
- A pass is valid ``tour_pass_validity_days`` (90) from opening. One open pass a person.
- Top-ups of CNY 100 to 2,000, the pass holding at most CNY 2,000 (top-ups still in
  progress count), each charged to a foreign card with a ``tour_pass_fee_percent`` (5%)
  fee on top, shown before confirming; the fee goes to fee income and is not given back
  (TourCard's "top-up service fee"; the reference gives back only the balance).
- Spent at merchants like a balance: the cashier offers it when the pass is open and
  holds enough; the order's money leaves the pass account.
- A merchant's refund of such a payment goes back to the pass. Decision: when the pass is
  closed or expired by then, the refund still lands in the pass and the pass is settled
  again, so the money goes back to the card it came from by the same road as the rest.
- At expiry (the worker's ``expire_tour_passes`` job) or when the person closes it, what
  is left goes back to the cards it came from, newest top-up first, each top-up giving
  back at most what it added (less what already went back). Each part is written first
  (a ``sending`` row and the ledger moving it to card clearing, in one transaction), then
  asked of the card network under the part's own idempotency key, then marked done: a
  crash anywhere and a rerun sends each part exactly once. A card that will not take its
  refund (closed, unknown to the network) gets the part back on the pass, and the next
  top-up's card is tried; what no card takes goes to the person's Qianbao balance (held
  if their level may not use one), so nothing is ever stuck.

Money moves only through the ledger: the pass is a ledger account of kind ``tour_pass``
with floor 0, so it can never be spent below zero whatever the races. Locks are taken in
one order everywhere (the order row, then the person's wallet claim and the system's,
then the pass row, then the ledger accounts) so use cases cannot deadlock each other.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Final, Literal

from sqlalchemy import func, select

from qianbao import policy
from qianbao.db import Database, Tx
from qianbao.errors import Conflict, Forbidden, InvalidInput, NotFound
from qianbao.funding import card_network, connectors, foreign_cards
from qianbao.i18n import N_
from qianbao.identity import security
from qianbao.identity import service as identity
from qianbao.money import Money
from qianbao.risk import restrictions
from qianbao.standing import standing
from qianbao.wallet import limits as usage
from qianbao.wallet.ledger import service as ledger
from qianbao.wallet.payments import service as payments
from qianbao.wallet.payments.models import OrderRefund, PaymentOrder
from qianbao.wallet.tour_pass.models import (
    TourPass,
    TourPassRefund,
    TourPassSpend,
    TourPassTopUp,
)

log = logging.getLogger(__name__)
CNY: Final = payments.CNY
SYSTEM: Final = payments.SYSTEM
SOURCE: Final = "tour_pass"  # PaymentOrder.source of an order paid from a pass
# A guard against a loop that would never end; a pass has at most a few dozen top-ups.
MAX_PARTS_PER_SETTLEMENT: Final = 1000

_NO_PASS: Final = N_("You have no open Tour Pass. Open one first.")
_NOT_ALLOWED: Final = N_(
    "A Tour Pass needs real-name verification by passport. Verify with your passport "
    "and face first."
)
_REGION_REFUSED: Final = N_(
    "A Tour Pass is for visitors from abroad: it cannot be opened with a mobile number "
    "from {region}."
)
# Answers of the card network that will not change on a retry.
_CARD_REFUSALS: Final = (
    card_network.CardInputRefused,
    card_network.CardStateRefused,
    card_network.CardRecordUnknown,
)
# A card that will not take a refund back (closed, the payment not refundable). "Capture
# unknown" is not among them: it is what a sandbox network in another process (the
# worker's) answers for a payment the web process took, so it waits for a run there.
_REFUND_REFUSALS: Final = (card_network.CardInputRefused, card_network.CardStateRefused)
_CHALLENGE_FAILED: Final = N_(
    "The card's bank could not confirm it is you, so the payment was not made. "
    "Pay again and answer your bank's check, or use another card."
)


# --- what the pages and the API show ----------------------------------------------------


@dataclass(frozen=True)
class Limits:
    min_top_up: Money
    max_top_up: Money
    max_balance: Money
    fee_percent: Decimal
    validity_days: int


@dataclass(frozen=True)
class TopUpView:
    id: uuid.UUID
    amount: Money
    fee: Money
    total: Money
    card_label: str  # "VISA ···· 0019"
    card_amount: Money | None  # what the card was charged, in its currency
    state: str
    refunded: Money
    created_at: datetime
    challenge_url: str | None = None  # set while the card's issuer checks the person


@dataclass(frozen=True)
class HistoryLine:
    kind: Literal["top_up", "payment", "merchant_refund", "refund"]
    at: datetime
    amount: Money  # into the pass (positive) or out of it (negative)
    label: str  # a merchant, or a card
    detail: str | None = None  # the fee of a top-up, the card-currency amount of a refund
    state: str = "done"


@dataclass(frozen=True)
class PassView:
    id: uuid.UUID
    state: str
    balance: Money
    opened_at: datetime
    expires_at: datetime
    closed_at: datetime | None
    settled: bool
    room: Money  # how much more may be added now
    history: list[HistoryLine]


@dataclass(frozen=True)
class CardQuote:
    card_id: uuid.UUID
    card_label: str
    card_total: Money  # amount + fee in the card's currency, at the settings' rate


@dataclass(frozen=True)
class Quote:
    amount: Money
    fee: Money
    total: Money
    cards: list[CardQuote]


@dataclass(frozen=True)
class Overview:
    refusal: str | None  # a msgid when the person may not open a pass
    refusal_params: dict[str, str]
    current: PassView | None  # the open pass, else the latest one
    limits: Limits
    cards: list[foreign_cards.ForeignCardView]


def limits(tx: Tx) -> Limits:
    settings = tx.settings
    return Limits(
        min_top_up=Money.of(CNY, settings.tour_pass_min_top_up),
        max_top_up=Money.of(CNY, settings.tour_pass_max_top_up),
        max_balance=Money.of(CNY, settings.tour_pass_max_balance),
        fee_percent=settings.tour_pass_fee_percent,
        validity_days=settings.tour_pass_validity_days,
    )


def overview(tx: Tx, user_id: uuid.UUID) -> Overview:
    refusal = _refusal(tx, user_id)
    open_pass = _open_pass(tx, user_id)
    latest = (
        open_pass
        or tx.session.scalars(
            select(TourPass)
            .where(TourPass.user_id == user_id)
            .order_by(TourPass.opened_at.desc())
            .limit(1)
        ).first()
    )
    return Overview(
        refusal=refusal[0] if refusal else None,
        refusal_params=refusal[1] if refusal else {},
        current=_pass_view(tx, latest) if latest else None,
        limits=limits(tx),
        cards=foreign_cards.cards_of(tx, user_id),
    )


def open_balance(tx: Tx, user_id: uuid.UUID) -> Money | None:
    """What the person's open pass holds (for the cashier); None without an open pass."""
    found = tx.session.scalars(
        select(TourPass).where(
            TourPass.user_id == user_id,
            TourPass.state == "open",
            TourPass.expires_at > tx.now(),
        )
    ).first()
    if found is None:
        return None
    return Money(CNY, ledger.balance(tx, found.account_id).available)


# --- opening -------------------------------------------------------------------------------


def open_pass(db: Database, user_id: uuid.UUID) -> PassView:
    """Open a pass (or give back the one already open: opening twice opens one)."""

    def run(tx: Tx) -> PassView:
        payments.claim_wallets(tx, str(user_id))
        existing = _open_pass(tx, user_id, lock=True)
        if existing is not None:
            return _pass_view(tx, existing)
        _require_eligible(tx, user_id)
        now = tx.now()
        account = ledger.open_account(tx, kind="tour_pass", currency=CNY, owner_id=user_id)
        row = TourPass(
            user_id=user_id,
            account_id=account,
            state="open",
            opened_at=now,
            expires_at=now + timedelta(days=tx.settings.tour_pass_validity_days),
        )
        tx.session.add(row)
        tx.session.flush()
        return _pass_view(tx, row)

    return db.run(run, isolation="read committed")


def _refusal(tx: Tx, user_id: uuid.UUID) -> tuple[str, dict[str, str]] | None:
    """Why the person may not have a pass (msgid and params), or None."""
    person = standing(tx, user_id)
    if not policy.may_open_tour_pass(person.level, person.rights):
        return _NOT_ALLOWED, {}
    region = identity.get_account(tx, user_id).phone.region
    if region in tx.settings.tour_pass_refused_phone_regions:
        return _REGION_REFUSED, {"region": region}
    return None


def _require_eligible(tx: Tx, user_id: uuid.UUID) -> None:
    refusal = _refusal(tx, user_id)
    if refusal is None:
        return
    message, params = refusal
    code = "policy.tour_pass_not_allowed" if message == _NOT_ALLOWED else "tour_pass.phone_region"
    raise Forbidden(code, message, params)


def _open_pass(tx: Tx, user_id: uuid.UUID, *, lock: bool = False) -> TourPass | None:
    """The person's open pass; one past its expiry is marked expired here (the worker
    then gives its money back) and does not count."""
    query = select(TourPass).where(TourPass.user_id == user_id, TourPass.state == "open")
    found = tx.session.scalars(query.with_for_update() if lock else query).first()
    if found is None:
        return None
    if found.expires_at <= tx.now():
        if not lock:  # mark it under its lock, unless the worker did meanwhile
            found = tx.session.get_one(
                TourPass, found.id, with_for_update=True, populate_existing=True
            )
            if found.state != "open":
                return None
        _expire(tx, found)
        return None
    return found


def _locked_open_pass(tx: Tx, user_id: uuid.UUID) -> TourPass:
    found = _open_pass(tx, user_id, lock=True)
    if found is None:
        raise NotFound("tour_pass.none", _NO_PASS)
    return found


# --- top-ups --------------------------------------------------------------------------------


def quote(tx: Tx, user_id: uuid.UUID, amount: Money) -> Quote:
    """The fee and the totals of a top-up, per card, before confirming it; refuses an
    amount outside the limits or above what the pass may still take."""
    pass_row = _open_pass(tx, user_id)
    if pass_row is None:
        raise NotFound("tour_pass.none", _NO_PASS)
    _check_amount(tx, pass_row, amount)
    fee = _fee(tx, amount)
    total = amount + fee
    rates = tx.settings.fx_rates
    cards = [
        CardQuote(
            card.id,
            _card_label(card.brand, card.last4),
            card_network.to_card_currency(total, card.currency, rates[card.currency]),
        )
        for card in foreign_cards.cards_of(tx, user_id)
        if card.currency in rates
    ]
    return Quote(amount, fee, total, cards)


@dataclass(frozen=True)
class _Charge:
    top_up_id: uuid.UUID
    token: str
    total: Money


def top_up(
    db: Database,
    user_id: uuid.UUID,
    card_id: uuid.UUID,
    amount: Money,
    payment_password: str,
    request_key: str,
    *,
    challenge_return_url: Callable[[uuid.UUID], str] | None = None,
) -> TopUpView:
    """Charge ``amount`` plus the fee to a foreign card and add ``amount`` to the open
    pass, confirmed by the payment password. ``request_key`` (the client's idempotency
    key) makes a retry return the same top-up. When the card's issuer wants a 3-D
    Secure check, the view carries its URL (the check sends the person back to
    ``challenge_return_url(top_up_id)``) and the top-up waits for ``finish_top_up``."""

    def start(tx: Tx) -> _Charge | TopUpView:
        security.check_payment_password(tx, user_id, payment_password)
        return _start_top_up(tx, user_id, card_id, amount, request_key)

    started = db.run(start, isolation="read committed")
    if isinstance(started, TopUpView):
        return started
    return_url = challenge_return_url(started.top_up_id) if challenge_return_url else None
    return _charge_card(db, user_id, started, return_url)


def finish_top_up(db: Database, user_id: uuid.UUID, top_up_id: uuid.UUID) -> TopUpView:
    """After the card issuer's 3-D Secure check: the top-up completed, or refused."""
    started = db.run(lambda tx: _pending_charge(tx, user_id, top_up_id))
    if isinstance(started, TopUpView):
        return started
    return _charge_card(db, user_id, started, None, after_challenge=True)


def _charge_card(
    db: Database,
    user_id: uuid.UUID,
    charge: _Charge,
    return_url: str | None,
    *,
    after_challenge: bool = False,
) -> TopUpView:
    network = connectors.network_for(db)
    try:
        authorization = network.authorize(
            charge.token,
            charge.total,
            idempotency_key=_top_up_key(charge.top_up_id),
            three_ds_return_url=return_url,
        )
    except _CARD_REFUSALS as refusal:
        code = refusal.code
        db.run(lambda tx: _fail_top_up(tx, charge.top_up_id, code))
        raise
    if authorization.status == "challenge_required" and not after_challenge:
        view = db.run(lambda tx: _top_up_view(tx, _top_up(tx, user_id, charge.top_up_id)))
        return replace(view, challenge_url=authorization.challenge_url)
    # Captured: a retry of a top-up whose first try took the money (capture again gives
    # that capture back, and recording it is idempotent).
    if authorization.status not in ("approved", "captured"):
        db.run(lambda tx: _fail_top_up(tx, charge.top_up_id, "card.challenge_failed"))
        raise Conflict("card.challenge_failed", _CHALLENGE_FAILED)
    if authorization.status == "approved" and not db.run(
        lambda tx: _still_open(tx, charge.top_up_id)
    ):
        # Closed or expired during the issuer's check: release the card's approval
        # rather than take money (and a fee) only to send it back.
        network.void(authorization.id)
        db.run(lambda tx: _fail_top_up(tx, charge.top_up_id, "tour_pass.none"))
        raise NotFound("tour_pass.none", _NO_PASS)
    capture = network.capture(authorization.id)
    return db.run(
        lambda tx: _record_top_up(tx, user_id, charge.top_up_id, capture),
        isolation="read committed",
    )


def _start_top_up(
    tx: Tx, user_id: uuid.UUID, card_id: uuid.UUID, amount: Money, request_key: str
) -> _Charge | TopUpView:
    if not 1 <= len(request_key) <= 64:
        raise InvalidInput("tour_pass.request_key", N_("A request key has 1 to 64 characters."))
    payments.claim_wallets(tx, str(user_id))
    pass_row = _locked_open_pass(tx, user_id)
    earlier = tx.session.scalars(
        select(TourPassTopUp).where(
            TourPassTopUp.pass_id == pass_row.id, TourPassTopUp.request_key == request_key
        )
    ).first()
    if earlier is not None:
        return _retried(tx, earlier, card_id, amount)
    _require_eligible(tx, user_id)
    restrictions.refuse_money_out(tx, user_id)
    _check_amount(tx, pass_row, amount)
    card = foreign_cards.usable_card(tx, user_id, card_id)
    payments.within_card_limits(tx, user_id, amount)  # as at the cashier: the fee aside
    row = TourPassTopUp(
        pass_id=pass_row.id,
        request_key=request_key,
        card_id=card.id,
        amount=amount.minor,
        fee=_fee(tx, amount).minor,
        state="pending",
        refunded=0,
        created_at=tx.now(),
    )
    tx.session.add(row)
    tx.session.flush()
    usage.count_card_top_up(tx, user_id, row.amount, row.created_at)
    return _Charge(row.id, card.token, Money(CNY, row.amount + row.fee))


def _retried(
    tx: Tx, earlier: TourPassTopUp, card_id: uuid.UUID, amount: Money
) -> _Charge | TopUpView:
    if (earlier.card_id, earlier.amount) != (card_id, amount.minor):
        raise Conflict(
            "idempotency.mismatch",
            N_("This top-up request repeats an earlier one's key with different contents."),
        )
    if earlier.state == "done":
        return _top_up_view(tx, earlier)
    if earlier.state == "failed":
        raise Conflict(
            "tour_pass.top_up_failed", N_("This top-up did not go through. Start a new one.")
        )
    card = foreign_cards.card_on_file(tx, earlier.card_id)
    return _Charge(earlier.id, card.token, Money(CNY, earlier.amount + earlier.fee))


def _pending_charge(tx: Tx, user_id: uuid.UUID, top_up_id: uuid.UUID) -> _Charge | TopUpView:
    row = _top_up(tx, user_id, top_up_id)
    if row.state == "done":
        return _top_up_view(tx, row)
    if row.state == "failed":
        raise Conflict(
            "tour_pass.top_up_failed", N_("This top-up did not go through. Start a new one.")
        )
    card = foreign_cards.card_on_file(tx, row.card_id)
    return _Charge(row.id, card.token, Money(CNY, row.amount + row.fee))


def _check_amount(tx: Tx, pass_row: TourPass, amount: Money) -> None:
    bounds = limits(tx)
    if amount.currency != CNY or not bounds.min_top_up <= amount <= bounds.max_top_up:
        raise InvalidInput(
            "tour_pass.top_up_range",
            N_("A top-up is between {min} and {max}."),
            {"min": bounds.min_top_up.format(), "max": bounds.max_top_up.format()},
        )
    room = _room(tx, pass_row)
    if amount > room:
        raise InvalidInput(
            "tour_pass.cap",
            N_("A Tour Pass holds at most {cap}. You can add up to {room} now."),
            {"cap": bounds.max_balance.format(), "room": room.format()},
        )


def _room(tx: Tx, pass_row: TourPass) -> Money:
    """What the pass may still take: the cap less its balance and every top-up under
    way (one whose 3-D Secure check was answered may still be captured for days; the
    worker fails the abandoned ones after the grace time)."""
    held = ledger.balance(tx, pass_row.account_id)
    query = select(func.coalesce(func.sum(TourPassTopUp.amount), 0)).where(
        TourPassTopUp.pass_id == pass_row.id,
        TourPassTopUp.state == "pending",
    )
    in_flight = int(tx.session.scalar(query) or 0)
    cap = limits(tx).max_balance
    return Money(CNY, max(0, cap.minor - held.posted - held.pending_credits - in_flight))


def _fee(tx: Tx, amount: Money) -> Money:
    share = Decimal(amount.minor) * tx.settings.tour_pass_fee_percent / 100
    return Money(CNY, int(share.quantize(Decimal(1), ROUND_HALF_UP)))


def _top_up(tx: Tx, user_id: uuid.UUID, top_up_id: uuid.UUID) -> TourPassTopUp:
    row = tx.session.get(TourPassTopUp, top_up_id)
    owner = tx.session.get(TourPass, row.pass_id) if row is not None else None
    if row is None or owner is None or owner.user_id != user_id:
        raise NotFound("tour_pass.top_up_not_found", N_("There is no such top-up."))
    return row


def _still_open(tx: Tx, top_up_id: uuid.UUID) -> bool:
    row = tx.session.get_one(TourPassTopUp, top_up_id)
    pass_row = tx.session.get_one(TourPass, row.pass_id)
    return pass_row.state == "open" and pass_row.expires_at > tx.now()


def _fail_top_up(tx: Tx, top_up_id: uuid.UUID, code: str) -> None:
    row = tx.session.get(TourPassTopUp, top_up_id, with_for_update=True)
    if row is not None and row.state == "pending":
        row.state, row.failure_code = "failed", code[:64]
        owner = tx.session.get_one(TourPass, row.pass_id).user_id
        usage.count_card_top_up(tx, owner, -(row.amount - row.refunded), row.created_at)


def _record_top_up(
    tx: Tx, user_id: uuid.UUID, top_up_id: uuid.UUID, capture: card_network.Capture
) -> TopUpView:
    payments.claim_wallets(tx, str(user_id), SYSTEM)
    row = tx.session.get_one(TourPassTopUp, top_up_id, with_for_update=True)
    if row.state == "done":
        return _top_up_view(tx, row)
    pass_row = tx.session.get_one(TourPass, row.pass_id, with_for_update=True)
    amount, fee = Money(CNY, row.amount), capture.amount - Money(CNY, row.amount)
    clearing = payments.account_of(tx, SYSTEM, "card_clearing")
    income = payments.account_of(tx, SYSTEM, "fee_income")

    def build(booking: ledger.Booking) -> None:
        booking.transfer(clearing, pass_row.account_id, amount)
        if fee.minor > 0:
            booking.transfer(clearing, income, fee)

    receipt = ledger.execute(
        tx,
        _top_up_key(row.id),
        {"top_up": row.id, "capture": capture.id, "amount": amount, "fee": fee},
        build,
    )
    row.state, row.fee, row.completed_at = "done", fee.minor, tx.now()
    row.card_currency = capture.amount_in_card_currency.currency
    row.card_amount = capture.amount_in_card_currency.minor
    row.card_rate, row.capture_id = capture.rate, capture.id
    row.ledger_operation_id = receipt.operation_id
    if pass_row.state != "open":
        # The pass closed while the card was charged: the worker gives this back too.
        pass_row.settled_at = None
    tx.session.flush()
    return _top_up_view(tx, row)


def _top_up_key(top_up_id: uuid.UUID) -> str:
    return f"tour_pass:top_up:{top_up_id}"


def finish_stranded_top_ups(db: Database, limit: int = 100) -> int:
    """Top-ups still pending past the grace time (the process died between the card
    network and the ledger, or the person never came back from 3-D Secure), settled by
    what the network says under the top-up's key: a capture is recorded (the money
    reached the card network, so it reaches the pass, and a closed pass sends it back
    on); an approval or an open challenge is voided; nothing taken, the top-up fails."""
    stranded = db.run(lambda tx: _stranded_top_ups(tx, limit))
    for top_up_id, user_id in stranded:
        _settle_stranded(db, top_up_id, user_id)
    return len(stranded)


def _stranded_top_ups(tx: Tx, limit: int) -> list[tuple[uuid.UUID, uuid.UUID]]:
    before = tx.now() - timedelta(seconds=tx.settings.card_attempt_grace_seconds)
    rows = tx.session.execute(
        select(TourPassTopUp.id, TourPass.user_id)
        .join(TourPass, TourPass.id == TourPassTopUp.pass_id)
        .where(TourPassTopUp.state == "pending", TourPassTopUp.created_at <= before)
        .limit(limit)
    ).all()
    return [(row[0], row[1]) for row in rows]


def _settle_stranded(db: Database, top_up_id: uuid.UUID, user_id: uuid.UUID) -> None:
    network = connectors.network_for(db)
    authorization = network.find_authorization(_top_up_key(top_up_id))
    if authorization is not None and authorization.status == "captured":
        capture = network.capture(authorization.id)  # the same capture, asked again
        db.run(
            lambda tx: _record_top_up(tx, user_id, top_up_id, capture),
            isolation="read committed",
        )
        return
    if authorization is not None and authorization.status in ("approved", "challenge_required"):
        with contextlib.suppress(card_network.NotVoidable):  # voided meanwhile: done
            network.void(authorization.id)
    db.run(lambda tx: _fail_top_up(tx, top_up_id, "tour_pass.top_up_abandoned"))


# --- spending -------------------------------------------------------------------------------


def pay(
    db: Database, user_id: uuid.UUID, order_id: uuid.UUID, payment_password: str
) -> payments.OrderView:
    """Pay a merchant's order from the open pass, confirmed by the payment password; a
    retry of a paid order returns it."""

    def run(tx: Tx) -> payments.OrderView:
        security.check_payment_password(tx, user_id, payment_password)
        order = payments.payable_order(tx, user_id, order_id)
        if order is None:  # already paid by this person: a retry
            return payments.get_order(tx, order_id)
        restrictions.refuse_money_out(tx, user_id)
        payments.claim_wallets(tx, str(user_id))
        pass_row = _locked_open_pass(tx, user_id)
        amount = Money(CNY, order.amount)
        held = Money(CNY, ledger.balance(tx, pass_row.account_id).available)
        if held < amount:
            raise Conflict(
                "tour_pass.not_enough",
                N_(
                    "Your Tour Pass holds {balance}, less than this order's {amount}. Top it "
                    "up or pay another way."
                ),
                {"balance": held.format(), "amount": amount.format()},
            )
        merchant = payments.merchant_of(tx, order.merchant_id)
        receipt = ledger.transfer(
            tx,
            f"order:{order.id}:pay",
            pass_row.account_id,
            merchant.settlement_account_id,
            amount,
        )
        tx.session.add(TourPassSpend(order_id=order.id, pass_id=pass_row.id))
        payments.mark_paid(tx, order, user_id, SOURCE, receipt.operation_id)
        return payments.order_view(tx, order)

    return db.run(run, isolation="read committed")


def refund_target(tx: Tx, order_id: uuid.UUID) -> uuid.UUID:
    """The ledger account a merchant's refund of a pass payment goes to: the pass it was
    paid from. A pass closed meanwhile is settled again, so the worker sends the refund
    on to the card (see the module docstring). The caller holds the buyer's claim."""
    spend = tx.session.get_one(TourPassSpend, order_id)
    pass_row = tx.session.get_one(TourPass, spend.pass_id, with_for_update=True)
    if pass_row.state != "open":
        pass_row.settled_at = None
    return pass_row.account_id


# --- closing, expiry and the refunds of what is left ---------------------------------------


def close(db: Database, user_id: uuid.UUID, payment_password: str) -> PassView:
    """Close the open pass early; what is left goes back to the cards now."""

    def run(tx: Tx) -> uuid.UUID:
        security.check_payment_password(tx, user_id, payment_password)
        payments.claim_wallets(tx, str(user_id))
        pass_row = _locked_open_pass(tx, user_id)
        restrictions.refuse_money_out(tx, user_id)
        pass_row.state, pass_row.closed_at = "closed", tx.now()
        return pass_row.id

    pass_id = db.run(run, isolation="read committed")
    settle(db, pass_id)
    return db.run(lambda tx: _pass_view(tx, tx.session.get_one(TourPass, pass_id)))


def expire_due(db: Database, *, as_of: datetime | None = None) -> int:
    """The worker's job: passes past their expiry (at ``as_of``, default now) are
    expired, and every closed or expired pass with money left is settled. Safe to run in
    several workers at once and to rerun after a crash. Returns the parts sent back."""
    moment = as_of or db.clock.now()
    while db.run(lambda tx: _expire_batch(tx, moment), isolation="read committed"):
        pass
    parts = 0
    for pass_id in db.run(_unsettled):
        try:
            parts += settle(db, pass_id)
        except Exception:  # one pass's trouble (a network down) must not stop the others
            log.exception("settling Tour Pass %s failed; the next run tries again", pass_id)
    return parts


def _expire_batch(tx: Tx, moment: datetime, size: int = 100) -> int:
    rows = list(
        tx.session.scalars(
            select(TourPass)
            .where(TourPass.state == "open", TourPass.expires_at <= moment)
            .limit(size)
            .with_for_update(skip_locked=True)
        )
    )
    for row in rows:
        _expire(tx, row)
    return len(rows)


def _expire(tx: Tx, row: TourPass) -> None:
    """Mark a (locked) pass expired and tell its owner."""
    row.state, row.closed_at = "expired", tx.now()
    left = Money(CNY, ledger.balance(tx, row.account_id).available)
    identity.tell(
        tx,
        row.user_id,
        N_(
            "Your Tour Pass has expired. What is left on it ({amount}) goes back "
            "to the cards you topped it up with."
        ),
        {"amount": left.format()},
    )


def _unsettled(tx: Tx) -> list[uuid.UUID]:
    return list(
        tx.session.scalars(
            select(TourPass.id)
            .where(TourPass.settled_at.is_(None), TourPass.state != "open")
            .order_by(TourPass.closed_at)
            .limit(500)
        )
    )


@dataclass(frozen=True)
class _Part:
    refund_id: uuid.UUID
    capture_id: str
    amount: Money

    @property
    def key(self) -> str:
        return f"tour_pass:refund:{self.refund_id}"


def settle(db: Database, pass_id: uuid.UUID) -> int:
    """Send what a closed or expired pass holds back to its cards, part by part (see the
    module docstring); returns the parts written. Rerunning it is always safe."""
    parts = 0
    for _ in range(MAX_PARTS_PER_SETTLEMENT):
        step = db.run(lambda tx: _next_part(tx, pass_id), isolation="read committed")
        if step is None:
            return parts
        parts += 1
        if isinstance(step, _Part) and not _send(db, step):
            return parts  # the network cannot answer now: the next run asks again
    return parts


def _next_part(tx: Tx, pass_id: uuid.UUID) -> _Part | Literal[True] | None:
    """Under the pass's lock: the part waiting for the network, else a new one (written
    with its ledger move), True when the rest went to the balance, None when done."""
    owner = tx.session.scalar(select(TourPass.user_id).where(TourPass.id == pass_id))
    assert owner is not None
    payments.claim_wallets(tx, str(owner), SYSTEM)
    pass_row = tx.session.get_one(TourPass, pass_id, with_for_update=True)
    if pass_row.state == "open" or restrictions.is_frozen(tx, owner):
        return None  # frozen: no money moves until the freeze is lifted
    waiting = tx.session.scalars(
        select(TourPassRefund).where(
            TourPassRefund.pass_id == pass_id, TourPassRefund.state == "sending"
        )
    ).first()
    if waiting is not None:
        return _part_of(tx, waiting)
    left = ledger.balance(tx, pass_row.account_id).available
    if left <= 0:
        pass_row.settled_at = pass_row.settled_at or tx.now()
        return None
    newest = tx.session.scalars(
        select(TourPassTopUp)
        .where(
            TourPassTopUp.pass_id == pass_id,
            TourPassTopUp.state == "done",
            TourPassTopUp.refund_refused_at.is_(None),
            TourPassTopUp.refunded < TourPassTopUp.amount,
        )
        .order_by(TourPassTopUp.completed_at.desc(), TourPassTopUp.id.desc())
        .with_for_update()
    ).first()
    if newest is None:
        _leftover_to_balance(tx, pass_row, Money(CNY, left))
        return True
    amount = Money(CNY, min(left, newest.amount - newest.refunded))
    row = TourPassRefund(
        pass_id=pass_id,
        top_up_id=newest.id,
        destination="card",
        amount=amount.minor,
        state="sending",
        created_at=tx.now(),
    )
    tx.session.add(row)
    tx.session.flush()
    newest.refunded += amount.minor
    usage.count_card_top_up(tx, pass_row.user_id, -amount.minor, newest.created_at)
    part = _part_of(tx, row)
    clearing = payments.account_of(tx, SYSTEM, "card_clearing")
    ledger.transfer(tx, part.key, pass_row.account_id, clearing, amount)
    return part


def _part_of(tx: Tx, row: TourPassRefund) -> _Part:
    assert row.top_up_id is not None
    top_up_row = tx.session.get_one(TourPassTopUp, row.top_up_id)
    assert top_up_row.capture_id is not None
    return _Part(row.id, top_up_row.capture_id, Money(CNY, row.amount))


def _send(db: Database, part: _Part) -> bool:
    """Ask the card network for the part (the same key gives the same refund), then
    record the answer; False when it could not answer (the part stays ``sending`` and
    the next run asks again)."""
    today = db.clock.now().astimezone(UTC).date()
    try:
        refund = connectors.network_for(db).refund(
            part.capture_id, part.amount, rate_date=today, idempotency_key=part.key
        )
    except _REFUND_REFUSALS as refusal:
        code = refusal.code
        db.run(lambda tx: _refused(tx, part, code), isolation="read committed")
        return True
    except card_network.CardRecordUnknown:
        log.warning("card network does not know capture %s; refund part waits", part.capture_id)
        return False
    db.run(lambda tx: _sent(tx, part, refund), isolation="read committed")
    return True


def _sent(tx: Tx, part: _Part, refund: card_network.Refund) -> None:
    row = tx.session.get_one(TourPassRefund, part.refund_id, with_for_update=True)
    if row.state != "sending":
        return  # recorded by another worker
    row.state, row.completed_at = "done", tx.now()
    row.card_currency = refund.amount_in_card_currency.currency
    row.card_amount = refund.amount_in_card_currency.minor
    row.card_rate, row.network_refund_id = refund.rate, refund.id


def _refused(tx: Tx, part: _Part, code: str) -> None:
    """The card will not take the part back: it returns to the pass, and this top-up's
    card is not asked again."""
    owner = tx.session.scalar(
        select(TourPass.user_id)
        .join(TourPassRefund, TourPassRefund.pass_id == TourPass.id)
        .where(TourPassRefund.id == part.refund_id)
    )
    assert owner is not None
    payments.claim_wallets(tx, str(owner), SYSTEM)
    row = tx.session.get_one(TourPassRefund, part.refund_id, with_for_update=True)
    if row.state != "sending":
        return
    pass_row = tx.session.get_one(TourPass, row.pass_id, with_for_update=True)
    assert row.top_up_id is not None
    top_up_row = tx.session.get_one(TourPassTopUp, row.top_up_id, with_for_update=True)
    clearing = payments.account_of(tx, SYSTEM, "card_clearing")
    ledger.transfer(tx, f"{part.key}:refused", clearing, pass_row.account_id, part.amount)
    row.state, row.completed_at = "refused", tx.now()
    top_up_row.refunded -= part.amount.minor
    usage.count_card_top_up(tx, pass_row.user_id, part.amount.minor, top_up_row.created_at)
    top_up_row.refund_refused_at = tx.now()
    top_up_row.failure_code = code[:64]


def _leftover_to_balance(tx: Tx, pass_row: TourPass, amount: Money) -> None:
    """What no card takes back goes to the person's balance (held if their level may
    not use a balance, as a merchant's refund would be)."""
    owner = pass_row.user_id
    usable = standing(tx, owner).rights.use_balance
    destination = "balance" if usable else "held"
    target = payments.account_of(tx, str(owner), "user_balance" if usable else "user_held")
    row = TourPassRefund(
        pass_id=pass_row.id,
        destination=destination,
        amount=amount.minor,
        state="done",
        created_at=tx.now(),
        completed_at=tx.now(),
    )
    tx.session.add(row)
    tx.session.flush()
    ledger.transfer(tx, f"tour_pass:refund:{row.id}", pass_row.account_id, target, amount)


# --- views ----------------------------------------------------------------------------------


def _card_label(brand: str, last4: str) -> str:
    return f"{brand.upper()} ···· {last4}"


def _top_up_view(tx: Tx, row: TourPassTopUp) -> TopUpView:
    card = foreign_cards.card_on_file(tx, row.card_id)
    card_amount = (
        Money(row.card_currency, row.card_amount)
        if row.card_currency and row.card_amount is not None
        else None
    )
    return TopUpView(
        id=row.id,
        amount=Money(CNY, row.amount),
        fee=Money(CNY, row.fee),
        total=Money(CNY, row.amount + row.fee),
        card_label=_card_label(card.brand, card.last4),
        card_amount=card_amount,
        state=row.state,
        refunded=Money(CNY, row.refunded),
        created_at=row.created_at,
    )


def _pass_view(tx: Tx, row: TourPass) -> PassView:
    held = ledger.balance(tx, row.account_id)
    return PassView(
        id=row.id,
        state=row.state,
        balance=Money(CNY, held.available),
        opened_at=row.opened_at,
        expires_at=row.expires_at,
        closed_at=row.closed_at,
        settled=row.settled_at is not None,
        room=_room(tx, row) if row.state == "open" else Money(CNY, 0),
        history=_history(tx, row),
    )


def _history(tx: Tx, row: TourPass) -> list[HistoryLine]:
    """Top-ups, payments, merchants' refunds and refunds to cards, newest first."""
    lines: list[HistoryLine] = []
    for top_up_row in tx.session.scalars(
        select(TourPassTopUp).where(
            TourPassTopUp.pass_id == row.id, TourPassTopUp.state != "failed"
        )
    ):
        view = _top_up_view(tx, top_up_row)
        lines.append(
            HistoryLine(
                "top_up",
                top_up_row.completed_at or top_up_row.created_at,
                view.amount,
                view.card_label,
                view.fee.format(),
                top_up_row.state,
            )
        )
    spent = select(TourPassSpend.order_id).where(TourPassSpend.pass_id == row.id)
    orders = {
        order.id: order
        for order in tx.session.scalars(select(PaymentOrder).where(PaymentOrder.id.in_(spent)))
    }
    for order in orders.values():
        view_order = payments.order_view(tx, order)
        assert order.paid_at is not None
        lines.append(
            HistoryLine("payment", order.paid_at, Money(CNY, -order.amount), view_order.merchant)
        )
    for refund in tx.session.scalars(
        select(OrderRefund).where(
            OrderRefund.order_id.in_(list(orders)), OrderRefund.status == "succeeded"
        )
    ):
        merchant = payments.order_view(tx, orders[refund.order_id]).merchant
        lines.append(
            HistoryLine("merchant_refund", refund.created_at, Money(CNY, refund.amount), merchant)
        )
    for part in tx.session.scalars(
        select(TourPassRefund).where(
            TourPassRefund.pass_id == row.id, TourPassRefund.state != "refused"
        )
    ):
        lines.append(_refund_line(tx, part))
    return sorted(lines, key=lambda line: line.at, reverse=True)


def _refund_line(tx: Tx, part: TourPassRefund) -> HistoryLine:
    if part.top_up_id is None:
        label = part.destination  # "balance" or "held": the page words it
        detail = None
    else:
        top_up_row = tx.session.get_one(TourPassTopUp, part.top_up_id)
        card = foreign_cards.card_on_file(tx, top_up_row.card_id)
        label = _card_label(card.brand, card.last4)
        detail = (
            Money(part.card_currency, part.card_amount).format()
            if part.card_currency and part.card_amount is not None
            else None
        )
    return HistoryLine(
        "refund", part.created_at, Money(CNY, -part.amount), label, detail, part.state
    )


# The cashier offers the open pass, and a merchant's refund of a pass payment comes back
# to it.
payments.add_payment_source(payments.PaymentSource(SOURCE, open_balance, refund_target))
