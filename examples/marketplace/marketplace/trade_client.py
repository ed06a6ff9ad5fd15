"""The shop's side of paying through Qianbao: a merchant app of its trade API, spoken with
Alipay's official Python SDK (``alipay-sdk-python``) exactly as a shop on Alipay would.

The SDK signs each request with the app's private key and checks each answer's signature
with the platform's public key; notifications and the return to the shop are checked
with the SDK's own verification helper. Two things are the shop's to arrange, as on
Alipay: its process runs in Beijing time (the SDK stamps requests with the local clock;
``python -m marketplace`` sets TZ), and the known quirk of the SDK's HTTP helper, which
drops the port of the gateway URL, is worked around below for a gateway on a port.
"""

from __future__ import annotations

import http.client
import json
import threading
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import requests
from alipay.aop.api.AlipayClientConfig import AlipayClientConfig
from alipay.aop.api.DefaultAlipayClient import DefaultAlipayClient
from alipay.aop.api.domain.AlipayTradePagePayModel import AlipayTradePagePayModel
from alipay.aop.api.domain.AlipayTradePrecreateModel import AlipayTradePrecreateModel
from alipay.aop.api.domain.AlipayTradeQueryModel import AlipayTradeQueryModel
from alipay.aop.api.domain.AlipayTradeRefundModel import AlipayTradeRefundModel
from alipay.aop.api.request.AlipayTradePagePayRequest import AlipayTradePagePayRequest
from alipay.aop.api.request.AlipayTradePrecreateRequest import AlipayTradePrecreateRequest
from alipay.aop.api.request.AlipayTradeQueryRequest import AlipayTradeQueryRequest
from alipay.aop.api.request.AlipayTradeRefundRequest import AlipayTradeRefundRequest
from alipay.aop.api.util import WebUtils
from alipay.aop.api.util.SignatureUtils import get_sign_content, verify_with_rsa

from marketplace.settings import Settings

SUCCESS_CODE: Final = "10000"
# What a notification's sender signed: every field but these two (Alipay's rule).
UNSIGNED_FIELDS: Final = ("sign", "sign_type")


class GatewayUnavailable(Exception):
    """Qianbao's gateway could not be reached, or its answer did not verify."""


class GatewayRefused(Exception):
    """An answer other than 10000: Alipay's code and sub_code."""

    def __init__(self, code: str, sub_code: str, sub_msg: str) -> None:
        super().__init__(sub_code or code)
        self.code, self.sub_code, self.sub_msg = code, sub_code, sub_msg


def _connection_keeping_the_port(
    url: str, query_string: str, timeout: int
) -> tuple[str, http.client.HTTPConnection]:
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    if parts.scheme == "https":
        secure = http.client.HTTPSConnection(host, parts.port or 443, timeout=timeout)
        return f"{parts.path}?{query_string}", secure
    plain = http.client.HTTPConnection(host, parts.port or 80, timeout=timeout)
    return f"{parts.path}?{query_string}", plain


def keep_the_gateway_port() -> None:
    """The SDK's known quirk: its helper connects to port 80 or 443 whatever the URL
    says. Replaced by one that keeps the port (nothing else of the SDK is touched)."""
    WebUtils.get_http_connection = _connection_keeping_the_port


@dataclass(frozen=True)
class Trade:
    """What the gateway says of one of the shop's orders."""

    out_trade_no: str
    trade_no: str
    trade_status: str
    total_amount: str


@dataclass(frozen=True)
class Refund:
    fund_change: bool
    refund_fee: str  # everything refunded on the trade so far, in yuan


def yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


def fen(amount: str) -> int:
    whole, _, cents = amount.partition(".")
    return int(whole) * 100 + int((cents + "00")[:2])


