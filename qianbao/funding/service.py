"""Use cases of payment instruments: binding a mainland bank card after the bank's
four-element check (card number, holder's name, ID number, reserved phone)."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from qianbao.db import Tx
from qianbao.funding.models import BankCard


def has_bank_card(tx: Tx, user_id: uuid.UUID) -> bool:
    """Whether the person has a bound mainland bank card (policy.py counts it)."""
    query = select(BankCard.id).where(BankCard.user_id == user_id, BankCard.removed_at.is_(None))
    return tx.session.scalar(query.limit(1)) is not None
