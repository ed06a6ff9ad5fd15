"""A payment by balance as one call to a PostgreSQL function (migration 0034).

Why: the Python path of ``pay_with_balance`` runs thirteen statements (the payment
password's row, the order, restrictions, level, bank card, wallet claim, limits' counters,
the ledger's lock and two inserts, the counters' upsert, the order's update, the trade to
notify), and each costs SQLAlchemy and the driver 50 to 110 µs of Python: most of a
payment's CPU (README, "The money path, measured again"). ``pay_from_balance`` does the
same work inside the database in one round trip, for the common case only: the right
payment password under the current key with no wrong entry counted, a payable order
without a card attempt, no restriction, a level that may use the balance, within the
day's and the year's limits, enough money in an unsharded balance.

Anything else (a wrong or old-style password, a locked one, an expired or paid order, a
refusal of any kind) gets no row back and nothing written but the wallet claim, and the
caller goes on with the Python path in the same transaction, which gives every refusal
its words and writes what must be written (a wrong entry's count). So the rules live in
Python; the function only recognises the case where every rule says yes, and does what
the Python path would do then: the same rows, keys, request hash and counters (tested
side by side in ``tests/wallet/test_pay_in_database.py``). What it mirrors: ``standing``
(level and bank card to rights, whose table Python hands it from ``policy.py``),
``restrictions.refuse_money_out``, ``limits``, ``ledger.transfer`` and ``mark_paid``;
a change to one of those needs the same change in a new migration.

PostgreSQL only, and ``QIANBAO_MONEY_IN_DATABASE=false`` turns it off.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Final
from weakref import WeakKeyDictionary

from sqlalchemy import text

from qianbao import policy
from qianbao.db import Database, Tx, UTCDateTime, new_id
from qianbao.identity import pins
from qianbao.identity import service as identity
from qianbao.money import Money
from qianbao.observability import metrics
from qianbao.wallet import limits
from qianbao.wallet.ledger.service import Receipt


@dataclass(frozen=True)
class RightsTable:
    """policy.py's rights to pay from the balance, for every level with and without a
    bank card, as the function's arrays (a NULL limit is no limit)."""

    keys: list[str]
    use_balance: list[bool]
    per_day: list[int | None]
    per_year: list[int | None]


_PAY: Final = text(
    "SELECT * FROM pay_from_balance(:user_id, :order_id, :pin_hash, :now, :day, :year,"
    " :rights_keys, :use_balance, :per_day, :per_year, :operation_id, :transfer_id)"
).columns(  # the times as every other read gives them (UTC, aware); the rest as they come
    created_at=UTCDateTime(), expires_at=UTCDateTime(), paid_at=UTCDateTime()
)

# Built once per database's settings (policy overrides are settings).
_RIGHTS: WeakKeyDictionary[Database, RightsTable] = WeakKeyDictionary()


def enabled(tx: Tx) -> bool:
    return tx.db.dialect == "postgresql" and tx.settings.money_in_database


def pay_from_balance(tx: Tx, user_id: uuid.UUID, order_id: uuid.UUID, pin: str) -> Any | None:
    """Pay ``order_id`` from ``user_id``'s balance in one call, if every rule allows it:
    the paid order's row (``PaymentOrder``'s columns that ``order_view`` reads); None
    when the Python path must decide (nothing written that it would not write)."""
    now = tx.now()
    day = limits.local_day(now)
    rights = rights_table(tx.db)
    operation_id, transfer_id = new_id(), new_id()
    row = tx.read(
        _PAY,
        {
            "user_id": user_id,
            "order_id": order_id,
            "pin_hash": pins.hash_pin(tx.settings, user_id, pin),
            "now": now,
            "day": day,
            "year": day.replace(month=1, day=1),
            "rights_keys": rights.keys,
            "use_balance": rights.use_balance,
            "per_day": rights.per_day,
            "per_year": rights.per_year,
            "operation_id": operation_id,
            "transfer_id": transfer_id,
        },
    ).first()
    metrics.money_in_database("paid" if row is not None else "python")
    if row is None:
        return None
    key = f"order:{order_id}:pay"
    request = {"op": "transfer", "debit": row.debit_account_id, "credit": row.credit_account_id}
    receipt = Receipt(operation_id, (transfer_id,), {}, replayed=False)
    metrics.ledger_operations([(key, request)], [receipt])
    return row


def rights_table(db: Database) -> RightsTable:
    known = _RIGHTS.get(db)
    if known is None:
        known = _RIGHTS[db] = _build_rights_table(db)
    return known


def _build_rights_table(db: Database) -> RightsTable:
    table = RightsTable([], [], [], [])
    for level in identity.VERIFICATION_LEVELS:
        for has_card in (False, True):
            rights = policy.rights_for(policy.tier_for(level, has_card), db.settings)
            table.keys.append(f"{level}/card" if has_card else level)
            table.use_balance.append(rights.use_balance)
            table.per_day.append(_minor(rights.balance_per_day))
            table.per_year.append(_minor(rights.balance_per_year))
    return table


def _minor(limit: Money | None) -> int | None:
    return None if limit is None else limit.minor
