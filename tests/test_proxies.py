"""The client's address behind proxies: X-Forwarded-For counts only from our own proxies,
read from the right, so nobody escapes the per-address limits by writing the header."""

from __future__ import annotations

from ipaddress import ip_network

import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient

from qianbao.app import create_app
from qianbao.clock import FrozenClock
from qianbao.proxies import Network, TrustedProxyMiddleware, client_address
from qianbao.settings import Settings

PROXIES: list[Network] = [ip_network("10.0.0.0/8"), ip_network("2001:db8:ffff::/48")]
EDGE = "10.0.0.2"
INNER = "10.1.2.3"
CLIENT = "198.51.100.7"


def seen(peer: str, *headers: str) -> str:
    return client_address(peer, list(headers), PROXIES)


def test_an_untrusted_peer_s_header_is_ignored() -> None:
    assert seen(CLIENT, "1.2.3.4") == CLIENT
    assert client_address(CLIENT, ["1.2.3.4"], []) == CLIENT


def test_a_trusted_proxy_s_header_gives_the_client() -> None:
    assert seen(EDGE, CLIENT) == CLIENT
    assert seen(EDGE) == EDGE  # no header: the proxy itself is talking


def test_a_chain_is_read_from_the_right_past_our_own_proxies() -> None:
    # The client wrote "1.2.3.4" itself; our edge proxy appended what it saw (CLIENT),
    # the inner proxy appended the edge's address.
    assert seen(INNER, f"1.2.3.4, {CLIENT}, {EDGE}") == CLIENT
    # Several header lines are one list, in order.
    assert seen(INNER, "1.2.3.4", f"{CLIENT}, {EDGE}") == CLIENT
    # Every hop is ours: the farthest is the client (a machine inside our network).
    assert seen(INNER, f"10.9.9.9, {EDGE}") == "10.9.9.9"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("unknown", EDGE),  # RFC 7239's obfuscated node: nothing to count but the proxy
        ("not an address", EDGE),
        (f"{CLIENT}, garbage, 10.0.0.9", "10.0.0.9"),  # stops at the last hop we trust
        ("", EDGE),
        (f"{CLIENT}:4711", CLIENT),  # a port, as some proxies write it
        ("[2001:db8::7]:443", "2001:db8::7"),
        ("2001:0db8:0000::7", "2001:db8::7"),  # one spelling per address
        ("::ffff:198.51.100.7", CLIENT),  # IPv4 seen through a dual-stack socket
        ("[2001:db8::7", EDGE),
        ("1.2.3.4:99999999", EDGE),
    ],
)
def test_malformed_entries_never_let_the_client_choose(header: str, expected: str) -> None:
    assert seen(EDGE, header) == expected


def test_trusted_proxies_are_read_from_a_list_or_json() -> None:
    listed = Settings(trusted_proxies="10.0.0.0/8, 127.0.0.1 ,::1")  # type: ignore[arg-type]
    assert [str(n) for n in listed.trusted_proxies] == ["10.0.0.0/8", "127.0.0.1/32", "::1/128"]
    as_json = Settings(trusted_proxies='["192.168.0.0/16"]')  # type: ignore[arg-type]
    assert [str(n) for n in as_json.trusted_proxies] == ["192.168.0.0/16"]
    assert Settings().trusted_proxies == []
    with pytest.raises(ValueError, match="trusted_proxies"):
        Settings(trusted_proxies="10.0.0.1/8")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="trusts everybody"):
        Settings(trusted_proxies="10.0.0.0/8,0.0.0.0/0")  # type: ignore[arg-type]


def echo_app(trusted: list[Network]) -> FastAPI:
    app = FastAPI()

    @app.get("/who")
    def who(request: Request) -> dict[str, str]:
        assert request.client is not None
        return {"ip": request.client.host, "scheme": request.url.scheme}

    app.add_middleware(TrustedProxyMiddleware, trusted=trusted)
    return app


def ask(peer: str, headers: dict[str, str], trusted: list[Network] = PROXIES) -> dict[str, str]:
    with TestClient(echo_app(trusted), client=(peer, 5000)) as client:
        body: dict[str, str] = client.get("/who", headers=headers).json()
        return body


def test_the_middleware_puts_the_client_into_the_request() -> None:
    spoof = {"X-Forwarded-For": "1.2.3.4", "X-Forwarded-Proto": "https"}
    assert ask(CLIENT, spoof) == {"ip": CLIENT, "scheme": "http"}
    assert ask(EDGE, spoof) == {"ip": "1.2.3.4", "scheme": "https"}
    assert ask(EDGE, spoof, trusted=[]) == {"ip": EDGE, "scheme": "http"}
    assert ask(INNER, {"X-Forwarded-For": f"6.6.6.6, {CLIENT}, {EDGE}"})["ip"] == CLIENT


@pytest.fixture
def app_behind_proxy(settings: Settings, clock: FrozenClock) -> FastAPI:
    settings.number_lookups_per_ip_per_hour = 3
    settings.trusted_proxies = list(PROXIES)
    return create_app(settings, clock)


def lookups(app: FastAPI, peer: str, forwarded: list[str]) -> list[int]:
    with TestClient(app, base_url="http://127.0.0.1", client=(peer, 5000)) as client:
        return [
            client.post(
                "/api/v1/auth/number-check",
                json={"country": "GB", "number": "07911 123456"},
                headers={"X-Forwarded-For": header},
            ).status_code
            for header in forwarded
        ]


def test_rotating_the_header_does_not_escape_the_per_address_limit(
    app_behind_proxy: FastAPI,
) -> None:
    rotating = [f"192.0.2.{n}" for n in range(1, 6)]
    # Straight to the server: the header is the sender's own writing.
    assert lookups(app_behind_proxy, CLIENT, rotating) == [200, 200, 200, 429, 429]
    # Through our proxy, which appends what it saw after whatever the client wrote.
    chained = [f"{fake}, 203.0.113.50" for fake in rotating]
    assert lookups(app_behind_proxy, EDGE, chained) == [200, 200, 200, 429, 429]
    # Another person behind the same proxy has a count of their own.
    assert lookups(app_behind_proxy, EDGE, ["203.0.113.51"]) == [200]
