"""The wallet over HTTP: the API a mobile app calls and the pages, with the demo shop."""

from __future__ import annotations

import re
import uuid

import pytest
from fastapi.testclient import TestClient

from qianbao.clock import FrozenClock
from qianbao.errors import QianbaoError
from qianbao.funding import foreign_cards
from qianbao.identity import security
from qianbao.identity.phone import parse_mobile
from qianbao.money import Money
from qianbao.wallet.payments import refunds
from qianbao.wallet.payments import service as payments
from tests.api_helpers import api_sign_up, bearer, outbox_code
from tests.identity.test_security import security_code
from tests.web.test_pages import csrf, sign_up_by_form

VISA_USD = "4000 0000 0084 0019"


def with_payment_password(client: TestClient, auth: dict[str, str], clock: FrozenClock) -> None:
    clock.advance(seconds=61)  # past the sign-up code's resend cooldown
    sent = client.post("/api/v1/me/security-codes", headers=auth)
    assert sent.status_code == 201, sent.text
    code = outbox_code(client, "+447911123456")
    done = client.put(
        "/api/v1/me/payment-password",
        headers=auth,
        json={"new_password": "802417", "sms_code": code},
    )
    assert done.status_code == 204, done.text


def test_a_newcomer_pays_a_demo_order_by_card_and_gets_a_partial_refund(
    client: TestClient, clock: FrozenClock
) -> None:
    auth = bearer(api_sign_up(client)["token"])
    with_payment_password(client, auth, clock)
    card = client.post(
        "/api/v1/wallet/cards",
        headers=auth,
        json={"number": VISA_USD, "expiry": "12/30", "cvv": "123", "holder_name": "ADA LOVELACE"},
    )
    assert card.status_code == 201, card.text
    assert card.json()["last4"] == "0019" and VISA_USD.replace(" ", "") not in card.text
    order = client.post("/api/v1/demo/shop/orders", json={"subject": "Tea", "amount": "300.00"})
    assert order.status_code == 201, order.text
    order_id = order.json()["id"]
    cashier = client.get(f"/api/v1/orders/{order_id}/cashier", headers=auth).json()
    assert (
        cashier["can_use_balance"] is False
        and "identity verification" in cashier["balance_refusal"]
    )
    assert cashier["cards"][0]["fee"] == {"currency": "CNY", "value": "9.00"}
    # The card's own currency BEFORE paying: CNY 309.00 at 7.1072 CNY per USD.
    assert cashier["cards"][0]["card_total"] == {"currency": "USD", "value": "43.48"}
    balance = client.post(
        f"/api/v1/orders/{order_id}/pay",
        headers=auth,
        json={"source": "balance", "payment_password": "802417"},
    )
    assert balance.status_code == 403 and balance.json()["code"] == "policy.balance_not_allowed"
    paid = client.post(
        f"/api/v1/orders/{order_id}/pay",
        headers=auth,
        json={"source": "foreign_card", "card_id": card.json()["id"], "payment_password": "802417"},
    )
    assert paid.status_code == 200, paid.text
    assert paid.json()["order"]["status"] == "TRADE_SUCCESS"
    assert paid.json()["order"]["card_amount"] == cashier["cards"][0]["card_total"]
    refund = client.post(
        f"/api/v1/demo/shop/orders/{order_id}/refunds",
        json={"out_request_no": "R1", "amount": "100.00"},
    )
    assert refund.status_code == 200, refund.text
    assert refund.json()["destination"] == "foreign_card"
    assert refund.json()["fee_refunded"] == {"currency": "CNY", "value": "3.00"}
    # The level shows how much of the yearly card limit is used: CNY 200 still paid,
    # at the settings' 7.1072 CNY per USD.
    level = client.get("/api/v1/me/level", headers=auth).json()
    card_year = next(row for row in level["rights"] if row["key"] == "card_per_year")
    assert card_year["used"].replace("\u00a0", " ") == "USD 28.14 used"
    bad = client.post(
        f"/api/v1/demo/shop/orders/{order_id}/refunds",
        json={"out_request_no": "R2", "amount": "abc"},
    )
    assert bad.status_code == 422 and bad.json()["code"] == "amount.format"


