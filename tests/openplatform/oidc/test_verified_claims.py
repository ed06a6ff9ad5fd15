"""Verified claims (OpenID Connect for Identity Assurance 1.0) over the protocol: what
a shop gets for the route the person took, the spec's selection rules, consent to the
exact set, and claims that stop with the verification."""

from __future__ import annotations

import copy
import uuid
from datetime import date
from typing import Any

import pytest
from fastapi.testclient import TestClient

from qianbao.clock import FrozenClock
from qianbao.identity import service as identity
from tests.api_helpers import bearer
from tests.funding.test_binding import bind
from tests.openplatform.oidc.helpers import (
    BASE,
    IDENTITY_CLAIMS,
    PASSPORT,
    Shop,
    authorize,
    database,
    id_token_claims,
    log_in,
    start,
    userinfo_answer,
    verify_by_passport,
)
from tests.verification.passport_pages import PassportData


def userinfo(client: TestClient, token: dict[str, Any]) -> dict[str, Any]:
    answer = userinfo_answer(client, token)
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


def ask(claims: dict[str, Any], verification: dict[str, Any] | None = None) -> dict[str, Any]:
    request: dict[str, Any] = {"claims": claims}
    request["verification"] = (
        verification if verification is not None else {"trust_framework": None}
    )
    return {"userinfo": {"verified_claims": request}}


def test_a_chip_verified_person_gives_the_claims_and_evidence_asked_for(
    client: TestClient, shop: Shop, person: uuid.UUID, clock: FrozenClock
) -> None:
    verify_by_passport(database(client), person, "passport_chip")
    started = start(client, shop, "openid identity", IDENTITY_CLAIMS)
    page = client.get(started.url, follow_redirects=False)
    for name in ("given_name", "family_name", "nationalities", "identity_verified", "evidence"):
        assert f'data-testid="claim-{name}"' in page.text, name
    assert 'data-testid="claim-birthdate"' not in page.text
    token = started.oauth.fetch_token(
        f"{BASE}/oauth2/token",
        authorization_response=authorize(client, started),
        code_verifier=started.verifier,
    )
    found = userinfo(client, token)["verified_claims"]
    assert found["claims"] == {
        "given_name": "ADA MARY",
        "family_name": "LOVELACE",
        "nationalities": ["GBR"],
    }
    verification = found["verification"]
    assert verification["trust_framework"] == "nist_800_63A"
    assert set(verification) == {"trust_framework", "evidence"}  # time was not asked for
    assert verification["evidence"] == [
        {
            "type": "document",
            "check_details": [{"check_method": "vcrypt"}, {"check_method": "bvr"}],
            "time": "2026-01-01T08:00:00Z",
            "document_details": {
                "type": "passport",
                "issuer": {"country_code": "GBR"},
                "date_of_expiry": "2031-01-01",
            },
        }
    ]
    in_id_token = id_token_claims(client, token["id_token"], int(clock.now().timestamp()))
    assert in_id_token["verified_claims"] == {
        "verification": {"trust_framework": "nist_800_63A"},
        "claims": {"identity_verified": True},
    }


def test_the_photo_page_route_says_vpip_and_its_assurance_level(
    client: TestClient, shop: Shop, person: uuid.UUID
) -> None:
    verify_by_passport(database(client), person, "passport_face")
    claims = ask(
        {"age_over_18": None},
        {"trust_framework": None, "assurance_level": None, "evidence": [{"check_details": None}]},
    )
    found = userinfo(client, log_in(client, shop, "openid identity", claims)[1])["verified_claims"]
    assert found["claims"] == {"age_over_18": True}  # not the birth date itself
    assert found["verification"]["assurance_level"] == "IAL1"
    checks = found["verification"]["evidence"][0]["check_details"]
    assert checks == [{"check_method": "vpip"}, {"check_method": "bvr"}]


@pytest.mark.parametrize(
    "verification",
    [
        {"trust_framework": {"value": "eidas"}},
        {"trust_framework": None, "assurance_level": {"values": ["IAL3"]}},
        {"trust_framework": None, "evidence": [{"type": {"value": "electronic_record"}}]},
        {"trust_framework": None, "time": {"max_age": 60}},  # verified long before (clock moved)
    ],
)
def test_an_unmet_verification_constraint_omits_verified_claims_without_an_error(
    client: TestClient,
    shop: Shop,
    person: uuid.UUID,
    clock: FrozenClock,
    verification: dict[str, Any],
) -> None:
    verify_by_passport(database(client), person)
    clock.advance(seconds=120)  # within the session's idle time
    found = userinfo(
        client, log_in(client, shop, "openid identity", ask({"given_name": None}, verification))[1]
    )
    assert "verified_claims" not in found and "sub" in found


def test_met_constraints_return_the_element(
    client: TestClient, shop: Shop, person: uuid.UUID
) -> None:
    verify_by_passport(database(client), person)
    verification = {
        "trust_framework": {"value": "nist_800_63A"},
        "assurance_level": {"values": ["IAL2", "IAL3"]},
        "evidence": [
            {"type": {"value": "document"}, "document_details": {"type": {"value": "passport"}}}
        ],
    }
    found = userinfo(
        client, log_in(client, shop, "openid identity", ask({"given_name": None}, verification))[1]
    )
    assert found["verified_claims"]["verification"]["assurance_level"] == "IAL2"
    assert found["verified_claims"]["verification"]["evidence"] == [
        {"type": "document", "document_details": {"type": "passport"}}
    ]


