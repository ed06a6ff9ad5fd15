"""Pay-for-me (代付): a person who cannot pay an order asks a friend to.

At the cashier the asker makes a link (shown once, with a QR code; only its keyed hash is
kept) that is good for ``pay_for_me_link_hours``; the order stays payable while a link
lives, up to ``pay_for_me_order_max_hours`` after it was made. The friend opens it,
logged in, sees the order, the merchant, the amount and who asked (masked), and pays with
their own sources and payment password through the cashier's own functions
(``payments.py``): the order stays the asker's, the friend is its payer, so the friend's
rights and limits count and a refund goes back to the friend, the way they paid. The link
is marked paid, and the asker told by SMS, in the payment's own transaction
(``payments.OnBehalf``), so a payment and its link never disagree.

A link's state is worked out on every read from the link and its order, so it is right
even before the worker marks expired links (``expire_links``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, Literal

from sqlalchemy import select

from qianbao.db import Database, Tx
from qianbao.errors import Conflict, InvalidInput, NotFound, QianbaoError
from qianbao.i18n import N_
from qianbao.identity import service as identity
from qianbao.identity.codes import keyed_hash, new_token
from qianbao.verification import service as verification
from qianbao.wallet.pay_for_me.models import PayForMeLink
from qianbao.wallet.payments import service as payments
from qianbao.wallet.payments.models import PaymentOrder
from qianbao.wallet.payments.service import Cashier, OrderView
from qianbao.wallet.transfers import service as transfers

State = Literal["open", "paid", "already_paid", "order_closed", "expired"]
SourceKind = Literal["balance", "foreign_card", "bank_card"]
FriendRole = Literal["paid_by_friend", "paid_for_friend"]
PATH_PREFIX: Final = "/pay-for-me/"

# What each state that cannot be paid says, to the friend and in the API's errors.
REFUSALS: Final[dict[State, tuple[str, str]]] = {
    "paid": ("pay_for_me.already_paid", N_("This order is already paid.")),
    "already_paid": ("pay_for_me.already_paid", N_("This order is already paid.")),
    "order_closed": (
        "pay_for_me.order_closed",
        N_("The shop has closed this order, so it can no longer be paid."),
    ),
    "expired": (
        "pay_for_me.expired",
        N_("This pay-for-me link has expired. Ask your friend to send a new one."),
    ),
}
_UNKNOWN: Final = N_("There is no such pay-for-me link. Check that you have the whole link.")
OWN_LINK: Final = N_(
    "This is your own pay-for-me link: send it to a friend, or pay the order yourself "
    "at the cashier."
)
_PAID_SMS: Final = N_("{friend} paid {amount} to {merchant} for you.")


@dataclass(frozen=True)
class NewLink:
    """A link just made: the only time its token is known."""

    id: uuid.UUID
    token: str
    path: str  # "/pay-for-me/<token>", to put after the site's address
    expires_at: datetime
    order: OrderView


@dataclass(frozen=True)
class LinkView:
    id: uuid.UUID
    order: OrderView
    asker: str  # masked: "** ADA · +44 ******3456"
    state: State
    expires_at: datetime
    paid_by: str | None  # the friend who paid through this link, masked
    paid_at: datetime | None
    viewer_is_asker: bool

    @property
    def refusal(self) -> tuple[str, str] | None:
        """(code, msgid) of why the link cannot be paid now; None while it can."""
        return REFUSALS.get(self.state)


@dataclass(frozen=True)
class Source:
    """How the friend pays: the balance, or one of their cards (by id)."""

    kind: SourceKind
    card_id: uuid.UUID | None = None


# --- the asker -----------------------------------------------------------------------------


def ask_a_friend(tx: Tx, asker_id: uuid.UUID, order_id: uuid.UUID) -> NewLink:
    """A new link for an unpaid order; each call makes another (the asker may send
    several friends one each: the first to pay wins, the others then say paid)."""
    order = tx.session.get(PaymentOrder, order_id, with_for_update=True)
    if order is None:
        raise NotFound("order.not_found", N_("There is no such order."))
    if order.status != "WAIT_BUYER_PAY" or order.expires_at <= tx.now():
        raise Conflict(
            "pay_for_me.not_payable",
            N_("Only an order waiting to be paid can be sent to a friend."),
        )
    token = new_token()
    link = PayForMeLink(
        token_hash=_token_hash(tx, token),
        order_id=order.id,
        asker_id=asker_id,
        created_at=tx.now(),
        expires_at=_link_lifetime_end(tx, order),
        state="open",
    )
    tx.session.add(link)
    tx.session.flush()
    # A friend abroad rarely answers within a shop's 15 minutes: the order waits for
    # the link (payments.keep_payable_until), up to its maximum.
    payments.keep_payable_until(tx, order, link.expires_at)
    return NewLink(
        link.id, token, PATH_PREFIX + token, link.expires_at, payments.get_order(tx, order.id)
    )


def _link_lifetime_end(tx: Tx, order: PaymentOrder) -> datetime:
    """``pay_for_me_link_hours`` from now, but an order is kept payable by links no
    longer than ``pay_for_me_order_max_hours`` after it was made (or its own time, if
    the shop gave it longer)."""
    s = tx.settings
    wanted = tx.now() + timedelta(hours=s.pay_for_me_link_hours)
    longest = max(
        order.created_at + timedelta(hours=s.pay_for_me_order_max_hours), order.expires_at
    )
    return min(wanted, longest)


def links_of_order(tx: Tx, asker_id: uuid.UUID, order_id: uuid.UUID) -> list[LinkView]:
    """The asker's links for one order, newest first (without their tokens)."""
    rows = tx.session.scalars(
        select(PayForMeLink)
        .where(PayForMeLink.order_id == order_id, PayForMeLink.asker_id == asker_id)
        .order_by(PayForMeLink.created_at.desc())
    )
    return [_view(tx, row, asker_id) for row in rows]


