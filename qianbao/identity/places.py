"""Where a sign-in comes from: the country of the client's IP address, and its name.

Two sources, asked in this order, both optional (``settings.py``, "where a sign-in comes
from"):

* ``ip_countries``: networks mapped to ISO 3166-1 codes by the operator (their own
  offices and VPNs, the demo, the tests);
* ``geoip_database``: a MaxMind DB file with country data, read with MaxMind's own
  reader (``maxminddb``). The operator installs it and keeps it fresh; Qianbao never
  downloads anything. A file replaced on disk is opened again.

An address neither knows (loopback, a private network, a gap in the file, no database
at all) has no country: the sign-in's place is "unknown place", and a new-country check
is not made for it.
"""

from __future__ import annotations

import ipaddress
import logging
from functools import cache, lru_cache
from pathlib import Path

import maxminddb
from babel import Locale

from qianbao.i18n import N_, Language, language_scope, translate
from qianbao.settings import Settings

log = logging.getLogger(__name__)
UNKNOWN_PLACE = N_("unknown place")
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def country_of(settings: Settings, ip: str) -> str | None:
    """The ISO 3166-1 alpha-2 country of ``ip``, or None when it is not known."""
    try:
        address = ipaddress.ip_address(ip.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # a dual-stack listener's view of an IPv4 client
    for network, country in _networks(tuple(settings.ip_countries.items())):
        if address.version == network.version and address in network:
            return country
    if settings.geoip_database is None:
        return None
    return _from_database(settings.geoip_database, str(address))


@lru_cache(maxsize=8)
def _networks(pairs: tuple[tuple[str, str], ...]) -> list[tuple[Network, str]]:
    # The most specific network first, so an office inside a country's range wins.
    parsed = [(ipaddress.ip_network(net, strict=False), country) for net, country in pairs]
    return sorted(parsed, key=lambda pair: -pair[0].prefixlen)


def _from_database(path: Path, ip: str) -> str | None:
    try:
        reader = _reader(path, path.stat().st_mtime_ns)
        record = reader.get(ip)
    except (OSError, ValueError, maxminddb.InvalidDatabaseError) as error:
        # A missing or broken file must not stop people signing in: the place is unknown.
        log.error("geoip database %s unreadable: %s", path, type(error).__name__)
        return None
    return _iso_code(record)


@lru_cache(maxsize=2)
def _reader(path: Path, mtime_ns: int) -> maxminddb.Reader:
    """One reader per file and version of it (``mtime_ns`` is the cache's key only)."""
    return maxminddb.open_database(str(path))


def _iso_code(record: object) -> str | None:
    """``country.iso_code`` of a GeoIP2/GeoLite2 (or DB-IP) record; for an address with no
    country of its own (an anycast network), the country that registered it."""
    if not isinstance(record, dict):
        return None
    for field in ("country", "registered_country"):
        found = record.get(field)
        if isinstance(found, dict):
            code = found.get("iso_code")
            if isinstance(code, str) and len(code) == 2 and code.isalpha():
                return code.upper()
    return None


def place_name(country: str | None, language: Language) -> str:
    """The country's name in ``language`` (CLDR, from Babel), or "unknown place"."""
    if country is None:
        with language_scope(language):
            return translate(UNKNOWN_PLACE)
    return _territories(language).get(country, country)


@cache
def _territories(language: Language) -> dict[str, str]:
    locale = Locale("zh", script="Hans") if language == "zh_Hans" else Locale("en")
    return dict(locale.territories)
