"""The Tour Pass over HTTP: the API a mobile app calls (open, quote, top up, pay, the
demo expiry) and the pages (open, see the fee before confirming, top up, pay at the
cashier, close early, the demo expiry button), with the history they show."""

from __future__ import annotations

import re
import uuid

from fastapi.testclient import TestClient

from qianbao.clock import FrozenClock
from qianbao.db import Database
from qianbao.funding import foreign_cards
from qianbao.identity import security
from qianbao.identity import service as identity
from qianbao.identity.phone import parse_mobile
from qianbao.wallet.ledger import audit as ledger_audit
from tests.api_helpers import api_sign_up, bearer
from tests.identity.test_security import security_code
from tests.wallet.test_wallet_http import VISA_USD, with_payment_password
from tests.web.test_pages import csrf, sign_up_by_form

PIN = "802417"


def passport_verified(client: TestClient) -> uuid.UUID:
    db: Database = client.app.state.db  # type: ignore[attr-defined]
    phone = parse_mobile("+447911123456", "GB")
    found = db.run(lambda tx: security.find_login(tx, phone.e164, phone))
    assert found is not None
    db.run(lambda tx: identity.set_verification_level(tx, found.id, "passport_face"))
    return found.id


def test_the_api_opens_tops_up_spends_and_refunds_at_expiry(
    client: TestClient, clock: FrozenClock
) -> None:
    auth = bearer(api_sign_up(client)["token"])
    with_payment_password(client, auth, clock)
    before = client.get("/api/v1/tour-pass", headers=auth).json()
    assert before["may_open"] is False and "passport" in before["refusal"]
    refused = client.post("/api/v1/tour-pass", headers=auth)
    assert refused.status_code == 403 and refused.json()["code"] == "policy.tour_pass_not_allowed"

    passport_verified(client)
    opened = client.post("/api/v1/tour-pass", headers=auth)
    assert opened.status_code == 201, opened.text
    assert opened.json()["room"] == {"currency": "CNY", "value": "2000.00"}
    card = client.post(
        "/api/v1/wallet/cards",
        headers=auth,
        json={"number": VISA_USD, "expiry": "12/30", "cvv": "123", "holder_name": "ADA"},
    ).json()
    quote = client.get("/api/v1/tour-pass/top-up-quote?amount=1000.00", headers=auth).json()
    assert quote["fee"]["value"] == "50.00" and quote["total"]["value"] == "1050.00"
    assert quote["cards"][0]["card_total"] == {"currency": "USD", "value": "147.74"}
    too_much = client.get("/api/v1/tour-pass/top-up-quote?amount=2500", headers=auth)
    assert too_much.status_code == 422 and too_much.json()["code"] == "tour_pass.top_up_range"

    body = {
        "card_id": card["id"],
        "amount": "1000.00",
        "payment_password": PIN,
        "idempotency_key": "first",
    }
    topped = client.post("/api/v1/tour-pass/top-ups", headers=auth, json=body)
    assert topped.status_code == 201, topped.text
    assert topped.json()["state"] == "done" and topped.json()["card_amount"]["currency"] == "USD"
    again = client.post("/api/v1/tour-pass/top-ups", headers=auth, json=body)
    assert again.json()["id"] == topped.json()["id"]  # the same key tops up once

    order = client.post("/api/v1/demo/shop/orders", json={"subject": "Tea", "amount": "150.00"})
    order_id = order.json()["id"]
    cashier = client.get(f"/api/v1/orders/{order_id}/cashier", headers=auth)
    assert cashier.status_code == 200
    paid = client.post(
        f"/api/v1/orders/{order_id}/pay/tour-pass", headers=auth, json={"payment_password": PIN}
    )
    assert paid.status_code == 200, paid.text
    assert paid.json()["order"]["source"] == "tour_pass"

    ran = client.post("/api/v1/demo/tour-pass/expire?after_days=91")
    assert ran.status_code == 200 and ran.json() == {"refund_parts": 1}
    after = client.get("/api/v1/tour-pass", headers=auth).json()["current"]
    assert after["state"] == "expired" and after["settled"] is True
    assert after["balance"]["value"] == "0.00"
    kinds = [line["kind"] for line in after["history"]]
    assert sorted(kinds) == ["payment", "refund", "top_up"]
    back = next(line for line in after["history"] if line["kind"] == "refund")
    assert back["amount"]["value"] == "-850.00" and back["label"] == "VISA ···· 0019"
    db: Database = client.app.state.db  # type: ignore[attr-defined]
    assert db.run(ledger_audit.audit).sound


