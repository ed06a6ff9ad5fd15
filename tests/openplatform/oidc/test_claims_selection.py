"""The verified claims record and the spec's selection, without HTTP: the bank card
route's electronic record, a reviewer's approval, several requested elements."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from qianbao.openplatform.oidc import claims
from qianbao.openplatform.oidc.claims import ClaimsRequestError, IdentityFacts

NOW = datetime(2026, 6, 1, tzinfo=UTC)
ALL = frozenset(claims.VERIFIED_CLAIMS)
PASSPORT = IdentityFacts(
    "passport_face",
    datetime(2026, 5, 1, tzinfo=UTC),
    given_name="ADA",
    family_name="LOVELACE",
    birthdate=date(2010, 6, 2),
    nationality="GBR",
    issuing_state="GBR",
    expiry=date(2030, 1, 1),
    reviewed=True,
)


def test_the_bank_card_route_is_an_electronic_record_with_no_name() -> None:
    facts = IdentityFacts("bank_card", datetime(2026, 5, 1, tzinfo=UTC), bank_name="ICBC")
    record = claims.available_record(facts, NOW.date())
    assert record is not None
    assert record["verification"]["evidence"][0]["record"] == {
        "type": "bank_account",
        "source": {"name": "ICBC", "country_code": "CHN"},
    }
    request = {
        "userinfo": {
            "verified_claims": {
                "verification": {"trust_framework": None},
                "claims": {"given_name": None, "identity_verified": None},
            }
        }
    }
    chosen = claims.select(record, request, "userinfo", ALL, NOW)
    assert chosen == {
        "verification": {"trust_framework": "nist_800_63A"},
        "claims": {"identity_verified": True},
    }


def test_a_reviewers_approval_adds_pvr_and_age_is_computed_on_the_birthday() -> None:
    record = claims.available_record(PASSPORT, date(2028, 6, 1))
    assert record is not None
    assert {"check_method": "pvr"} in record["verification"]["evidence"][0]["check_details"]
    assert record["claims"]["age_over_18"] is False  # 18 tomorrow
    assert claims.available_record(PASSPORT, date(2028, 6, 2))["claims"]["age_over_18"] is True  # type: ignore[index]


def test_only_consented_claims_are_returned() -> None:
    record = claims.available_record(PASSPORT, NOW.date())
    request = {
        "id_token": {
            "verified_claims": {
                "verification": {"trust_framework": None},
                "claims": {"given_name": None, "birthdate": None},
            }
        }
    }
    chosen = claims.select(record, request, "id_token", frozenset({"given_name"}), NOW)
    assert chosen is not None and chosen["claims"] == {"given_name": "ADA"}
    assert (
        claims.select(record, request, "userinfo", ALL, NOW) is None
    )  # asked for the ID token only


def test_several_elements_are_answered_each_by_its_own_rules() -> None:
    record = claims.available_record(PASSPORT, NOW.date())
    request = {
        "userinfo": {
            "verified_claims": [
                {
                    "verification": {"trust_framework": {"value": "eidas"}},
                    "claims": {"given_name": None},
                },
                {"verification": {"trust_framework": None}, "claims": {"family_name": None}},
            ]
        }
    }
    chosen = claims.select(record, request, "userinfo", ALL, NOW)
    assert chosen == {
        "verification": {"trust_framework": "nist_800_63A"},
        "claims": {"family_name": "LOVELACE"},
    }


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[]",
        '{"userinfo": []}',
        '{"userinfo": {"verified_claims": {"verification": {}}}}',
        '{"userinfo": {"verified_claims": {"claims": {}}}}',
    ],
)
def test_a_malformed_claims_request_is_refused(text: str) -> None:
    with pytest.raises(ClaimsRequestError):
        claims.parse_claims_request(text)
