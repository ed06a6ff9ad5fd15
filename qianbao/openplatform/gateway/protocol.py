"""The gateway's words: Alipay's result codes, the refusal that carries them, the common
parameters' checks (timestamp in Beijing time, charset, sign type) and the answer's
exact text, signed over the response object as the SDKs verify it."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final
from zoneinfo import ZoneInfo

from cryptography.hazmat.primitives.asymmetric import rsa

from qianbao.i18n import N_, translate
from qianbao.money import AmountRefused, Money
from qianbao.openplatform import signing

BEIJING: Final = ZoneInfo("Asia/Shanghai")
TIMESTAMP_FORMAT: Final = "%Y-%m-%d %H:%M:%S"

# Alipay's gateway result codes and their fixed English msg.
SUCCESS: Final = ("10000", "Success")
UNAVAILABLE: Final = ("20000", "Service Currently Unavailable")
NO_PERMISSION: Final = ("20001", "Insufficient Token Permissions")
MISSING: Final = ("40001", "Missing Required Arguments")
INVALID: Final = ("40002", "Invalid Arguments")
BUSINESS: Final = ("40004", "Business Failed")
PLATFORM_REFUSED: Final = ("40006", "Insufficient Permissions")

MIN_AMOUNT: Final = Money.of("CNY", "0.01")
MAX_AMOUNT: Final = Money.of("CNY", "100000000")


class GatewayRefusal(Exception):
    """An answer other than success: a code pair, a stable sub_code and its message."""

    def __init__(
        self,
        result: tuple[str, str],
        sub_code: str,
        sub_msg: str,
        params: Mapping[str, object] | None = None,
    ) -> None:
        super().__init__(sub_code)
        self.result, self.sub_code, self.sub_msg = result, sub_code, sub_msg
        self.params = dict(params or {})

    def body(self) -> dict[str, str]:
        return {
            "code": self.result[0],
            "msg": self.result[1],
            "sub_code": self.sub_code,
            "sub_msg": translate(self.sub_msg, self.params),
        }


def invalid_parameter(name: str) -> GatewayRefusal:
    return GatewayRefusal(
        BUSINESS,
        "ACQ.INVALID_PARAMETER",
        N_("The parameter {name} is missing or invalid."),
        {"name": name},
    )


def response_key(method: str) -> str:
    """``alipay.trade.query`` answers under ``alipay_trade_query_response``."""
    return method.replace(".", "_") + "_response"


def signed_answer(key: str, body: Mapping[str, object], signer: rsa.RSAPrivateKey) -> str:
    """``{"<key>":{...},"sign":"..."}`` with the signature over the response object's
    exact text, the text that appears between the key and ``,"sign"``."""
    inner = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    signature = signing.sign(signer, inner)
    return "{" + json.dumps(key) + ":" + inner + ',"sign":' + json.dumps(signature) + "}"


def parse_timestamp(text: str) -> datetime:
    """``yyyy-MM-dd HH:mm:ss`` in Beijing time, as the SDKs send it."""
    try:
        return datetime.strptime(text, TIMESTAMP_FORMAT).replace(tzinfo=BEIJING)
    except ValueError:
        raise GatewayRefusal(
            INVALID, "isv.invalid-timestamp", N_("The timestamp is not yyyy-MM-dd HH:mm:ss.")
        ) from None


def check_timestamp(text: str, now: datetime, tolerance_seconds: int) -> None:
    moment = parse_timestamp(text)
    if abs(moment - now) > timedelta(seconds=tolerance_seconds):
        raise GatewayRefusal(
            INVALID,
            "isv.invalid-timestamp",
            N_("The timestamp is more than {seconds} seconds away from the server's time."),
            {"seconds": tolerance_seconds},
        )


def beijing_time(moment: datetime | None) -> str:
    return "" if moment is None else moment.astimezone(BEIJING).strftime(TIMESTAMP_FORMAT)


def yuan(amount: Money) -> str:
    """Alipay's amounts: yuan with two decimals."""
    return f"{amount.major:.2f}"


def parse_yuan(text: object, name: str) -> Money:
    """An amount parameter (a string, or a JSON number), read by ``Money.parse`` as a
    protocol writes amounts, from 0.01 to 100,000,000 yuan; anything else is
    ``ACQ.INVALID_PARAMETER`` naming the parameter."""
    if not isinstance(text, str | int | float) or isinstance(text, bool):
        raise invalid_parameter(name)
    try:
        amount = Money.parse(str(text), plain=True)
    except AmountRefused:
        raise invalid_parameter(name) from None
    if not MIN_AMOUNT <= amount <= MAX_AMOUNT:
        raise invalid_parameter(name)
    return amount


def parse_timeout(text: object, default: timedelta) -> timedelta:
    """``timeout_express``: 1m to 15d, in m, h or d (and ``1c``, the rest of today in
    Beijing, read as a day); absent, the default."""
    if text in (None, ""):
        return default
    if not isinstance(text, str) or len(text) < 2 or not text[:-1].isdigit():
        raise invalid_parameter("timeout_express")
    number, unit = int(text[:-1]), text[-1]
    units = {"m": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1)}
    if unit == "c" and number == 1:
        return timedelta(days=1)
    if unit not in units:
        raise invalid_parameter("timeout_express")
    timeout = number * units[unit]
    if not timedelta(minutes=1) <= timeout <= timedelta(days=15):
        raise invalid_parameter("timeout_express")
    return timeout


@dataclass(frozen=True)
class Answer:
    """What the gateway sends back: the signed JSON text, or where to send a person."""

    text: str = ""
    redirect: str = ""
    status: int = 200
