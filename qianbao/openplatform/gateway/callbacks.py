"""Where the gateway may call or send a person: a shop's notify_url and return_url.

Only http(s); outside demo mode, never a private, loopback, link-local or otherwise
non-public address, checked on the URL given and again on the addresses its host
resolves to when a notification is sent (so a name pointing inside is refused too).
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Final
from urllib.parse import urlsplit

from qianbao.i18n import N_
from qianbao.openplatform.gateway.protocol import INVALID, GatewayRefusal

MAX_URL: Final = 256


def check_url(url: str, name: str, *, demo: bool) -> str:
    """The URL if a shop may give it; refused (isv.invalid-parameter) otherwise."""
    parts = urlsplit(url)
    if len(url) > MAX_URL or parts.scheme not in ("http", "https") or not parts.hostname:
        raise _refused(name)
    if not demo and _inside(parts.hostname):
        raise _refused(name)
    return url


def resolves_outside(url: str, *, demo: bool) -> bool:
    """Whether every address the URL's host resolves to is a public one (demo mode
    lets the shop run beside the wallet)."""
    if demo:
        return True
    host = urlsplit(url).hostname or ""
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and not any(_inside(str(info[4][0])) for info in infos)


def _inside(host: str) -> bool:
    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False  # a name: checked when it is resolved
    return not address.is_global or address.is_multicast


def _refused(name: str) -> GatewayRefusal:
    return GatewayRefusal(
        INVALID,
        "isv.invalid-parameter",
        N_("{name} must be a public http or https URL."),
        {"name": name},
    )
