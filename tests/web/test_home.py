"""Home as a payment app has it: the balance, the actions (refused ones with policy.py's
reason), recent activity; and every page's times on the person's clock, in words."""

from __future__ import annotations

import re
import uuid

from fastapi.testclient import TestClient

from qianbao.clock import FrozenClock
from qianbao.db import Database
from qianbao.identity import service as identity
from qianbao.money import Money
from qianbao.wallet.payments import service as payments
from qianbao.wallet.transfers import service as transfers
from tests.api_helpers import api_sign_up, bearer
from tests.wallet.test_pay_for_me import log_in_by_form
from tests.wallet.test_payments import PIN, buyer, fund, verify
from tests.wallet.test_transfers import person
from tests.web.test_pages import csrf, sign_up_by_form

# The clock starts at 08:00 UTC: the payments happen minutes later, 16:0x in Beijing.
BEIJING_AFTERNOON = r"Jan 1, 2026, 4:0\d\u202fPM \(China Standard Time\)"
ADA = "07911 123456"
BOB = "07400 900123"


def actions(html: str) -> dict[str, str]:
    """Home's actions: key -> "true" when offered, "false" when shown with a reason."""
    return dict(re.findall(r'data-action="([a-z_]+)" data-allowed="(true|false)"', html))


def choose_language(client: TestClient, language: str) -> None:
    client.post("/language", data={"csrf": csrf(client), "language": language, "next": "/"})


def verified_payer(client: TestClient, clock: FrozenClock) -> tuple[Database, uuid.UUID]:
    """Ada, verified by passport, with CNY 500, who paid a shop CNY 60 and sent Bob 250
    (the clock starts at 08:00 UTC, 16:00 in Beijing), logged in on ``client``."""
    db: Database = client.app.state.db  # type: ignore[attr-defined]
    ada = buyer(db, clock, ADA)
    verify(db, ada)
    person(db, clock, BOB)
    fund(db, ada, "500")
    shop = db.run(lambda tx: payments.create_merchant(tx, "Tea House"))
    order = db.run(
        lambda tx: payments.create_order(tx, shop, "T1", "Oolong", Money.of("CNY", "60"))
    )
    payments.pay_with_balance(db, ada, order.id, PIN)
    clock.advance(seconds=60)
    transfers.send(db, ada, "+447400900123", "250", "", PIN, uuid.uuid4().hex)
    clock.advance(seconds=61)
    log_in_by_form(client, db, ADA)
    return db, ada


def test_home_of_a_newcomer_shows_the_balance_the_prompt_and_why_actions_wait(
    client: TestClient,
) -> None:
    sign_up_by_form(client)
    home = client.get("/home").text
    assert re.search(r'data-testid="balance"><span class="amount">CNY\xa00\.00</span>', home)
    assert 'data-testid="verify-prompt"' in home
    assert actions(home) == {
        "scan": "true",
        "pay": "false",
        "receive": "false",
        "transfer": "false",
        "tour_pass": "false",
        "topup_code": "false",
    }
    assert 'href="/wallet/scan"' in home
    assert 'href="/wallet/transfer"' not in home  # refused: not a button to press
    assert "Verify your real name to send money." in home
    assert "The Tour Pass is for people verified by passport." in home
    assert "Nothing yet." in home
    for icon in ("scan", "pay", "receive", "transfer", "tour-pass", "topup-code"):
        assert f'src="/static/icons/{icon}.svg"' in home
        served = client.get(f"/static/icons/{icon}.svg")
        assert served.status_code == 200 and served.text.lstrip().startswith("<svg")
    choose_language(client, "zh_Hans")
    chinese = client.get("/home").text
    assert "完成实名认证后才能转账。" in chinese and "扫一扫" in chinese


def test_home_of_a_verified_person_offers_every_action_and_lists_recent_activity(
    client: TestClient, clock: FrozenClock
) -> None:
    verified_payer(client, clock)
    home = client.get("/home").text
    assert set(actions(home).values()) == {"true"}
    for path in ("/wallet/scan", "/wallet/payment-code", "/wallet/receive-code"):
        assert f'href="{path}"' in home
    assert 'data-testid="verify-prompt"' not in home
    assert '<span class="amount">CNY\xa0190.00</span>' in home  # 500 - 60 - 250
    activity = home.split('data-testid="activity"')[1].split("</ul>")[0]
    # Newest first, on Beijing's clock, with words for the status.
    assert activity.index("0123") < activity.index("Tea House")
    assert re.search(BEIJING_AFTERNOON + " · Sent", activity)
    assert re.search(BEIJING_AFTERNOON + " · Paid", activity)
    assert "TRADE_SUCCESS" not in activity