def test_an_unmet_claim_constraint_omits_only_that_claim(
    client: TestClient, shop: Shop, person: uuid.UUID
) -> None:
    verify_by_passport(database(client), person)
    claims = ask({"given_name": {"value": "BOB"}, "family_name": None, "unknown_claim": None})
    found = userinfo(client, log_in(client, shop, "openid identity", claims)[1])
    assert found["verified_claims"]["claims"] == {"family_name": "LOVELACE"}


def test_nothing_is_given_without_the_identity_scope(
    client: TestClient, shop: Shop, person: uuid.UUID
) -> None:
    verify_by_passport(database(client), person)
    found = userinfo(client, log_in(client, shop, "openid", IDENTITY_CLAIMS)[1])
    assert found == {"sub": found["sub"]}


def test_consent_covers_the_exact_set_and_more_asks_again(
    client: TestClient, shop: Shop, person: uuid.UUID
) -> None:
    verify_by_passport(database(client), person)
    log_in(client, shop, "openid identity", ask({"nationalities": None}))
    same = start(client, shop, "openid identity", ask({"nationalities": None}))
    assert client.get(same.url, follow_redirects=False).status_code == 302
    more = start(client, shop, "openid identity", ask({"nationalities": None, "birthdate": None}))
    page = client.get(more.url, follow_redirects=False)
    assert page.status_code == 200 and 'data-testid="claim-birthdate"' in page.text


def test_an_unverified_person_is_told_and_the_shop_gets_nothing(
    client: TestClient, shop: Shop
) -> None:
    started = start(client, shop, "openid identity", IDENTITY_CLAIMS)
    assert 'data-testid="not-verified"' in client.get(started.url, follow_redirects=False).text
    token = started.oauth.fetch_token(
        f"{BASE}/oauth2/token",
        authorization_response=authorize(client, started),
        code_verifier=started.verifier,
    )
    assert "verified_claims" not in userinfo(client, token)


def test_a_revoked_verification_stops_the_claims_at_the_shops_next_refresh(
    client: TestClient, shop: Shop, person: uuid.UUID, clock: FrozenClock
) -> None:
    db = database(client)
    verify_by_passport(db, person)
    started, token = log_in(client, shop, "openid identity", IDENTITY_CLAIMS)
    assert "verified_claims" in userinfo(client, token)
    db.run(lambda tx: identity.set_verification_level(tx, person, "unverified"))
    refreshed = started.oauth.refresh_token(
        f"{BASE}/oauth2/token", refresh_token=token["refresh_token"]
    )
    claims = id_token_claims(client, refreshed["id_token"], int(clock.now().timestamp()))
    assert "verified_claims" not in claims
    assert "verified_claims" not in userinfo(client, refreshed)


def test_an_expired_passport_stops_the_claims(
    client: TestClient, shop: Shop, person: uuid.UUID, clock: FrozenClock
) -> None:
    soon = PassportData(**{**PASSPORT.__dict__, "expiry_date": date(2026, 2, 1)})
    db = database(client)
    verify_by_passport(db, person, passport=soon)
    db.settings.oidc_refresh_token_seconds = 90 * 86400
    started, token = log_in(client, shop, "openid identity", IDENTITY_CLAIMS)
    assert "verified_claims" in userinfo(client, token)
    clock.advance(days=32)  # valid through 1 February, expired on the 2nd
    refreshed = started.oauth.refresh_token(
        f"{BASE}/oauth2/token", refresh_token=token["refresh_token"]
    )
    assert "verified_claims" not in userinfo(client, refreshed)


def test_a_malformed_claims_parameter_is_refused(client: TestClient, shop: Shop) -> None:
    bad = copy.deepcopy(IDENTITY_CLAIMS)
    bad["userinfo"]["verified_claims"]["claims"] = {}
    started = start(client, shop, "openid identity", bad)
    answer = client.get(started.url, follow_redirects=False)
    assert answer.status_code == 302 and "error=invalid_request" in answer.headers["location"]


def test_the_bank_card_route_gives_an_electronic_record_and_no_name(
    client: TestClient, shop: Shop
) -> None:
    bind(client, bearer(client.cookies["qb_session"]))  # the sandbox bank's ICBC card
    claims = ask(
        {"identity_verified": None, "given_name": None},
        {"trust_framework": None, "assurance_level": None, "evidence": None},
    )
    found = userinfo(client, log_in(client, shop, "openid identity", claims)[1])
    verified = found["verified_claims"]
    assert verified["claims"] == {"identity_verified": True}  # the bank route holds no name
    assert verified["verification"]["assurance_level"] == "IAL1"
    evidence = verified["verification"]["evidence"][0]
    assert evidence["type"] == "electronic_record"
    assert evidence["check_details"] == [{"check_method": "data"}]
    assert evidence["record"]["type"] == "bank_account"
    assert evidence["record"]["source"]["country_code"] == "CHN"
    assert "Industrial and Commercial" in evidence["record"]["source"]["name"]
