"""Foreign cards (Visa, Mastercard, ...) linked to a person: checked as typed, linked
through the card network (the CVV used for that call and never kept), verified by their
issuer (3-D Secure when it asks) before they can pay, and kept as the network's token,
the brand and the last four digits, never the number."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC

from sqlalchemy import func, select

from qianbao.db import Database, Tx
from qianbao.errors import Conflict, NotFound, QianbaoError
from qianbao.funding import card_network, connectors
from qianbao.funding.models import ForeignCard
from qianbao.i18n import N_
from qianbao.risk import restrictions


@dataclass(frozen=True)
class ForeignCardView:
    id: uuid.UUID
    brand: str
    last4: str
    expiry: str
    currency: str
    challenge_url: str | None = None  # the issuer's 3-D Secure check, while one is open


def cards_of(tx: Tx, user_id: uuid.UUID) -> list[ForeignCardView]:
    """The person's usable cards: linked, verified by their issuer, not removed."""
    rows = tx.session.scalars(
        select(ForeignCard)
        .where(
            ForeignCard.user_id == user_id,
            ForeignCard.removed_at.is_(None),
            ForeignCard.verified_at.is_not(None),
        )
        .order_by(ForeignCard.added_at)
    )
    return [_card_view(row) for row in rows]


def _usable(card: ForeignCard) -> bool:
    return card.removed_at is None and card.verified_at is not None


def _card_view(row: ForeignCard, challenge_url: str | None = None) -> ForeignCardView:
    return ForeignCardView(row.id, row.brand, row.last4, row.expiry, row.currency, challenge_url)


def add_foreign_card(
    db: Database,
    user_id: uuid.UUID,
    number: str,
    expiry: str,
    cvv: str,
    holder_name: str,
    *,
    challenge_return_url: Callable[[uuid.UUID], str] | None = None,
) -> ForeignCardView:
    """Check the card, link it through the network (the CVV is used for that call and
    never kept), keep the network's token, the brand and the last four digits, and have
    the issuer verify it. When the issuer wants a 3-D Secure check the card waits, not
    usable, and the view carries the challenge URL (``challenge_return_url(card_id)`` is
    where the check sends the person back to; then ``finish_card_verification``)."""
    month, year = card_network.parse_expiry(expiry)
    checked = card_network.check_card(
        number, month, year, cvv, today=db.clock.now().astimezone(UTC).date()
    )
    linked = connectors.network_for(db).tokenize(checked.digits, month, year, cvv, holder_name)
    card, verified = db.run(lambda tx: _keep_card(tx, user_id, linked))
    if verified:
        return card
    return_url = challenge_return_url(card.id) if challenge_return_url else None
    verification = connectors.network_for(db).verify_card(
        linked.token, idempotency_key=_verification_key(card.id), three_ds_return_url=return_url
    )
    if verification.status == "challenge_required":
        return replace(card, challenge_url=verification.challenge_url)
    return db.run(lambda tx: _mark_verified(tx, user_id, card.id))


def _keep_card(
    tx: Tx, user_id: uuid.UUID, linked: card_network.CardToken
) -> tuple[ForeignCardView, bool]:
    """The person's row for this card: the one already linked (and verified: True), or
    a new one waiting for the issuer's verification (False)."""
    same = select(ForeignCard).where(
        ForeignCard.user_id == user_id,
        ForeignCard.removed_at.is_(None),
        ForeignCard.verified_at.is_not(None),
        ForeignCard.brand == linked.brand.value,
        ForeignCard.last4 == linked.last4,
        ForeignCard.expiry == str(linked.expiry),
    )
    existing = tx.session.scalars(same).first()
    if existing is not None:
        return _card_view(existing), True
    _shared_card_rule(tx, user_id, linked.token)
    row = ForeignCard(
        user_id=user_id,
        token=linked.token,
        brand=linked.brand.value,
        last4=linked.last4,
        expiry=str(linked.expiry),
        currency=linked.currency,
        added_at=tx.now(),
    )
    tx.session.add(row)
    tx.session.flush()
    return _card_view(row), False


