"""What a scanned code is, decided here on the server (the page only reads pixels): a
shop's QR code (the cashier URL of ``alipay.trade.precreate``) opens the cashier, a
person's receive code opens the page to send them money, a pay-for-me link opens it.
Only Qianbao's own addresses are followed; anything else is refused by a message that
says what it was, so a scanned code never sends a person to a site they did not mean to
open."""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass
from typing import Final, Literal

from qianbao.db import Tx
from qianbao.errors import InvalidInput
from qianbao.i18n import N_
from qianbao.wallet.payment_codes import service as payment_codes
from qianbao.wallet.transfers import receive_codes

LONGEST: Final = 2048
UUID_PATTERN: Final = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
CASHIER: Final = re.compile(rf"/cashier/({UUID_PATTERN})")
RECEIVE: Final = re.compile(re.escape(receive_codes.PATH_PREFIX) + r"([A-Za-z0-9_-]{1,43})")
PAY_FOR_ME: Final = re.compile(r"/pay-for-me/([A-Za-z0-9_-]{1,64})")

Kind = Literal["cashier", "receive_code", "pay_for_me"]


@dataclass(frozen=True)
class Resolved:
    kind: Kind
    path: str  # where to go, on this site


def resolve(tx: Tx, scanned: str) -> Resolved:
    """The page a scanned or pasted code stands for, or a refusal saying what it is."""
    text = scanned.strip()
    if not text or len(text) > LONGEST:
        raise InvalidInput("scan.empty", N_("Scan a code, or paste what it says."))
    if _is_payment_code(text):
        raise InvalidInput(
            "scan.payment_code",
            N_("This is a payment code: a shop scans it to take a payment. Nothing to pay here."),
        )
    parts = urllib.parse.urlsplit(text)
    if parts.scheme in ("http", "https") and not _is_ours(tx, parts):
        raise InvalidInput(
            "scan.other_site",
            N_("This code leads to another website ({host}). Qianbao opens only its own codes."),
            {"host": parts.hostname or "?"},
        )
    if parts.scheme not in ("", "http", "https") or (not parts.scheme and parts.netloc):
        raise _unknown()
    return _on_our_site(tx, parts)


def _on_our_site(tx: Tx, parts: urllib.parse.SplitResult) -> Resolved:
    if match := CASHIER.fullmatch(parts.path):
        return Resolved("cashier", f"/cashier/{match.group(1).lower()}")
    if match := RECEIVE.fullmatch(parts.path):
        token = match.group(1)
        receive_codes.owner(tx, token)  # a reset or unknown code: its own message
        query = urllib.parse.parse_qs(parts.query)
        amount = query.get("amount", [""])[0][:32]
        note = query.get("note", [""])[0][:400]
        return Resolved("receive_code", receive_codes.path(token, amount, note))
    if match := PAY_FOR_ME.fullmatch(parts.path):
        return Resolved("pay_for_me", f"/pay-for-me/{match.group(1)}")
    raise _unknown()


def _is_ours(tx: Tx, parts: urllib.parse.SplitResult) -> bool:
    ours = urllib.parse.urlsplit(tx.settings.public_base_url)
    return (parts.scheme, parts.netloc.lower()) == (ours.scheme, ours.netloc.lower())


def _is_payment_code(text: str) -> bool:
    return (
        text.isascii()
        and text.isdigit()
        and len(text) == len(payment_codes.PREFIX) + payment_codes.DIGITS
    )


def _unknown() -> InvalidInput:
    return InvalidInput(
        "scan.unknown",
        N_(
            "Qianbao does not know this code. Scan a shop's Qianbao code or a person's "
            "receive code."
        ),
    )
