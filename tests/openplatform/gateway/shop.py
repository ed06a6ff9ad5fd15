"""The shop's side of the trade API tests: Alipay's official Python SDK as the client of a
live Qianbao, requests signed by hand, a small web server standing in for the shop's
notify_url, and a person with money to pay the shop.

The SDK's HTTP helper drops the port of the gateway URL (it connects to port 80 or 443
whatever the URL says): the test server listens on a free port, so the helper is replaced
here, in the test, by one that keeps the port. Nothing else of the SDK is touched.
"""

from __future__ import annotations

import http.client
import json
import threading
import urllib.parse
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from alipay.aop.api.AlipayClientConfig import AlipayClientConfig
from alipay.aop.api.DefaultAlipayClient import DefaultAlipayClient
from alipay.aop.api.util import WebUtils
from alipay.aop.api.util.SignatureUtils import get_sign_content, verify_with_rsa
from cryptography.hazmat.primitives.asymmetric import rsa

from qianbao.clock import FrozenClock
from qianbao.db import Database
from qianbao.openplatform import signing
from qianbao.openplatform.gateway import protocol
from qianbao.openplatform.merchants import service as merchants
from qianbao.wallet.payments import service as payments
from tests.e2e.liveserver import LiveServer
from tests.wallet.test_payments import buyer, fund, verify

SHOP = "Teahouse Online"


def _connection_keeping_the_port(
    url: str, query_string: str, timeout: int
) -> tuple[str, http.client.HTTPConnection]:
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    connection = http.client.HTTPConnection(host, parts.port or 80, timeout=timeout)
    return f"{parts.path}?{query_string}", connection


def keep_the_port(monkeypatch: pytest.MonkeyPatch) -> None:
    """The known quirk worked around: WebUtils.get_http_connection ignores the port."""
    monkeypatch.setattr(WebUtils, "get_http_connection", _connection_keeping_the_port)


@dataclass(frozen=True)
class ShopKeys:
    private: rsa.RSAPrivateKey

    @property
    def private_base64(self) -> str:
        """The app's private key as the SDK takes it (PKCS#1, one Base64 line)."""
        return signing.bare_base64(signing.private_pem(self.private).decode())

    @property
    def public_pem(self) -> str:
        return signing.public_pem(self.private.public_key())


def new_shop_keys(bits: int = 2048) -> ShopKeys:
    return ShopKeys(signing.new_private_key(bits))


def sdk_client(gateway: str, app_id: str, keys: ShopKeys, platform_key: str) -> Any:
    config = AlipayClientConfig()
    config.server_url = gateway
    config.app_id = app_id
    config.app_private_key = keys.private_base64
    config.alipay_public_key = platform_key
    config.sign_type = "RSA2"
    return DefaultAlipayClient(alipay_client_config=config)


class Shop:
    """A merchant with one app whose key is installed, and its SDK client."""

    def __init__(self, server: LiveServer, merchant: str = SHOP) -> None:
        db = server.db
        self.db, self.gateway = db, f"{server.url}/gateway.do"
        self.keys = new_shop_keys()
        if db.run(lambda tx: payments.merchant_by_name(tx, merchant)) is None:
            db.run(lambda tx: payments.create_merchant(tx, merchant))
        self.app_id = db.run(lambda tx: merchants.create_app(tx, merchant, "web")).app_id
        db.run(lambda tx: merchants.set_app_key(tx, self.app_id, self.keys.public_pem))
        self.platform_key = platform_key(db)
        self.client = sdk_client(self.gateway, self.app_id, self.keys, self.platform_key)

    def call(self, request: Any) -> dict[str, Any]:
        """The SDK's call: it raises unless the answer's signature verifies, and returns
        the response object (the text the signature covers)."""
        answer: dict[str, Any] = json.loads(self.client.execute(request))
        return answer


def platform_key(db: Database) -> str:
    keys = db.run(merchants.platform_keys)
    current = next(key for key in keys if key.state == "current")
    return signing.bare_base64(current.public_key)


def signed_request(
    db: Database, app_id: str, keys: ShopKeys, method: str, biz_content: str
) -> dict[str, str]:
    """A gateway request signed by Alipay's documented rule with ``cryptography`` (not the
    SDK), stamped with the server's own time."""
    params = {
        "app_id": app_id,
        "method": method,
        "format": "JSON",
        "charset": "utf-8",
        "sign_type": "RSA2",
        "timestamp": protocol.beijing_time(db.run(lambda tx: tx.now())),
        "version": "1.0",
        "biz_content": biz_content,
    }
    params["sign"] = signing.sign(keys.private, signing.sign_content(params))
    return params


def paying_person(
    db: Database, clock: FrozenClock, money: str = "500", number: str = "07911 123456"
) -> uuid.UUID:
    """A verified person with ``money`` yuan in their balance and a payment password."""
    person = buyer(db, clock, number)
    verify(db, person)
    fund(db, person, money)
    return person


def verify_notification(form: dict[str, str], platform_key: str) -> bool:
    """A shop's check, with the SDK's own helpers: every pair but sign and sign_type,
    sorted, verified with the platform's public key."""
    signature = form["sign"]
    content = get_sign_content({k: v for k, v in form.items() if k not in ("sign", "sign_type")})
    try:
        return bool(verify_with_rsa(platform_key, content.encode("utf-8"), signature))
    except Exception:  # the rsa package raises VerificationError on a bad signature
        return False


@dataclass
class NotifyEndpoint:
    """The shop's notify_url: records every form and answers ``answers`` in turn (the
    last one from then on)."""

    url: str
    answers: list[str]
    received: list[dict[str, str]] = field(default_factory=list)


@contextmanager
def notify_endpoint(answers: list[str]) -> Iterator[NotifyEndpoint]:
    endpoint = NotifyEndpoint("", list(answers))

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length).decode("utf-8")
            endpoint.received.append(dict(urllib.parse.parse_qsl(body)))
            answer = endpoint.answers[min(len(endpoint.received), len(endpoint.answers)) - 1]
            payload = answer.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    endpoint.url = f"http://127.0.0.1:{server.server_address[1]}/alipay/notify"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield endpoint
    finally:
        server.shutdown()
        server.server_close()