def test_the_pages_add_a_card_and_pay_at_the_cashier(client: TestClient) -> None:
    sign_up_by_form(client)
    token = csrf(client, "/wallet")
    page = client.get("/wallet")
    assert 'data-testid="balance"' in page.text
    added = client.post(
        "/wallet/cards",
        data={
            "csrf": token,
            "number": VISA_USD,
            "expiry": "12/30",
            "cvv": "123",
            "holder_name": "ADA",
        },
    )
    assert "0019" in added.text
    bad = client.post(
        "/wallet/cards",
        data={
            "csrf": token,
            "number": "4000 0000 0084 0018",
            "expiry": "12/30",
            "cvv": "123",
            "holder_name": "ADA",
        },
    )
    assert bad.status_code == 422 and 'data-code="card.luhn"' in bad.text
    shop = client.post(
        "/demo/shop/orders", data={"csrf": token, "amount": "88.00", "subject": "Tea"}
    )
    assert "/cashier/" in str(shop.url)
    assert 'data-testid="balance-refusal"' in shop.text and 'data-testid="fee"' in shop.text
    # The card-currency amount is on the cashier before paying (CNY 88.00, no fee, in USD).
    shown = re.search(
        r'data-testid="card-total">about <span class="amount">([^<]+)</span> on your card',
        shop.text,
    )
    assert shown and shown.group(1).replace("\u00a0", " ") == "USD 12.38"
    source = re.search(r'value="(card:[0-9a-f-]+)"', shop.text)
    assert source
    no_pin = client.post(
        str(shop.url.path),
        data={"csrf": token, "source": source.group(1), "payment_password": "123456"},
    )
    assert no_pin.status_code in (403, 422) and "alert-error" in no_pin.text


def test_history_filters_detail_and_csv(client: TestClient, clock: FrozenClock) -> None:
    db = client.app.state.db  # type: ignore[attr-defined]
    sign_up_by_form(client)
    phone = parse_mobile("+447911123456", "GB")
    user = db.run(lambda tx: security.find_login(tx, phone.e164, phone)).id
    security.set_payment_password(db, user, "802417", sms_code=security_code(db, user, clock))
    card = foreign_cards.add_foreign_card(db, user, VISA_USD, "12/30", "123", "ADA")
    shop = payments.demo_merchant(db)
    paid = []
    for number, amount in (("A1", "88.00"), ("A2", "250.00")):
        order = db.run(
            lambda tx, n=number, a=amount: payments.create_order(
                tx, shop, n, "Tea", Money.of("CNY", a)
            )
        )
        payments.pay_with_card(db, user, order.id, card.id, "802417")
        paid.append(order.id)
    refunds.refund(db, shop, paid[1], "R1", Money.of("CNY", "50.00"))

    history = client.get("/wallet/history?source=foreign_card&status=TRADE_SUCCESS")
    assert history.text.count("/wallet/payments/") == 2
    none = client.get("/wallet/history?source=balance")
    assert "/wallet/payments/" not in none.text
    detail = client.get(f"/wallet/payments/{paid[1]}")
    assert 'data-testid="refunds"' in detail.text and "R1" in detail.text
    exported = client.get("/wallet/history.csv?source=foreign_card")
    assert exported.headers["content-type"].startswith("text/csv")
    lines = exported.text.splitlines()
    assert lines[0].startswith("paid_at,merchant,order_no") and len(lines) == 3
    assert {line.split(",")[2] for line in lines[1:]} == {"A1", "A2"}
    assert ",7.50," in exported.text  # the 3% fee of CNY 250
    stranger = TestClient(client.app, base_url="http://127.0.0.1")
    assert stranger.get(f"/wallet/payments/{paid[1]}", follow_redirects=False).status_code == 303
    other = uuid.uuid4()
    with pytest.raises(QianbaoError) as refused:
        db.run(lambda tx: payments.user_order(tx, other, paid[1]))
    assert refused.value.code == "order.not_found"  # only the buyer sees a payment


