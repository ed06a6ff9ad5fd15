"""Words for the codes that tables and protocols keep: an order's Alipay trade status, the
source a payment came from, a transfer's direction, a Tour Pass's or a pay-for-me link's
state. Pages show these words (through Jinja filters, qianbao.web.render); the API and
the CSV keep the codes, which programs read."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from qianbao.i18n import N_, gettext_

TRADE_STATUS_WORDS: Final[Mapping[str, str]] = {
    "WAIT_BUYER_PAY": N_("Waiting for payment"),
    "TRADE_SUCCESS": N_("Paid"),
    "TRADE_CLOSED": N_("Closed"),
    "TRADE_FINISHED": N_("Completed"),
}
SOURCE_WORDS: Final[Mapping[str, str]] = {
    "balance": N_("Balance"),
    "foreign_card": N_("Foreign card"),
    "bank_card": N_("Mainland bank card"),
    "tour_pass": N_("Tour Pass"),
    "held": N_("Held money"),
}
TRANSFER_WORDS: Final[Mapping[str, str]] = {
    "sent": N_("Sent"),
    "received": N_("Received"),
    "done": N_("Done"),
    "pending": N_("Waiting"),
    "sending": N_("On its way"),
    "failed": N_("Failed"),
    "refused": N_("Refused"),
}
STATE_WORDS: Final[Mapping[str, str]] = {
    "open": N_("Active"),
    "paid": N_("Paid"),
    "closed": N_("Closed"),
    "expired": N_("Expired"),
}


def word(words: Mapping[str, str], code: str | None) -> str:
    """The code's word in the current language; an unknown code is shown as it is, so a
    new status added to a table is never hidden."""
    if not code:
        return ""
    return gettext_(words[code]) if code in words else code


def trade_status(code: str | None) -> str:
    return word(TRADE_STATUS_WORDS, code)


def source(code: str | None) -> str:
    return word(SOURCE_WORDS, code)


def transfer_state(code: str | None) -> str:
    return word(TRANSFER_WORDS, code)


def state(code: str | None) -> str:
    return word(STATE_WORDS, code)
