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
from typing import Final

from sqlalchemy import select

from qianbao.db import Tx
from qianbao.errors import Forbidden
from qianbao.i18n import N_
from qianbao.sealing import keyring
from qianbao.wallet.payment_codes.models import PaymentCode

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


def redeem(tx: Tx, code: str) -> uuid.UUID:
    """Whose code this is, using it up; refused if unknown, used or expired."""
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
    row.used_at = tx.now()
    return row.user_id
