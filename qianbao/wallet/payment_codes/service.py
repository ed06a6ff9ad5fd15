"""Payment codes (Alipay's 付款码): a person asks for one, shows it, and a shop scans it
and takes the payment (the trade API's ``alipay.trade.pay``). A code is 18 digits
beginning 28 (Alipay's codes begin 25 to 30), works once, and only for
``payment_code_seconds``; it stands for the payment password, so the shop may take at
most ``payment_code_password_free_limit`` with it."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Final

from sqlalchemy import select

from qianbao.db import Tx
from qianbao.errors import Forbidden, InvalidInput
from qianbao.i18n import N_
from qianbao.sealing import keyring
from qianbao.wallet.payment_codes.models import PaymentCode, PaymentCodeLimit

PREFIX: Final = "28"
DIGITS: Final = 16
PURPOSE: Final = b"payment-code"


@dataclass(frozen=True)
class IssuedCode:
    code: str
    expires_at: datetime


def _hash(tx: Tx, code: str) -> str:
    key_id, mac = keyring(tx.settings).keyed_hash(code.encode(), PURPOSE)
    return f"{key_id}${mac.hex()}"


def issue(tx: Tx, user_id: uuid.UUID) -> IssuedCode:
    """A new code for the person; shown once, kept only as a keyed hash."""
    code = PREFIX + "".join(secrets.choice("0123456789") for _ in range(DIGITS))
    expires = tx.now() + timedelta(seconds=tx.settings.payment_code_seconds)
    tx.session.add(
        PaymentCode(
            user_id=user_id, code_hash=_hash(tx, code), created_at=tx.now(), expires_at=expires
        )
    )
    tx.session.flush()
    return IssuedCode(code, expires)


def redeem(tx: Tx, code: str, amount: Decimal | None = None) -> uuid.UUID:
    """Whose code this is, using it up; refused if unknown, used or expired, or if
    ``amount`` (CNY) is above its owner's password-free limit."""
    text = code.strip()
    row = None
    if len(text) == len(PREFIX) + DIGITS and text.isdigit():
        row = tx.session.scalar(
            select(PaymentCode).where(PaymentCode.code_hash == _hash(tx, text)).with_for_update()
        )
    if row is None or row.used_at is not None or row.expires_at <= tx.now():
        raise Forbidden(
            "payment_code.invalid",
            N_("This payment code is not valid any more. Show a new one."),
        )
    if amount is not None and amount > password_free_limit(tx, row.user_id):
        raise Forbidden(
            "payment_code.over_limit",
            N_("This is more than the buyer lets a shop take with their payment code."),
        )
    row.used_at = tx.now()
    return row.user_id


def password_free_limit(tx: Tx, user_id: uuid.UUID) -> int:
    """The most (whole CNY) a shop may take with this person's code: their own choice,
    capped by the global setting (which may have been lowered since they chose)."""
    cap = tx.settings.payment_code_password_free_limit
    row = tx.session.get(PaymentCodeLimit, user_id)
    return cap if row is None else min(row.password_free_limit, cap)


def set_password_free_limit(tx: Tx, user_id: uuid.UUID, text: str) -> int:
    """The person's own limit, in whole CNY from 0 (the code is refused for any amount)
    up to the global setting."""
    cap = tx.settings.payment_code_password_free_limit
    cleaned = text.strip()
    if not cleaned.isascii() or not cleaned.isdigit() or int(cleaned) > cap:
        raise InvalidInput(
            "payment_code.limit_invalid",
            N_("Enter a whole number of yuan from 0 to {cap}."),
            {"cap": cap},
        )
    row = tx.session.get(PaymentCodeLimit, user_id, with_for_update=True)
    if row is None:
        row = PaymentCodeLimit(user_id=user_id, password_free_limit=0, updated_at=tx.now())
        tx.session.add(row)
    row.password_free_limit, row.updated_at = int(cleaned), tx.now()
    tx.session.flush()
    return row.password_free_limit
