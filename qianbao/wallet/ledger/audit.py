"""The ledger's audit: every account recomputed from its history and compared, every
balance against its floor, and every currency summed (double entry sums to zero).

A full scan: for the tests, the bank test and an operator's periodic check
(``qianbao ledger audit``), not for a request.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import cast

from sqlalchemy import Table, select, text

from qianbao.db import Tx
from qianbao.wallet.ledger.models import LedgerAccount

_ACCOUNTS = cast(Table, LedgerAccount.__table__)


@dataclass(frozen=True)
class Audit:
    """What ``audit`` found; all empty/zero on a sound ledger."""

    balances_off_history: list[uuid.UUID]
    below_floor: list[uuid.UUID]
    currency_totals: dict[str, int]
    accounts_checked: int = 0  # how many account rows (shards included) were recomputed

    @property
    def sound(self) -> bool:
        return (
            not self.balances_off_history
            and not self.below_floor
            and all(total == 0 for total in self.currency_totals.values())
        )


_HISTORY = text(
    """
    SELECT account_id, SUM(posted) AS posted, SUM(reserved_debit) AS pending_debits,
           SUM(reserved_credit) AS pending_credits
    FROM (
        SELECT t.credit_account_id AS account_id,
               CASE WHEN t.kind IN ('posted', 'post_pending') THEN t.amount ELSE 0 END
                   AS posted,
               0 AS reserved_debit,
               CASE WHEN t.kind = 'pending' AND r.id IS NULL THEN t.amount ELSE 0 END
                   AS reserved_credit
        FROM ledger_transfers AS t LEFT JOIN ledger_transfers AS r ON r.pending_id = t.id
        UNION ALL
        SELECT t.debit_account_id,
               CASE WHEN t.kind IN ('posted', 'post_pending') THEN -t.amount ELSE 0 END,
               CASE WHEN t.kind = 'pending' AND r.id IS NULL THEN t.amount ELSE 0 END,
               0
        FROM ledger_transfers AS t LEFT JOIN ledger_transfers AS r ON r.pending_id = t.id
    ) AS legs
    GROUP BY account_id
    """
)


def audit(tx: Tx) -> Audit:
    """Recompute every account from its history and compare (a full scan: for tests and
    for an operator's periodic check, not for a request)."""
    history = {
        uuid.UUID(str(row.account_id))
        if not isinstance(row.account_id, uuid.UUID)
        else row.account_id: (int(row.posted), int(row.pending_debits), int(row.pending_credits))
        for row in tx.session.execute(_HISTORY)
    }
    off: list[uuid.UUID] = []
    below: list[uuid.UUID] = []
    totals: dict[str, int] = {}
    checked = 0
    for row in tx.session.execute(
        select(
            _ACCOUNTS.c.id,
            _ACCOUNTS.c.currency,
            _ACCOUNTS.c.floor,
            _ACCOUNTS.c.balance,
            _ACCOUNTS.c.pending_debits,
            _ACCOUNTS.c.pending_credits,
        )
    ):
        if history.get(row.id, (0, 0, 0)) != (row.balance, row.pending_debits, row.pending_credits):
            off.append(row.id)
        if row.floor is not None and row.balance - row.pending_debits < row.floor:
            below.append(row.id)
        totals[row.currency] = totals.get(row.currency, 0) + row.balance
        checked += 1
    return Audit(off, below, totals, checked)
