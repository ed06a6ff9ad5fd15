"""The payment and transfer history, read only: the filters of the history page, pages
of a given size behind an opaque cursor (for the API), and the CSV export.

A page is ordered newest first by time, then by id, so that two rows of the same
instant keep one order and a cursor (the last row's time and id) never skips or
repeats a row, whatever arrives meanwhile. A payment's time is when it was paid, or
when it was created while it is unpaid; a transfer's is when it was made.
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final, Generic, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Select, SQLColumnExpression, and_, func, or_, select

from qianbao.db import Tx
from qianbao.errors import InvalidInput
from qianbao.i18n import N_
from qianbao.wallet.payments import models as payment_models
from qianbao.wallet.payments import service as payments
from qianbao.wallet.payments.models import PaymentOrder
from qianbao.wallet.payments.service import OrderView
from qianbao.wallet.transfers import service as transfers
from qianbao.wallet.transfers.models import PersonTransfer
from qianbao.wallet.transfers.service import TransferView

T = TypeVar("T")
MAX_PAGE: Final = 100
SOURCES: Final = list(payment_models.SOURCES)
STATUSES: Final = list(payment_models.ORDER_STATUSES)
CSV_COLUMNS: Final = [
    "paid_at",
    "merchant",
    "order_no",
    "subject",
    "amount",
    "currency",
    "fee",
    "refunded",
    "source",
    "status",
    "card_amount",
    "card_currency",
]
_NUMBER: Final = re.compile(r"-?[0-9]+(\.[0-9]+)?")


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None  # None: this was the last page


# --- filters --------------------------------------------------------------------------


def page_filters(
    source: str, status: str, since: str, until: str, zone: str = "UTC"
) -> dict[str, Any]:
    """The history page's filters; unknown values are ignored rather than refused (a
    page's query string, typed or kept from an older link). Days are the person's
    calendar days, in ``zone`` (the IANA zone their pages show times in)."""
    chosen: dict[str, Any] = {}
    if source in payment_models.SOURCES:
        chosen["source"] = source
    if status in payment_models.ORDER_STATUSES:
        chosen["status"] = status
    for name, text in (("since", since), ("until", until)):
        try:
            day = date.fromisoformat(text) if text else None
        except ValueError:
            day = None
        if day is not None:
            chosen[name] = _day_bound(name, day, zone)
    return chosen


def api_filters(
    source: str | None, status: str | None, since: date | None, until: date | None
) -> dict[str, Any]:
    """The same filters for the API, where an unknown value is refused: a program that
    sends one has a bug it should hear about."""
    if source and source not in payment_models.SOURCES:
        raise InvalidInput(
            "history.source", N_("Unknown payment source."), details={"allowed": SOURCES}
        )
    if status and status not in payment_models.ORDER_STATUSES:
        raise InvalidInput(
            "history.status", N_("Unknown order status."), details={"allowed": STATUSES}
        )
    chosen: dict[str, Any] = {"source": source, "status": status}
    for name, day in (("since", since), ("until", until)):
        chosen[name] = _day_bound(name, day) if day else None
    return {name: value for name, value in chosen.items() if value}


def _day_bound(name: str, day: date, zone: str = "UTC") -> datetime:
    """A day in ``zone`` as a bound in UTC: ``since`` from its start, ``until`` through
    its end (the next day's start, which a summer-time change moves with the clock)."""
    start = day + timedelta(days=1) if name == "until" else day
    return datetime.combine(start, datetime.min.time(), tzinfo=ZoneInfo(zone)).astimezone(UTC)


# --- cursors --------------------------------------------------------------------------


def encode_cursor(kind: str, at: datetime, row_id: uuid.UUID) -> str:
    raw = json.dumps({"k": kind, "t": at.isoformat(), "i": str(row_id)}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(kind: str, cursor: str) -> tuple[datetime, uuid.UUID]:
    """The position a cursor names; a cursor of another list or a damaged one is 422."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
        if data["k"] != kind:
            raise ValueError(kind)
        return datetime.fromisoformat(data["t"]), uuid.UUID(data["i"])
    except (ValueError, KeyError, TypeError, binascii.Error) as error:
        raise InvalidInput(
            "history.cursor", N_("This page link is not valid. Start from the first page.")
        ) from error


def _after(
    moment: SQLColumnExpression[datetime],
    id_column: SQLColumnExpression[uuid.UUID],
    at: datetime,
    row_id: uuid.UUID,
) -> ColumnElement[bool]:
    """Rows that come after the cursor in newest-first order (time, then id)."""
    return or_(moment < at, and_(moment == at, id_column < row_id))


def _page(
    tx: Tx,
    query: Select[Any],
    moment: SQLColumnExpression[datetime],
    id_column: SQLColumnExpression[uuid.UUID],
    kind: str,
    cursor: str | None,
    limit: int,
) -> tuple[list[Any], str | None]:
    """One page of rows, asking for one more than the page to know if another follows."""
    if cursor:
        at, row_id = decode_cursor(kind, cursor)
        query = query.where(_after(moment, id_column, at, row_id))
    size = max(1, min(limit, MAX_PAGE))
    query = query.add_columns(moment).order_by(moment.desc(), id_column.desc()).limit(size + 1)
    rows = tx.session.execute(query).all()
    more = len(rows) > size
    rows = rows[:size]
    last = rows[-1] if more else None
    next_cursor = encode_cursor(kind, last[1], last[0].id) if last is not None else None
    return [row[0] for row in rows], next_cursor


# --- pages ----------------------------------------------------------------------------


def payments_page(
    tx: Tx, user_id: uuid.UUID, filters: Mapping[str, Any], cursor: str | None, limit: int
) -> Page[OrderView]:
    """The person's payments (their orders and those they paid for a friend), with the
    history page's filters; the dates filter on the time paid, as the page does."""
    query = select(PaymentOrder).where(
        or_(PaymentOrder.buyer_id == user_id, PaymentOrder.payer_id == user_id)
    )
    if filters.get("source"):
        query = query.where(PaymentOrder.source == filters["source"])
    if filters.get("status"):
        query = query.where(PaymentOrder.status == filters["status"])
    if filters.get("since"):
        query = query.where(PaymentOrder.paid_at >= filters["since"])
    if filters.get("until"):
        query = query.where(PaymentOrder.paid_at < filters["until"])
    moment = func.coalesce(PaymentOrder.paid_at, PaymentOrder.created_at)
    rows, next_cursor = _page(tx, query, moment, PaymentOrder.id, "payments", cursor, limit)
    return Page([payments.user_order(tx, user_id, row.id) for row in rows], next_cursor)


def transfers_page(
    tx: Tx, user_id: uuid.UUID, filters: Mapping[str, Any], cursor: str | None, limit: int
) -> Page[TransferView]:
    """The person's transfers, sent and received, with the history page's filters: none
    when they ask for a card or an order status, as ``transfers.history`` decides."""
    if filters.get("source", "balance") != "balance" or filters.get("status"):
        return Page([], None)
    query = select(PersonTransfer).where(
        or_(PersonTransfer.sender_id == user_id, PersonTransfer.recipient_id == user_id)
    )
    if filters.get("since"):
        query = query.where(PersonTransfer.created_at >= filters["since"])
    if filters.get("until"):
        query = query.where(PersonTransfer.created_at < filters["until"])
    moment = PersonTransfer.created_at
    rows, next_cursor = _page(tx, query, moment, PersonTransfer.id, "transfers", cursor, limit)
    return Page([transfers.user_transfer(tx, user_id, row.id) for row in rows], next_cursor)


# --- the CSV export -------------------------------------------------------------------

CSV_LIMIT: Final = 10_000


def csv_export(tx: Tx, user_id: uuid.UUID, filters: Mapping[str, Any]) -> str:
    """Payments, then transfers, as the history's CSV (for the page and the API alike)."""
    orders = payments.user_orders(tx, user_id, CSV_LIMIT, **filters)
    moves = transfers.history(tx, user_id, CSV_LIMIT, filters)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    writer.writerows(spreadsheet_safe(_order_row(order)) for order in orders)
    writer.writerows(spreadsheet_safe(row) for row in transfers.csv_rows(moves))
    return out.getvalue()


def _order_row(order: OrderView) -> list[str]:
    card = order.card_amount
    return [
        order.paid_at.isoformat() if order.paid_at else "",
        order.merchant,
        order.out_trade_no,
        order.subject,
        str(order.amount.major),
        order.amount.currency,
        str(order.fee.major),
        str(order.refunded.major),
        order.source or "",
        order.status,
        str(card.major) if card else "",
        card.currency if card else "",
    ]


def spreadsheet_safe(row: list[str]) -> list[str]:
    """Text that a spreadsheet would run as a formula (a subject or a transfer note that
    another person typed, starting with = + - @) is written with a leading apostrophe;
    numbers stay numbers."""
    return [
        "'" + cell
        if cell[:1] in ("=", "+", "-", "@", "\t", "\r") and not _NUMBER.fullmatch(cell)
        else cell
        for cell in row
    ]