def test_history_and_payment_details_show_local_times_and_words_in_both_languages(
    client: TestClient, clock: FrozenClock
) -> None:
    verified_payer(client, clock)
    history = client.get("/wallet/history").text
    listed = history.split('data-testid="history"')[1]
    assert re.search(BEIJING_AFTERNOON + " · Paid", listed)
    assert "TRADE_SUCCESS" not in listed and " UTC" not in history
    assert '<option value="TRADE_CLOSED">Closed</option>' in history
    order_link = re.search(r'href="(/wallet/payments/[0-9a-f-]+)"', listed)
    assert order_link is not None
    detail = client.get(order_link.group(1)).text
    assert "Balance" in detail and "Paid" in detail and "TRADE_SUCCESS" not in detail
    assert re.search(BEIJING_AFTERNOON, detail)
    choose_language(client, "zh_Hans")
    chinese = client.get("/wallet/history").text
    assert re.search(r"2026年1月1日 16:0\d（中国标准时间） · 已付款", chinese)
    assert '<option value="TRADE_FINISHED">交易完成</option>' in chinese
    assert len(re.findall(r"2026年1月1日 16:0\d（中国标准时间）", chinese)) == 2  # and the transfer
    assert "余额" in client.get(order_link.group(1)).text


def test_the_time_zone_is_chosen_on_the_profile_and_every_page_follows(
    client: TestClient, clock: FrozenClock
) -> None:
    db, ada = verified_payer(client, clock)
    profile = client.get("/me/profile").text
    assert '<option value="Asia/Shanghai" selected>' in profile
    assert 'value="Europe/London"' in profile  # detected from the +44 number
    token = csrf(client, "/me/profile")
    saved = client.post("/me/profile/time-zone", data={"csrf": token, "time_zone": "Europe/London"})
    assert saved.url.path == "/me/profile" and "Time zone saved." in saved.text
    assert '<option value="Europe/London" selected>' in saved.text
    assert db.run(lambda tx: identity.get_account(tx, ada)).time_zone == "Europe/London"
    history = client.get("/wallet/history").text
    assert re.search(r"Jan 1, 2026, 8:0\d\u202fAM \(Greenwich Mean Time\) · Paid", history)
    assert "China Standard Time" not in history
    bad = client.post("/me/profile/time-zone", data={"csrf": token, "time_zone": "Mars/Base"})
    assert bad.status_code == 422 and 'data-code="time_zone.unknown"' in bad.text
    assert db.run(lambda tx: identity.get_account(tx, ada)).time_zone == "Europe/London"


def test_the_api_sets_the_time_zone_and_keeps_utc(client: TestClient) -> None:
    auth = bearer(api_sign_up(client)["token"])
    assert client.get("/api/v1/me", headers=auth).json()["time_zone"] == "Asia/Shanghai"
    changed = client.put("/api/v1/me/time-zone", headers=auth, json={"time_zone": "Asia/Tokyo"})
    assert changed.status_code == 200 and changed.json()["time_zone"] == "Asia/Tokyo"
    assert changed.json()["created_at"].endswith(("Z", "+00:00"))
    bad = client.put("/api/v1/me/time-zone", headers=auth, json={"time_zone": "Tokyo"})
    assert bad.status_code == 422 and bad.json()["code"] == "time_zone.unknown"


def test_the_wallet_lists_its_actions_alike_and_says_why_a_newcomer_may_not_send(
    client: TestClient,
) -> None:
    sign_up_by_form(client)
    wallet = client.get("/wallet").text
    rows = wallet.split('data-testid="wallet-actions"')[1].split("</ul>")[0]
    assert actions(rows) == {
        "transfer": "false",
        "receive": "false",
        "topup_code": "false",
        "tour_pass": "true",
    }
    assert 'href="/wallet/transfer"' not in wallet and "button-primary" not in rows
    assert "Verify your real name to send money." in rows


def test_the_wallet_offers_a_verified_person_every_action_as_the_same_kind_of_row(
    client: TestClient, clock: FrozenClock
) -> None:
    verified_payer(client, clock)
    wallet = client.get("/wallet").text
    rows = wallet.split('data-testid="wallet-actions"')[1].split("</ul>")[0]
    assert set(actions(rows).values()) == {"true"}
    links = re.findall(r'<a href="(/wallet/[a-z/-]+)" data-testid="[a-z-]+"><span>', rows)
    assert links == [
        "/wallet/transfer",
        "/wallet/request",
        "/wallet/topup-code",
        "/wallet/tour-pass",
    ]
    assert "button-primary" not in rows


def test_the_history_filter_reads_days_on_the_persons_clock(
    client: TestClient, clock: FrozenClock
) -> None:
    clock.advance(hours=12)  # 20:00 UTC on Jan 1 is 04:00 on Jan 2 in Beijing
    verified_payer(client, clock)

    def listed(query: str) -> str:
        page = client.get(f"/wallet/history?{query}").text
        return page.split('data-testid="history"')[1].split("</ul>")[0]

    assert "Tea House" in listed("since=2026-01-02&until=2026-01-02")
    assert "Tea House" not in listed("until=2026-01-01")
    assert "Jan 2, 2026, 4:0" in listed("since=2026-01-02")
