"""Where a sign-in comes from (a MaxMind DB file, the operator's networks) and what the
device is called."""

from __future__ import annotations

from pathlib import Path

import pytest
from mmdb_writer import MMDBWriter
from netaddr import IPSet

from qianbao.i18n import language_scope
from qianbao.identity import devices, places
from qianbao.settings import Settings
from tests.identity.test_devices import ANDROID, IPHONE

# --- places and device names -------------------------------------------------------------


def test_country_from_a_maxmind_database_and_the_operators_networks(tmp_path: Path) -> None:
    settings = Settings(ip_countries={"203.0.113.0/24": "GB"})
    writer = MMDBWriter(ip_version=6, database_type="GeoIP2-Country", ipv4_compatible=True)
    writer.insert_network(IPSet(["81.2.69.0/24"]), {"country": {"iso_code": "GB"}})
    writer.insert_network(IPSet(["2001:db8::/32"]), {"registered_country": {"iso_code": "SG"}})
    writer.insert_network(IPSet(["203.0.113.0/24"]), {"country": {"iso_code": "JP"}})
    path = tmp_path / "country.mmdb"
    writer.to_db_file(str(path))
    settings.geoip_database = path
    assert places.country_of(settings, "81.2.69.160") == "GB"
    assert places.country_of(settings, "2001:db8::1") == "SG"  # the registering country
    assert places.country_of(settings, "203.0.113.7") == "GB"  # the operator's list first
    assert places.country_of(settings, "::ffff:81.2.69.160") == "GB"  # dual-stack
    assert places.country_of(settings, "8.8.8.8") is None  # not in the file
    assert places.country_of(settings, "testclient") is None
    settings.geoip_database = tmp_path / "missing.mmdb"
    assert places.country_of(settings, "81.2.69.160") is None  # no file: unknown, no 500


def test_ip_countries_setting_refuses_what_is_no_network_or_country() -> None:
    with pytest.raises(ValueError, match="alpha-2"):
        Settings(ip_countries={"203.0.113.0/24": "United Kingdom"})
    with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6 network"):
        Settings(ip_countries={"not a network": "GB"})
    assert Settings(ip_countries={"203.0.113.0/24": "gb"}).ip_countries == {"203.0.113.0/24": "GB"}


def test_device_names_in_both_languages() -> None:
    with language_scope("en"):
        assert devices.device_name(ANDROID) == "Chrome Mobile on Android"
        assert devices.device_name(IPHONE) == "Mobile Safari on iOS"
        assert devices.device_name("okhttp/4.12.0") == "okhttp"
        assert devices.device_name("") == "Unknown device"
    with language_scope("zh_Hans"):
        assert devices.device_name(ANDROID) == "Android 上的 Chrome Mobile"
        assert places.place_name(None, "zh_Hans") == "未知地点"
        assert places.place_name("GB", "zh_Hans") == "英国"