# --- the friend ----------------------------------------------------------------------------


def open_link(tx: Tx, viewer_id: uuid.UUID, token: str) -> LinkView:
    """What the link shows to whoever opened it (logged in): the order, the merchant, the
    amount, who asked, and whether it can still be paid."""
    return _view(tx, _link(tx, token), viewer_id)


def friend_cashier(tx: Tx, friend_id: uuid.UUID, token: str) -> tuple[LinkView, Cashier | None]:
    """The link and, while the friend may pay it, the cashier's offer to the friend: their
    own balance (if their level may use it), cards with fees, mainland bank cards."""
    view = open_link(tx, friend_id, token)
    if view.state != "open" or view.viewer_is_asker:
        return view, None
    return view, payments.cashier(tx, friend_id, view.order.id)


def pay(
    db: Database,
    friend_id: uuid.UUID,
    token: str,
    source: Source,
    payment_password: str,
    *,
    challenge_return_url: str | None = None,
) -> LinkView | str:
    """The friend pays the order behind the link with their own source and payment
    password; a retry of a done payment returns it. A card may first need its issuer's
    check: then the URL to send the friend to (and ``finish_card``)."""
    payable = db.run(lambda tx: _payable_link(tx, friend_id, token))
    if payable.done:
        return db.run(lambda tx: open_link(tx, friend_id, token))
    on_behalf = payments.OnBehalf(payable.asker_id, _recorder(payable.link_id))
    try:
        outcome = _pay_with(
            db,
            friend_id,
            payable.order_id,
            source,
            payment_password,
            on_behalf,
            challenge_return_url,
        )
    except Conflict as error:
        raise _clearer(db, friend_id, token, error) from error
    if isinstance(outcome, str):
        return outcome
    return db.run(lambda tx: open_link(tx, friend_id, token))


def finish_card(db: Database, friend_id: uuid.UUID, token: str) -> LinkView:
    """Back from the card issuer's 3-D Secure check."""
    payable = db.run(lambda tx: _payable_link(tx, friend_id, token))
    if not payable.done:
        on_behalf = payments.OnBehalf(payable.asker_id, _recorder(payable.link_id))
        try:
            payments.finish_card_payment(db, friend_id, payable.order_id, on_behalf=on_behalf)
        except Conflict as error:
            raise _clearer(db, friend_id, token, error) from error
    return db.run(lambda tx: open_link(tx, friend_id, token))


def _pay_with(
    db: Database,
    friend_id: uuid.UUID,
    order_id: uuid.UUID,
    source: Source,
    payment_password: str,
    on_behalf: payments.OnBehalf,
    challenge_return_url: str | None,
) -> OrderView | str:
    if source.kind == "balance":
        return payments.pay_with_balance(
            db, friend_id, order_id, payment_password, on_behalf=on_behalf
        )
    if source.card_id is None:
        raise InvalidInput("cashier.card", N_("Choose a card to pay with."))
    if source.kind == "bank_card":
        return payments.pay_with_bank_card(
            db, friend_id, order_id, source.card_id, payment_password, on_behalf=on_behalf
        )
    return payments.pay_with_card(
        db,
        friend_id,
        order_id,
        source.card_id,
        payment_password,
        challenge_return_url=challenge_return_url,
        on_behalf=on_behalf,
    )


@dataclass(frozen=True)
class _Payable:
    link_id: uuid.UUID
    order_id: uuid.UUID
    asker_id: uuid.UUID
    done: bool  # this friend already paid it through this link: a retry


def _payable_link(tx: Tx, friend_id: uuid.UUID, token: str) -> _Payable:
    """The link the friend may pay now, or the reason they may not."""
    link = _link(tx, token)
    view = _view(tx, link, friend_id)
    if view.viewer_is_asker:
        raise Conflict("pay_for_me.own_link", OWN_LINK)
    done = view.state == "paid" and link.paid_by == friend_id
    refusal = view.refusal
    if refusal is not None and not done:
        raise Conflict(*refusal)
    return _Payable(link.id, link.order_id, link.asker_id, done)


