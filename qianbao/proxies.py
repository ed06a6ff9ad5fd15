"""The client's address behind reverse proxies (``QIANBAO_TRUSTED_PROXIES``).

The per-address limits (SMS codes, number look-ups, password failures, top-up code
guesses) are only as good as the address they count. ``X-Forwarded-For`` is written by
whoever sends the request, so it is read only when the TCP peer is one of our own
proxies, and then from the right: each proxy appends the address it saw, so the entries
on the right were written by proxies we trust and the first address that is not one of
them is the client. Everything to its left was written by the client and is ignored.

This is the only place that reads the header: ``qianbao serve`` runs uvicorn with its
own proxy handling off, so the same code decides under any server and in the tests.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address
from typing import Any

Network = IPv4Network | IPv6Network
Address = IPv4Address | IPv6Address
Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Any, Any], Awaitable[None]]

SCHEMES = {"http", "https"}


def parse_address(text: str) -> Address | None:
    """An address as proxies write it (bare, ``v4:port``, ``[v6]:port``), else None."""
    text = text.strip()
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not _is_port(rest)):
            return None
        text = host
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
        if not _is_port(":" + port):
            return None
        text = host
    try:
        address = ip_address(text)
    except ValueError:
        return None
    # A dual-stack socket shows IPv4 peers as ::ffff:a.b.c.d; count them as IPv4.
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _is_port(text: str) -> bool:
    return text.startswith(":") and text[1:].isdigit() and len(text) <= 6


def is_trusted(address: Address | None, trusted: Sequence[Network]) -> bool:
    return address is not None and any(address in network for network in trusted)


def client_address(
    peer: str | None, forwarded_for: Sequence[str], trusted: Sequence[Network]
) -> str:
    """The client's address, given the TCP peer and the ``X-Forwarded-For`` headers.

    From an untrusted peer the headers are ignored. From a trusted proxy the entries are
    walked from the right, past our own proxies, to the first address that is not ours.
    An entry that is not an address (``unknown``, garbage) stops the walk at the last
    proxy that is ours: that proxy's address is the most we know, so everyone behind it
    shares one count rather than choosing their own.
    """
    peer_address = parse_address(peer) if peer else None
    if peer_address is None or not is_trusted(peer_address, trusted):
        return str(peer_address) if peer_address is not None else (peer or "unknown")
    entries = [entry for header in forwarded_for for entry in header.split(",")]
    nearest: Address = peer_address
    for entry in reversed(entries):
        address = parse_address(entry)
        if address is None:
            return str(nearest)
        if not is_trusted(address, trusted):
            return str(address)
        nearest = address
    # Every hop is ours (a client inside our network): the farthest one is the client.
    return str(nearest)


class TrustedProxyMiddleware:
    """Puts the client's address (and the scheme a proxy of ours says it was reached
    by) into the ASGI scope, so handlers, ``deps.client`` and logs all see the same one."""

    def __init__(self, app: ASGIApp, trusted: Sequence[Network]) -> None:
        self.app = app
        self.trusted = list(trusted)

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] in {"http", "websocket"} and self.trusted:
            self._rewrite(scope)
        await self.app(scope, receive, send)

    def _rewrite(self, scope: Scope) -> None:
        peer = scope.get("client")
        host, port = (peer[0], peer[1]) if peer else (None, 0)
        if not is_trusted(parse_address(host) if host else None, self.trusted):
            return
        headers: list[tuple[bytes, bytes]] = scope.get("headers", [])
        forwarded = [v.decode("latin-1") for k, v in headers if k == b"x-forwarded-for"]
        scope["client"] = (client_address(host, forwarded, self.trusted), port)
        protos = [v.decode("latin-1").strip() for k, v in headers if k == b"x-forwarded-proto"]
        # One plain value only: a list means proxies disagree, and then we keep our own.
        if len(protos) == 1 and protos[0] in SCHEMES and scope["type"] == "http":
            scope["scheme"] = protos[0]
