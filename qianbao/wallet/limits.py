"""What a person has used of each limit policy.py sets, counted in one place.

Payments, transfers and Tour Pass top-ups each check their limits against these counts,
and the level page shows them; policy.py decides the limits themselves. Counting reads
the tables of each kind of movement directly (not their services), so the services may
all build on this module without building on each other.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Final
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from qianbao.db import Tx
from qianbao.money import Money
from qianbao.policy import Rights
from qianbao.wallet.payments.models import PaymentOrder
from qianbao.wallet.tour_pass.models import TourPass, TourPassTopUp
from qianbao.wallet.transfers.models import PersonTransfer

CNY: Final = "CNY"
LIMITS_TIME_ZONE: Final = ZoneInfo("Asia/Shanghai")


@dataclass(frozen=True)
class Sent:
    total: int  # minor units of CNY
    count: int


def year_start(now: datetime) -> datetime:
    """1 January 00:00 in Beijing of ``now``'s year there: the PBOC's yearly limits
    (Class II and III) count calendar years in China, not in UTC."""
    local = now.astimezone(LIMITS_TIME_ZONE)
    return local.replace(month=1, day=1, hour=0, minute=0, second=0, microsecond=0)


def sent_since(tx: Tx, user_id: uuid.UUID, since: datetime) -> Sent:
    """What the person has sent to other people since ``since``."""
    row = tx.session.execute(
        select(func.coalesce(func.sum(PersonTransfer.amount), 0), func.count()).where(
            PersonTransfer.sender_id == user_id, PersonTransfer.created_at >= since
        )
    ).one()
    return Sent(int(row[0] or 0), int(row[1] or 0))


def card_top_ups_since(tx: Tx, user_id: uuid.UUID, since: datetime) -> int:
    """What the person's cards paid for Tour Pass top-ups since ``since`` (as for card
    payments: the fee aside, what went back to the cards taken off), in fen: part of
    their foreign card limits."""
    query = (
        select(func.coalesce(func.sum(TourPassTopUp.amount - TourPassTopUp.refunded), 0))
        .join(TourPass, TourPass.id == TourPassTopUp.pass_id)
        .where(
            TourPass.user_id == user_id,
            TourPassTopUp.state.in_(("pending", "done")),
            TourPassTopUp.created_at >= since,
        )
    )
    return int(tx.session.scalar(query) or 0)


def paid_since(tx: Tx, user_id: uuid.UUID, source: str, since: datetime) -> int:
    """Minor units of CNY the person paid from ``source`` since ``since``, refunds taken
    off: a Tour Pass top-up counts as a foreign card payment, a transfer to another person
    as a payment from the balance (policy.py)."""
    query = select(func.coalesce(func.sum(PaymentOrder.amount - PaymentOrder.refunded), 0)).where(
        PaymentOrder.payer_id == user_id,
        PaymentOrder.source == source,
        PaymentOrder.paid_at >= since,
    )
    paid = int(tx.session.scalar(query) or 0)
    if source == "foreign_card":
        paid += card_top_ups_since(tx, user_id, since)
    if source == "balance":
        paid += sent_since(tx, user_id, since).total
    return paid


def balance_spent_since(tx: Tx, user_id: uuid.UUID, since: datetime) -> int:
    """Minor units of CNY paid and sent from the balance since ``since`` (what policy.py's
    balance limits count)."""
    return paid_since(tx, user_id, "balance", since)


def limit_usage(tx: Tx, user_id: uuid.UUID, rights: Rights) -> dict[str, Money | int]:
    """How much of each of policy.py's limits the person has used, in the limit's own
    currency (card payments are converted from CNY at the settings' rate), or as a
    count (transfers a day)."""
    now = tx.now()
    since_new_year = year_start(now)
    day_ago = now - timedelta(days=1)
    used: dict[str, Money | int] = {
        "balance_per_day": Money(CNY, paid_since(tx, user_id, "balance", day_ago)),
        "balance_per_year": Money(CNY, paid_since(tx, user_id, "balance", since_new_year)),
    }
    sent_today = sent_since(tx, user_id, day_ago)
    used["transfer_per_day"] = Money(CNY, sent_today.total)
    used["transfers_per_day"] = sent_today.count
    card_year_cny = paid_since(tx, user_id, "foreign_card", since_new_year)
    card_limit = rights.card_per_year
    rate = tx.settings.fx_rates.get(card_limit.currency)
    if card_limit.currency == CNY:
        used["card_per_year"] = Money(CNY, card_year_cny)
    elif rate:
        converted = (Decimal(card_year_cny) / rate).quantize(Decimal(1), ROUND_HALF_UP)
        used["card_per_year"] = Money(card_limit.currency, int(converted))
    return used
