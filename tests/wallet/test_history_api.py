"""What the history and appeal pages show is in the JSON API too: payments and transfers
a page at a time behind an opaque cursor (newest first, ties by id, nothing skipped or
repeated), the pages' filters, the CSV export, and the restriction with its appeal."""

from __future__ import annotations

import csv
import io
import uuid
from typing import Any

from fastapi.testclient import TestClient
from PIL import Image

from qianbao.clock import FrozenClock
from qianbao.db import Database
from qianbao.risk import restrictions
from qianbao.wallet.payments import refunds
from qianbao.wallet.payments import service as payments
from tests.wallet.test_payments import PIN, cny, fund, order, shop, verify
from tests.wallet.test_transfers import ALICE, BOB, pair, send, sign_in

__all__ = ["pair", "shop"]  # fixtures used here


def walk(client: TestClient, url: str, auth: dict[str, str], **params: Any) -> list[list[str]]:
    """Every page of a history, following next_cursor; the ids of each page."""
    pages: list[list[str]] = []
    cursor = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        answer = client.get(url, headers=auth, params=query)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        pages.append([item["id"] for item in body["items"]])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages
        assert len(pages) < 20


def test_transfer_history_pages_newest_first_with_a_cursor_and_filters(
    client: TestClient, db: Database, clock: FrozenClock, pair: tuple[uuid.UUID, uuid.UUID]
) -> None:
    alice, _ = pair
    clock.advance(days=1)
    same_instant = [send(db, alice, "+447400900123", "1.00").id for _ in range(3)]
    clock.advance(seconds=5)
    later = [send(db, alice, "+447400900123", "2.00").id]
    clock.advance(days=2)
    latest = [send(db, alice, "+447400900123", "3.00").id]
    expected = [str(i) for i in latest + later + sorted(same_instant, reverse=True)]
    auth = sign_in(client, db, clock, ALICE)
    url = "/api/v1/wallet/transfers/history"
    pages = walk(client, url, auth, limit=2)
    assert [len(page) for page in pages] == [2, 2, 1]
    assert [i for page in pages for i in page] == expected
    # A transfer arriving meanwhile neither shifts nor repeats the pages already read.
    first = client.get(url, headers=auth, params={"limit": 2}).json()
    send(db, alice, "+447400900123", "4.00")
    rest = walk(client, url, auth, limit=2, cursor=first["next_cursor"])
    assert [i for page in rest for i in page] == expected[2:]
    day = clock.now().date()
    today = walk(client, url, auth, since=day.isoformat(), until=day.isoformat())
    assert len(today[0]) == 2  # the 3.00 and the 4.00
    assert walk(client, url, auth, source="foreign_card") == [[]]
    bob_auth = sign_in(client, db, clock, BOB)
    received = client.get(url, headers=bob_auth, params={"limit": 100}).json()
    assert {t["direction"] for t in received["items"]} == {"received"}
    assert len(received["items"]) == 6 and received["next_cursor"] is None


def test_bad_filters_and_cursors_are_refused_with_a_problem(
    client: TestClient, db: Database, clock: FrozenClock, pair: tuple[uuid.UUID, uuid.UUID]
) -> None:
    alice, _ = pair
    for _ in range(2):
        send(db, alice, "+447400900123", "1.00")
    auth = sign_in(client, db, clock, ALICE)
    url = "/api/v1/wallet/transfers/history"
    cursor = client.get(url, headers=auth, params={"limit": 1}).json()["next_cursor"]
    for params, code in [
        ({"source": "cash"}, "history.source"),
        ({"status": "PAID"}, "history.status"),
        ({"since": "yesterday"}, "request.invalid"),
        ({"limit": 1000}, "request.invalid"),
        ({"cursor": "not-a-cursor"}, "history.cursor"),
    ]:
        answer = client.get(url, headers=auth, params=params)
        assert (answer.status_code, answer.json()["code"]) == (422, code), params
    other_list = client.get("/api/v1/wallet/payments", headers=auth, params={"cursor": cursor})
    assert other_list.status_code == 422 and other_list.json()["code"] == "history.cursor"
    assert client.get(url).json()["code"] == "session.missing"