def _clearer(db: Database, friend_id: uuid.UUID, token: str, error: Conflict) -> QianbaoError:
    """The cashier's refusal, or the link's own clearer one when the order was paid or
    closed meanwhile (another friend, or the asker, was quicker)."""
    try:
        db.run(lambda tx: _payable_link(tx, friend_id, token))
    except Conflict as clearer:
        return clearer
    return error


def _recorder(link_id: uuid.UUID) -> Callable[[Tx, uuid.UUID, uuid.UUID], None]:
    def record(tx: Tx, order_id: uuid.UUID, payer_id: uuid.UUID) -> None:
        """In the payment's transaction: the link is paid, and the asker told."""
        link = tx.session.get(PayForMeLink, link_id, with_for_update=True)
        assert link is not None
        assert link.order_id == order_id
        # Paid even if the link ran out while the friend was paying: the order took it.
        link.state, link.paid_by, link.paid_at = "paid", payer_id, tx.now()
        order = payments.get_order(tx, order_id)
        identity.tell(
            tx,
            link.asker_id,
            _PAID_SMS,
            {
                "friend": masked_person(tx, payer_id),
                "amount": order.amount.format(),
                "merchant": order.merchant,
            },
        )

    return record


# --- history and the worker ------------------------------------------------------------


@dataclass(frozen=True)
class FriendNote:
    """On a history row: "paid by a friend" (to the asker) or "paid for" (to the friend)."""

    role: FriendRole
    who: str  # masked


def friend_notes(
    tx: Tx, viewer_id: uuid.UUID, orders: list[OrderView]
) -> dict[uuid.UUID, FriendNote]:
    """Notes for the orders one person paid for another, by order id."""
    notes: dict[uuid.UUID, FriendNote] = {}
    names: dict[uuid.UUID, str] = {}
    for order in orders:
        if order.payer_id is None or order.buyer_id is None or order.payer_id == order.buyer_id:
            continue
        role: FriendRole
        if viewer_id == order.buyer_id:
            other, role = order.payer_id, "paid_by_friend"
        elif viewer_id == order.payer_id:
            other, role = order.buyer_id, "paid_for_friend"
        else:
            continue
        if other not in names:
            names[other] = masked_person(tx, other)
        notes[order.id] = FriendNote(role, names[other])
    return notes


def expire_links(tx: Tx, limit: int = 500) -> int:
    """Open links past their time are marked expired (a link whose order closed reads
    as closed from the order, before and after this). Safe in several workers at once."""
    now = tx.now()
    rows = list(
        tx.session.scalars(
            select(PayForMeLink)
            .where(PayForMeLink.state == "open", PayForMeLink.expires_at <= now)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )
    for row in rows:
        row.state = "expired"
    return len(rows)


# --- inside --------------------------------------------------------------------------------


def masked_person(tx: Tx, user_id: uuid.UUID) -> str:
    """Enough for a friend to recognise someone, no more: the verified name's last part
    and the number's last four digits ("** ADA · +44 ******3456")."""
    phone = identity.get_account(tx, user_id).phone.masked()
    verified = verification.verified_identity(tx, user_id)
    if verified is None or not verified.name.strip():
        return phone
    return f"{transfers.masked_name(verified.name)} · {phone}"


def _token_hash(tx: Tx, token: str) -> str:
    return keyed_hash(tx.settings.hmac_key(), "pay_for_me", token)


def _link(tx: Tx, token: str) -> PayForMeLink:
    found = None
    if 20 <= len(token) <= 64:
        found = tx.session.scalar(
            select(PayForMeLink).where(PayForMeLink.token_hash == _token_hash(tx, token))
        )
    if found is None:
        raise NotFound("pay_for_me.unknown", _UNKNOWN)
    return found


def _view(tx: Tx, link: PayForMeLink, viewer_id: uuid.UUID) -> LinkView:
    order = payments.get_order(tx, link.order_id)
    return LinkView(
        id=link.id,
        order=order,
        asker=masked_person(tx, link.asker_id),
        state=_state(tx, link, order),
        expires_at=link.expires_at,
        paid_by=masked_person(tx, link.paid_by) if link.paid_by else None,
        paid_at=link.paid_at,
        viewer_is_asker=viewer_id == link.asker_id,
    )


def _state(tx: Tx, link: PayForMeLink, order: OrderView) -> State:
    if link.state == "paid":
        return "paid"
    if order.paid_at is not None:  # the asker, or a friend through another link
        return "already_paid"
    if order.status != "WAIT_BUYER_PAY" or order.expires_at <= tx.now():
        return "order_closed"
    if link.state == "expired" or link.expires_at <= tx.now():
        return "expired"
    return "open"