def test_the_demo_expiry_is_refused_outside_demo_mode(client: TestClient) -> None:
    client.app.state.db.settings.demo = False  # type: ignore[attr-defined]
    ran = client.post("/api/v1/demo/tour-pass/expire")
    assert ran.status_code == 404 and ran.json()["code"] == "demo.off"


def test_the_pages_open_top_up_pay_and_close(client: TestClient, clock: FrozenClock) -> None:
    sign_up_by_form(client)
    token = csrf(client, "/wallet/tour-pass")
    refusal = client.get("/wallet/tour-pass")
    assert 'data-testid="tour-pass-refusal"' in refusal.text
    user = passport_verified(client)
    db: Database = client.app.state.db  # type: ignore[attr-defined]
    security.set_payment_password(db, user, PIN, sms_code=security_code(db, user, clock))
    foreign_cards.add_foreign_card(db, user, VISA_USD, "12/30", "123", "ADA")

    opened = client.post("/wallet/tour-pass/open", data={"csrf": token})
    assert 'data-testid="tour-pass-balance"' in opened.text
    assert 'data-testid="tour-pass-expiry"' in opened.text
    assert "Apr 1, 2026" in opened.text and "(China Standard Time)" in opened.text
    card = re.search(r'name="card" value="([0-9a-f-]+)"', opened.text)
    assert card
    review = client.post(
        "/wallet/tour-pass/quote", data={"csrf": token, "amount": "400", "card": card.group(1)}
    )
    assert review.status_code == 200
    fee = re.search(r'data-testid="top-up-fee">(?:<span class="amount">)?([^<]+)<', review.text)
    assert fee and "20.00" in fee.group(1)  # shown before the payment password
    key = re.search(r'name="request_key" value="([^"]+)"', review.text)
    assert key
    form = {
        "csrf": token,
        "amount": "400.00",
        "card": card.group(1),
        "request_key": key.group(1),
        "payment_password": PIN,
    }
    done = client.post("/wallet/tour-pass/top-ups", data=form)
    assert done.url.path == "/wallet/tour-pass" and "400.00" in done.text
    client.post("/wallet/tour-pass/top-ups", data=form)  # submitted twice: topped up once
    shown = re.search(
        r'data-testid="tour-pass-balance">(?:<span class="amount">)?([^<]+)<',
        client.get("/wallet/tour-pass").text,
    )
    assert shown and shown.group(1).replace("\u00a0", " ") == "CNY 400.00"
    over = client.post(
        "/wallet/tour-pass/quote", data={"csrf": token, "amount": "1700", "card": card.group(1)}
    )
    assert over.status_code == 422 and 'data-code="tour_pass.cap"' in over.text

    shop = client.post("/demo/shop/orders", data={"csrf": token, "amount": "50.00", "subject": "T"})
    assert 'data-testid="tour-pass-source"' in shop.text
    paid = client.post(
        shop.url.path, data={"csrf": token, "source": "tour_pass", "payment_password": PIN}
    )
    assert 'data-status="TRADE_SUCCESS"' in paid.text

    closed = client.post("/wallet/tour-pass/close", data={"csrf": token, "payment_password": PIN})
    assert 'data-state="closed"' in closed.text
    history = closed.text[closed.text.index('data-testid="tour-pass-history"') :]
    assert history.count('data-kind="top_up"') == 1 and 'data-kind="refund"' in history
    assert 'data-kind="payment"' in history
    open_again = client.get("/wallet/tour-pass")
    assert 'data-testid="open-tour-pass"' in open_again.text


def test_the_demo_button_runs_the_expiry(client: TestClient, clock: FrozenClock) -> None:
    sign_up_by_form(client)
    token = csrf(client, "/wallet/tour-pass")
    user = passport_verified(client)
    db: Database = client.app.state.db  # type: ignore[attr-defined]
    security.set_payment_password(db, user, PIN, sms_code=security_code(db, user, clock))
    foreign_cards.add_foreign_card(db, user, VISA_USD, "12/30", "123", "ADA")
    opened = client.post("/wallet/tour-pass/open", data={"csrf": token})
    assert 'data-testid="demo-expire"' in opened.text
    client.cookies.set("qb_lang", "zh_Hans")
    chinese = client.get("/wallet/tour-pass")
    assert "Tour Pass 余额" in chinese.text and "有效期至" in chinese.text
    client.cookies.set("qb_lang", "en")
    expired = client.post("/wallet/tour-pass/demo-expire", data={"csrf": token})
    assert 'data-state="expired"' in expired.text
    assert "Everything that was left has gone back." in expired.text
