"""The cookies' Secure flag follows the settings, never the Host header or the scheme a
request claims (a client or a proxy chooses those)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from qianbao.app import create_app
from qianbao.clock import FrozenClock
from qianbao.settings import Settings


def set_cookie_headers(settings: Settings, clock: FrozenClock, base_url: str) -> list[str]:
    with TestClient(create_app(settings, clock), base_url=base_url) as client:
        page = client.get("/")
        assert page.status_code == 200
        cookies = page.headers.get_list("set-cookie")
    assert cookies, "the first page sets the CSRF cookie"
    return cookies


@pytest.mark.parametrize(
    ("public_base_url", "cookie_secure", "secure"),
    [
        ("https://wallet.example", "auto", True),
        ("http://127.0.0.1:8000", "auto", False),
        ("http://127.0.0.1:8000", "always", True),
        ("https://wallet.example", "never", False),
    ],
)
@pytest.mark.parametrize("base_url", ["http://127.0.0.1", "https://elsewhere.example"])
def test_secure_follows_the_setting_whatever_the_request_says(
    settings: Settings,
    clock: FrozenClock,
    public_base_url: str,
    cookie_secure: str,
    secure: bool,
    base_url: str,
) -> None:
    settings.public_base_url = public_base_url
    settings.cookie_secure = cookie_secure  # type: ignore[assignment]
    for cookie in set_cookie_headers(settings, clock, base_url):
        assert ("; secure" in cookie.lower()) is secure, cookie
        assert "httponly" in cookie.lower()
