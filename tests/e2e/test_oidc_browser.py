"""Log in with Qianbao in Chromium, against a stand-in shop on another port: a new
person is sent to sign up, consents, and reaches the shop with a code; another signs up
on the way to a silent sign-in and reaches the shop through the sign-up form's
redirects (which a form-action 'self' policy must not block)."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from liveserver import LiveServer
from playwright.sync_api import Page
from test_security_browser import t

from qianbao.openplatform.oidc import service


class _Shop(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"<!doctype html><title>shop</title><p id=arrived>back at the shop</p>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        return None


@pytest.fixture
def shop_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Shop)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def authorize_url(server: LiveServer, redirect_uri: str, scope: str) -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    state = secrets.token_urlsafe(8)
    params = {
        "response_type": "code",
        "client_id": "browser-shop",
        "redirect_uri": redirect_uri,
        "scope": scope,
        "state": state,
        "nonce": secrets.token_urlsafe(8),
        "code_challenge": challenge.rstrip(b"=").decode(),
        "code_challenge_method": "S256",
    }
    return f"{server.url}/oauth2/authorize?{urlencode(params)}", state


def arrived(page: Page, shop_url: str, state: str) -> None:
    page.wait_for_url(re.compile(re.escape(shop_url) + r"/cb\?"))
    params = parse_qs(urlsplit(page.url).query)
    assert params["state"] == [state] and params["code"] and params["iss"]


def sign_up_on_the_way(page: Page, server: LiveServer, number: str, e164: str) -> None:
    """Qianbao's own sign-up pages, reached from the shop's request."""
    page.wait_for_url(server.url + "/")
    page.locator("#country").select_option("GB")
    page.locator("#number").fill(number)
    page.get_by_role("button", name=t("Next"), exact=True).click()
    page.wait_for_url(re.compile(r"/signup\?"))
    page.locator("#agree").check()
    page.get_by_role("button", name=t("Agree and send code"), exact=True).click()
    page.wait_for_url(re.compile(r"/code\?"))
    page.locator("#code").fill(server.sms_code(e164))
    page.get_by_role("button", name=t("Confirm"), exact=True).click()


def test_sign_up_consent_and_back_and_a_silent_sign_in_after_signing_up(
    page: Page, live_server: LiveServer, shop_url: str
) -> None:
    redirect_uri = f"{shop_url}/cb"
    live_server.db.run(
        lambda tx: service.register_shop(
            tx,
            client_id="browser-shop",
            name_en="Browser Shop",
            name_zh="浏览器商店",
            redirect_uris=[redirect_uri],
        )
    )
    url, state = authorize_url(live_server, redirect_uri, "openid phone")
    page.goto(url)
    sign_up_on_the_way(page, live_server, "07911 123456", "+447911123456")
    page.get_by_test_id("consent").wait_for()
    assert "Browser Shop wants to link your Qianbao account" in page.content()
    page.get_by_test_id("allow").click()
    arrived(page, shop_url, state)

    # Another new person, openid alone: no consent page, so the sign-up form's own
    # redirects lead on to the shop (a form-action 'self' policy must not stop them).
    page.context.clear_cookies()
    url, state = authorize_url(live_server, redirect_uri, "openid")
    page.goto(url)
    sign_up_on_the_way(page, live_server, "07912 345678", "+447912345678")
    arrived(page, shop_url, state)
