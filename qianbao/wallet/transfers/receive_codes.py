"""Receive codes (Alipay's 收款码): the QR code a person shows so that others scan it and
send them money. The code carries a random token, never the phone number; the sender's
transfer names the recipient as ``receive-code:<token>`` and goes through the usual
transfer use case (payment password, limits, policy). An owner who sets an amount or a
note gets a code that fills them in; the sender still sees and confirms both."""

from __future__ import annotations

import secrets
import urllib.parse
import uuid
from typing import Final

from sqlalchemy import select

from qianbao.db import Tx
from qianbao.errors import NotFound
from qianbao.i18n import N_
from qianbao.wallet.transfers.models import ReceiveCode

PATH_PREFIX: Final = "/wallet/receive/"
# How a transfer names a recipient by their receive code instead of a number or email.
RECIPIENT_PREFIX: Final = "receive-code:"
TOKEN_BYTES: Final = 24  # 32 URL-safe characters: unguessable


def token_of(tx: Tx, user_id: uuid.UUID) -> str:
    """The person's current token, made on first use."""
    row = tx.session.get(ReceiveCode, user_id)
    if row is None:
        row = ReceiveCode(user_id=user_id, token=_new_token(), created_at=tx.now())
        tx.session.add(row)
        tx.session.flush()
    return row.token


def reset(tx: Tx, user_id: uuid.UUID) -> str:
    """A new token for the person: codes printed or shared before name nobody now."""
    row = tx.session.get(ReceiveCode, user_id, with_for_update=True)
    if row is None:
        return token_of(tx, user_id)
    row.token, row.created_at = _new_token(), tx.now()
    tx.session.flush()
    return row.token


def owner(tx: Tx, token: str) -> uuid.UUID:
    """Whose code this token is; refused when unknown (never made, or reset since)."""
    text = token.strip()
    found = None
    if 0 < len(text) <= 43 and text.replace("-", "").replace("_", "").isalnum():
        found = tx.session.scalar(select(ReceiveCode.user_id).where(ReceiveCode.token == text))
    if found is None:
        raise NotFound(
            "receive_code.unknown",
            N_("This receive code is not in use any more. Ask its owner for their new code."),
        )
    return found


def is_recipient_code(to: str) -> bool:
    return to.strip().startswith(RECIPIENT_PREFIX)


def token_in(to: str) -> str:
    return to.strip().removeprefix(RECIPIENT_PREFIX)


def path(token: str, amount: str = "", note: str = "") -> str:
    """The path the QR code carries (under the public base URL): the token, and the
    amount and note the owner chose (checked again when the sender confirms)."""
    query = {key: value for key, value in (("amount", amount), ("note", note)) if value}
    suffix = "?" + urllib.parse.urlencode(query, quote_via=urllib.parse.quote) if query else ""
    return PATH_PREFIX + token + suffix


def _new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)
