"""Per-address limits count an IPv6 /64 as one address."""

from __future__ import annotations

import pytest

from qianbao.throttling.ratelimit import address


@pytest.mark.parametrize(
    ("ip", "counted_as"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),
        ("2001:db8:1:3::1", "2001:db8:1:3::/64"),
        ("::ffff:198.51.100.4", "198.51.100.4"),
        ("testclient", "testclient"),
    ],
)
def test_an_ipv6_network_counts_as_one_address(ip: str, counted_as: str) -> None:
    assert address(ip) == counted_as