def test_payment_history_pages_filters_and_exports_csv(
    client: TestClient, db: Database, clock: FrozenClock, shop: uuid.UUID, pair: Any
) -> None:
    alice, _ = pair
    verify(db, alice)
    fund(db, alice, "500")
    paid = []
    for number in range(5):
        clock.advance(minutes=1)
        made = order(db, shop, f"{10 + number}.00", f"T{number}")
        payments.pay_with_balance(db, alice, made, PIN)
        paid.append(str(made))
    order(db, shop, "99.00", "OPEN")  # nobody's yet: not in anybody's history
    auth = sign_in(client, db, clock, ALICE)
    url = "/api/v1/wallet/payments"
    pages = walk(client, url, auth, limit=2)
    assert [len(page) for page in pages] == [2, 2, 1]
    assert [i for page in pages for i in page] == list(reversed(paid))
    settled = walk(client, url, auth, status="TRADE_SUCCESS", source="balance", limit=3)
    assert [i for page in settled for i in page] == list(reversed(paid))
    assert walk(client, url, auth, source="bank_card") == [[]]
    one = client.get(url, headers=auth, params={"limit": 1}).json()["items"][0]
    assert one["amount"] == {"currency": "CNY", "value": "14.00"}
    refunds.refund(db, shop, uuid.UUID(paid[0]), "R1", cny("4.00"), to_balance=True)
    detail = client.get(f"{url}/{paid[0]}", headers=auth).json()
    assert detail["order"]["id"] == paid[0] and detail["order"]["refunded"]["value"] == "4.00"
    assert [(r["out_request_no"], r["amount"]["value"]) for r in detail["refunds"]] == [
        ("R1", "4.00")
    ]
    stranger = client.get(f"{url}/{paid[0]}", headers=sign_in(client, db, clock, BOB))
    assert stranger.status_code == 404 and stranger.json()["code"] == "order.not_found"
    send(db, alice, "+447400900123", "1.00")
    exported = client.get("/api/v1/wallet/history.csv", headers=auth, params={"source": "balance"})
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(exported.text)))
    assert rows[0][:5] == ["paid_at", "merchant", "order_no", "subject", "amount"]
    assert sorted(row[2] for row in rows[1:6]) == [f"T{n}" for n in range(5)]
    assert [row[8] for row in rows[6:]] == ["transfer_sent"]


def photo() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (640, 480), (200, 180, 160)).save(buffer, "JPEG")
    return buffer.getvalue()


def test_the_restriction_and_its_appeal_through_the_api(
    client: TestClient, db: Database, clock: FrozenClock, pair: tuple[uuid.UUID, uuid.UUID]
) -> None:
    alice, _ = pair
    auth = sign_in(client, db, clock, ALICE)
    url = "/api/v1/wallet/restriction"
    assert client.get(url, headers=auth).json() == {"restriction": None}
    nothing = client.post("/api/v1/wallet/appeals", headers=auth, files={"passport_page": photo()})
    assert nothing.status_code == 409 and nothing.json()["code"] == "appeal.nothing"
    db.run(
        lambda tx: restrictions.impose(tx, alice, "restricted", "shared_card", imposed_by="rule:x")
    )
    shown = client.get(url, headers=auth).json()["restriction"]
    assert (shown["kind"], shown["reason"], shown["appeal_status"]) == (
        "restricted",
        "shared_card",
        None,
    )
    assert "several accounts" in shown["reason_text"]
    empty = client.post("/api/v1/wallet/appeals", headers=auth, data={"message": "mine"})
    assert empty.status_code == 422 and empty.json()["code"] == "appeal.documents"
    sent = client.post(
        "/api/v1/wallet/appeals",
        headers=auth,
        files={"passport_page": ("page.jpg", photo(), "image/jpeg")},
        data={"message": "The card is mine."},
    )
    assert sent.status_code == 201, sent.text
    assert sent.json()["status"] == "pending"
    assert [a.id for a in db.run(restrictions.pending_appeals)] == [uuid.UUID(sent.json()["id"])]
    assert client.get(url, headers=auth).json()["restriction"]["appeal_status"] == "pending"
