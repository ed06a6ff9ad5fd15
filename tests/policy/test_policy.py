"""The level table: tiers from verification, rights, operator overrides, and the pages
and API that show them."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from qianbao import policy
from qianbao.i18n import language_scope
from qianbao.money import Money
from qianbao.settings import Settings
from tests.api_helpers import api_sign_up, bearer


@pytest.mark.parametrize(
    ("level", "card", "tier"),
    [
        ("unverified", False, "unverified"),
        ("passport_face", False, "class_ii"),
        ("passport_chip", False, "class_ii"),
        ("bank_card", True, "class_ii"),
        ("unverified", True, "class_ii"),
        ("passport_face", True, "class_iii"),
        ("passport_chip", True, "class_iii"),
    ],
)
def test_tiers_follow_how_a_person_is_verified(level: str, card: bool, tier: str) -> None:
    assert policy.tier_for(level, card) == tier


def test_the_defaults_are_the_sourced_numbers() -> None:
    rights = {tier: policy.rights_for(tier, Settings()) for tier in policy.TIERS}
    unverified = rights["unverified"]
    assert not (unverified.use_balance or unverified.send_transfers)
    assert not unverified.receive_transfers and unverified.hold_incoming
    assert unverified.card_per_year == Money.of("USD", 2_000)
    assert rights["class_ii"].balance_per_year == Money.of("CNY", 100_000)
    assert rights["class_iii"].balance_per_year == Money.of("CNY", 200_000)
    assert rights["class_ii"].balance_per_day == Money.of("CNY", 5_000)
    assert rights["class_ii"].card_per_payment == Money.of("USD", 5_000)
    assert rights["class_iii"].wealth_products and not rights["class_ii"].wealth_products


def test_operators_override_numbers_and_switches() -> None:
    settings = Settings(
        policy_overrides={"class_ii": {"balance_per_year": "150000 CNY", "send_transfers": False}}
    )
    rights = policy.rights_for("class_ii", settings)
    assert rights.balance_per_year == Money.of("CNY", 150_000) and not rights.send_transfers
    assert policy.rights_for("class_iii", settings).send_transfers
    with pytest.raises(ValueError, match="unknown right"):
        policy.rights_for("class_ii", Settings(policy_overrides={"class_ii": {"fly": True}}))
    with pytest.raises(ValueError, match="true or false"):
        policy.rights_for("class_ii", Settings(policy_overrides={"class_ii": {"use_balance": 1}}))


def test_what_the_next_tier_adds() -> None:
    settings = Settings()
    added = policy.gains(
        policy.rights_for("unverified", settings), policy.rights_for("class_ii", settings)
    )
    keys = {line.key for line in added}
    assert {"use_balance", "send_transfers", "receive_transfers", "card_per_year"} <= keys
    assert "wealth_products" not in keys
    with language_scope("zh_Hans"):
        lines = policy.describe(policy.rights_for("class_ii", settings))
    assert any(line.value.replace("\u00a0", " ") == "CNY 100,000.00" for line in lines)


def test_money_is_exact() -> None:
    assert Money.of("CNY", "0.10") + Money.of("CNY", "0.20") == Money.of("CNY", "0.30")
    with pytest.raises(ValueError, match="decimals"):
        Money.of("CNY", "0.001")
    with pytest.raises(TypeError):
        Money("CNY", 1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="mix"):
        Money.of("CNY", 1) + Money.of("USD", 1)


def test_the_level_is_in_the_api_and_on_the_profile(client: TestClient) -> None:
    auth = bearer(api_sign_up(client)["token"])
    level = client.get("/api/v1/me/level", headers=auth).json()
    assert level["tier"] == "unverified" and level["next_tier"] == "class_ii"
    rights = {row["key"]: row for row in level["rights"]}
    assert rights["use_balance"]["allowed"] is False
    assert rights["card_per_year"]["value"].replace("\u00a0", " ") == "USD 2,000.00"
    chinese = client.get("/api/v1/me/level", headers={**auth, "Accept-Language": "zh-CN"})
    assert chinese.json()["tier_label"] == "未认证账户"


def test_homes_actions_follow_the_tier_and_an_operators_override() -> None:
    settings = Settings(secret_key="test")
    unverified = policy.rights_for("unverified", settings)
    refused = {
        action
        for action in policy.ACTIONS
        if policy.action_refusal(action, "unverified", unverified)
    }
    assert refused == {"pay", "receive", "transfer", "tour_pass", "topup_code"}
    class_ii = policy.rights_for("class_ii", settings)
    assert all(policy.action_refusal(a, "passport_face", class_ii) is None for a in policy.ACTIONS)
    # A bank card alone gives Class II but no passport: no Tour Pass, the reason says so.
    assert policy.action_refusal("tour_pass", "bank_card", class_ii) == (
        "The Tour Pass is for people verified by passport."
    )
    stopped = Settings(secret_key="test", policy_overrides={"class_ii": {"send_transfers": False}})
    assert policy.action_refusal(
        "transfer", "passport_face", policy.rights_for("class_ii", stopped)
    ) == ("Your account level does not allow this (Me > Account level).")