def test_a_card_whose_issuer_checks_it_is_added_through_the_3d_secure_page(
    client: TestClient,
) -> None:
    sign_up_by_form(client)
    token = csrf(client, "/wallet/cards/new")
    form = {"csrf": token, "expiry": "12/30", "cvv": "123", "holder_name": "ADA"}
    challenged = client.post("/wallet/cards", data={**form, "number": "5400 0000 0027 6050"})
    assert "/sandbox/3ds/" in str(challenged.url)
    assert "6050" not in client.get("/wallet").text  # not usable before the check
    authorization_id = challenged.url.path.rsplit("/", 1)[1]
    return_to = challenged.url.params["return_to"]
    assert return_to.startswith("/wallet/cards/") and return_to.endswith("/verified")
    done = client.post(
        f"/sandbox/3ds/{authorization_id}",
        data={"csrf": token, "answer": "1234", "return_to": return_to},
    )
    assert done.url.path == "/wallet" and "6050" in done.text
    again = client.post("/wallet/cards", data={**form, "number": "5400 0000 0027 6050"})
    assert again.url.path == "/wallet"  # the same card is already there, checked
    other = client.post(
        "/wallet/cards",
        data={**form, "number": "5400 0000 0027 6050", "expiry": "11/31"},
        headers={"Accept-Language": "zh-CN"},
    )
    wrong = client.post(
        other.url.path,
        data={"csrf": token, "answer": "9999", "return_to": other.url.params["return_to"]},
    )
    assert wrong.status_code == 409 and 'data-code="card.verification_failed"' in wrong.text


def test_refunds_over_http_are_named_by_the_idempotency_key_and_races_get_plain_answers(
    client: TestClient, clock: FrozenClock
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    auth = bearer(api_sign_up(client)["token"])
    with_payment_password(client, auth, clock)
    card = client.post(
        "/api/v1/wallet/cards",
        headers=auth,
        json={"number": VISA_USD, "expiry": "12/30", "cvv": "123", "holder_name": "ADA LOVELACE"},
    ).json()
    order_id = client.post(
        "/api/v1/demo/shop/orders", json={"subject": "Tea", "amount": "100.00"}
    ).json()["id"]
    paid = client.post(
        f"/api/v1/orders/{order_id}/pay",
        headers=auth,
        json={"source": "foreign_card", "card_id": card["id"], "payment_password": "802417"},
    )
    assert paid.status_code == 200, paid.text
    refunds = f"/api/v1/demo/shop/orders/{order_id}/refunds"

    def ask(key: str, amount: str) -> tuple[int, str]:
        answer = client.post(refunds, headers={"Idempotency-Key": key}, json={"amount": amount})
        return answer.status_code, answer.json().get("code", answer.json().get("out_request_no"))

    # Three partial refunds at once, together 0.01 over the order: two done, one 422.
    with ThreadPoolExecutor(max_workers=3) as pool:
        answers = list(pool.map(ask, ["A", "B", "C"], ["33.33", "33.33", "33.35"]))
    assert sorted(status for status, _ in answers) == [200, 200, 422], answers
    assert [code for status, code in answers if status == 422] == ["refund.too_much"]
    done = next(key for key, (status, _) in zip("ABC", answers, strict=True) if status == 200)
    amount = {"A": "33.33", "B": "33.33", "C": "33.35"}[done]
    assert ask(done, amount) == (200, done)  # a retry: the first answer
    assert ask(done, "20.00") == (409, "idempotency.mismatch")
    both = client.post(
        refunds, headers={"Idempotency-Key": "D"}, json={"out_request_no": "E", "amount": "1.00"}
    )
    assert (both.status_code, both.json()["code"]) == (422, "idempotency.key_conflict")
    neither = client.post(refunds, json={"amount": "1.00"})
    assert (neither.status_code, neither.json()["code"]) == (422, "refund.request_no")
    too_long = client.post(refunds, headers={"Idempotency-Key": "K" * 65}, json={"amount": "1"})
    assert (too_long.status_code, too_long.json()["code"]) == (422, "refund.request_no")


@pytest.mark.parametrize("typed", ["1e30", "NaN", "1_000"])
def test_the_demo_shop_page_reads_amounts_with_the_one_parser(
    client: TestClient, typed: str
) -> None:
    """ "1e30" was a server error (an integer no column holds reached the database)."""
    token = csrf(client, "/demo/shop")
    order = client.post("/demo/shop/orders", data={"csrf": token, "amount": typed, "subject": "T"})
    assert order.status_code == 422 and 'data-code="amount.format"' in order.text
    typed_like_a_person = client.post(
        "/demo/shop/orders",
        data={"csrf": token, "amount": "¥1,288.00", "subject": "Tea"},
        follow_redirects=False,
    )
    assert typed_like_a_person.headers["location"].startswith("/cashier/")
    created = client.post("/api/v1/demo/shop/orders", json={"subject": "T", "amount": "1,288"})
    assert created.json()["amount"] == {"currency": "CNY", "value": "1288.00"}