def finish_card_verification(
    db: Database, user_id: uuid.UUID, card_id: uuid.UUID
) -> ForeignCardView:
    """After the issuer's 3-D Secure check at linking: the card becomes usable, or is
    dropped (``card.verification_failed``) when the check failed or was abandoned."""
    card, token, verified = db.run(lambda tx: _card_state(tx, user_id, card_id))
    if verified:
        return card
    try:
        verification = connectors.network_for(db).verify_card(
            token, idempotency_key=_verification_key(card_id)
        )
    except QianbaoError:
        verification = None
    if verification is None or verification.status != "approved":
        db.run(lambda tx: _drop_unverified(tx, user_id, card_id))
        raise Conflict(
            "card.verification_failed",
            N_(
                "The card's bank could not confirm it is yours, so the card was not added. "
                "Add it again and answer your bank's check, or use another card."
            ),
        )
    return db.run(lambda tx: _mark_verified(tx, user_id, card_id))


def _verification_key(card_id: uuid.UUID) -> str:
    return f"card-verification:{card_id}"


def _own_card(tx: Tx, user_id: uuid.UUID, card_id: uuid.UUID) -> ForeignCard:
    card = tx.session.get(ForeignCard, card_id)
    if card is None or card.user_id != user_id or card.removed_at is not None:
        raise NotFound("card.not_found", N_("There is no such card on your account."))
    return card


def _card_state(
    tx: Tx, user_id: uuid.UUID, card_id: uuid.UUID
) -> tuple[ForeignCardView, str, bool]:
    card = _own_card(tx, user_id, card_id)
    return _card_view(card), card.token, card.verified_at is not None


def _mark_verified(tx: Tx, user_id: uuid.UUID, card_id: uuid.UUID) -> ForeignCardView:
    card = _own_card(tx, user_id, card_id)
    if card.verified_at is None:
        card.verified_at = tx.now()
    return _card_view(card)


def _drop_unverified(tx: Tx, user_id: uuid.UUID, card_id: uuid.UUID) -> None:
    card = _own_card(tx, user_id, card_id)
    if card.verified_at is None:
        card.removed_at = tx.now()


@dataclass(frozen=True)
class CardOnFile:
    """A linked card as the wallet charges and refunds it: the network's token, never
    the number."""

    id: uuid.UUID
    user_id: uuid.UUID
    token: str
    brand: str
    last4: str
    currency: str


def usable_card(tx: Tx, user_id: uuid.UUID, card_id: uuid.UUID) -> CardOnFile:
    """One of the person's usable cards (linked, verified by its issuer, not removed), or
    ``card.not_found``."""
    card = tx.session.get(ForeignCard, card_id)
    if card is None or card.user_id != user_id or not _usable(card):
        raise NotFound("card.not_found", N_("There is no such card on your account."))
    return _on_file(card)


def card_on_file(tx: Tx, card_id: uuid.UUID) -> CardOnFile:
    """A card by its id, usable or not (what a past payment was made with)."""
    return _on_file(tx.session.get_one(ForeignCard, card_id))


def _on_file(card: ForeignCard) -> CardOnFile:
    return CardOnFile(card.id, card.user_id, card.token, card.brand, card.last4, card.currency)


def _shared_card_rule(tx: Tx, user_id: uuid.UUID, token: str) -> None:
    """Risk rule: one card linked to several accounts restricts the newest of them."""
    others = tx.session.scalar(
        select(func.count(func.distinct(ForeignCard.user_id))).where(
            ForeignCard.token == token,
            ForeignCard.user_id != user_id,
            ForeignCard.removed_at.is_(None),
        )
    )
    if int(others or 0) + 1 >= tx.settings.risk_shared_card_accounts:
        restrictions.impose(tx, user_id, "restricted", "shared_card", imposed_by="rule:shared_card")