class TradeClient:
    """The app ``settings.app_id`` at ``settings.gateway_url``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._platform_keys: list[str] = list(settings.platform_public_keys)
        self._lock = threading.Lock()
        keep_the_gateway_port()

    # --- keys ---

    def platform_keys(self) -> list[str]:
        """The platform's public keys: from the settings, or fetched once from the
        gateway's published list (the demo's way; a real shop installs them)."""
        with self._lock:
            if not self._platform_keys:
                self._platform_keys = self._fetch_platform_keys()
            return list(self._platform_keys)

    def _fetch_platform_keys(self) -> list[str]:
        url = f"{self.settings.issuer}/gateway/platform-keys"
        try:
            answer = requests.get(url, timeout=self.settings.http_timeout_seconds)
            answer.raise_for_status()
            keys = answer.json()["keys"]
        except (requests.RequestException, ValueError, KeyError, TypeError) as error:
            raise GatewayUnavailable(str(error)) from error
        # The current key first: the SDK checks answers with one key.
        ordered = sorted(keys, key=lambda key: key.get("state") != "current")
        return [str(key["public_key"]) for key in ordered]

    def _sdk(self) -> Any:
        config = AlipayClientConfig()
        config.server_url = self.settings.gateway_url
        config.app_id = self.settings.app_id
        config.app_private_key = self.settings.app_private_key()
        config.alipay_public_key = self.platform_keys()[0]
        config.sign_type = "RSA2"
        config.timeout = int(self.settings.http_timeout_seconds)
        return DefaultAlipayClient(alipay_client_config=config)

    def _call(self, request: Any) -> dict[str, Any]:
        """The SDK's call: it raises unless the answer's signature verifies."""
        try:
            answer: dict[str, Any] = json.loads(self._sdk().execute(request))
        except GatewayUnavailable:
            raise
        except Exception as error:  # the SDK raises bare exceptions for network and sign
            raise GatewayUnavailable(f"{type(error).__name__}: {error}") from error
        if answer.get("code") != SUCCESS_CODE:
            raise GatewayRefused(
                str(answer.get("code", "")),
                str(answer.get("sub_code", "")),
                str(answer.get("sub_msg", "")),
            )
        return answer

    # --- paying ---

    def page_pay_url(self, out_trade_no: str, total_fen: int, subject: str) -> str:
        """The link that takes the person's browser to Qianbao's cashier (the SDK's GET
        form of ``alipay.trade.page.pay``, signed), and back to the return page."""
        model = AlipayTradePagePayModel()
        model.out_trade_no, model.total_amount = out_trade_no, yuan(total_fen)
        model.subject, model.product_code = subject, "FAST_INSTANT_TRADE_PAY"
        request = AlipayTradePagePayRequest(biz_model=model)
        request.return_url = f"{self.settings.base_url}/payments/return"
        request.notify_url = f"{self.settings.base_url}/payments/notify"
        try:
            url: str = self._sdk().page_execute(request, http_method="GET")
        except GatewayUnavailable:
            raise
        except Exception as error:
            raise GatewayUnavailable(str(error)) from error
        return url

    def precreate(self, out_trade_no: str, total_fen: int, subject: str) -> str:
        """``alipay.trade.precreate``: the QR code's content (the cashier's URL)."""
        model = AlipayTradePrecreateModel()
        model.out_trade_no, model.total_amount = out_trade_no, yuan(total_fen)
        model.subject = subject
        request = AlipayTradePrecreateRequest(biz_model=model)
        request.notify_url = f"{self.settings.base_url}/payments/notify"
        return str(self._call(request)["qr_code"])

    def query(self, out_trade_no: str) -> Trade:
        model = AlipayTradeQueryModel()
        model.out_trade_no = out_trade_no
        answer = self._call(AlipayTradeQueryRequest(biz_model=model))
        return Trade(
            out_trade_no=str(answer["out_trade_no"]),
            trade_no=str(answer["trade_no"]),
            trade_status=str(answer["trade_status"]),
            total_amount=str(answer["total_amount"]),
        )

    def refund(self, out_trade_no: str, amount_fen: int, out_request_no: str) -> Refund:
        """``alipay.trade.refund``: one refund per out_request_no (a retry of the same
        number moves no money twice)."""
        model = AlipayTradeRefundModel()
        model.out_trade_no, model.refund_amount = out_trade_no, yuan(amount_fen)
        model.out_request_no = out_request_no
        answer = self._call(AlipayTradeRefundRequest(biz_model=model))
        return Refund(answer.get("fund_change") == "Y", str(answer.get("refund_fee", "0.00")))

    # --- what Qianbao sends the shop ---

    def verify(self, params: Mapping[str, str]) -> bool:
        """A notification's or a return's signature, checked with the SDK's helper over
        every field but sign and sign_type, against each published platform key."""
        signature = params.get("sign", "")
        if not signature:
            return False
        content = get_sign_content({k: v for k, v in params.items() if k not in UNSIGNED_FIELDS})
        for key in self.platform_keys():
            try:
                if verify_with_rsa(key, content.encode("utf-8"), signature):
                    return True
            except Exception:  # noqa: S112 - the rsa package raises on a bad signature
                continue
        return False
