"""The wallet issue's "done means", as one newcomer over the JSON API: add a card, pay a
demo order by card, get a partial refund (to the balance: held while unverified),
verify and see it released, pay by balance, then meet a restriction and appeal it."""

from __future__ import annotations

import io
import uuid

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from qianbao.clock import FrozenClock
from qianbao.identity import staff
from qianbao.risk import restrictions
from qianbao.verification import liveness
from qianbao.verification import service as verification
from tests.api_helpers import api_sign_up, bearer
from tests.verification.flow_helpers import CHALLENGE, accept_synthetic_clips, clip, reading
from tests.wallet.test_wallet_http import VISA_USD, with_payment_password


def amount(body: dict[str, str]) -> str:
    return body["value"]


def test_a_newcomer_s_whole_wallet_journey(
    client: TestClient, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = client.app.state.db  # type: ignore[attr-defined]
    auth = bearer(api_sign_up(client)["token"])
    user = uuid.UUID(client.get("/api/v1/me", headers=auth).json()["id"])
    with_payment_password(client, auth, clock)
    card = client.post(
        "/api/v1/wallet/cards",
        headers=auth,
        json={"number": VISA_USD, "expiry": "12/30", "cvv": "123", "holder_name": "ADA"},
    ).json()

    def pay(source: str, price: str) -> dict[str, object]:
        order = client.post("/api/v1/demo/shop/orders", json={"amount": price}).json()
        body = {"source": source, "payment_password": "802417"}
        if source == "foreign_card":
            body["card_id"] = card["id"]
        answer = client.post(f"/api/v1/orders/{order['id']}/pay", headers=auth, json=body)
        return {"status": answer.status_code, **answer.json()}

    by_card = pay("foreign_card", "120.00")
    assert by_card["status"] == 200
    order_id = by_card["order"]["id"]  # type: ignore[index]
    refund = client.post(
        f"/api/v1/demo/shop/orders/{order_id}/refunds",
        json={"out_request_no": "R1", "amount": "70.00", "destination": "balance"},
    )
    assert refund.json()["destination"] == "held"
    wallet = client.get("/api/v1/wallet", headers=auth).json()
    assert amount(wallet["held"]) == "70.00" and amount(wallet["balance"]) == "0.00"
    assert pay("balance", "10.00")["code"] == "policy.balance_not_allowed"

    monkeypatch.setattr(liveness, "new_challenge", lambda rng=None: CHALLENGE)
    accept_synthetic_clips(db.settings)
    case = db.run(lambda tx: verification.start_case(tx, user))
    db.run(lambda tx: verification.record_page(tx, user, case.id, reading()))
    db.run(lambda tx: verification.confirm_document(tx, user, case.id))
    db.run(lambda tx: verification.issue_challenge(tx, user, case.id))
    assert verification.submit_face(db, user, case.id, clip("astronaut")).status == "verified"
    wallet = client.get("/api/v1/wallet", headers=auth).json()
    assert amount(wallet["held"]) == "0.00" and amount(wallet["balance"]) == "70.00"

    by_balance = pay("balance", "30.00")
    assert by_balance["status"] == 200, by_balance
    assert amount(client.get("/api/v1/wallet", headers=auth).json()["balance"]) == "40.00"

    reviewer = staff.create_staff(db, "rita", "Rita", "a long reviewer passphrase")
    db.run(
        lambda tx: restrictions.impose(
            tx, user, "restricted", "reviewer", imposed_by=f"staff:{reviewer.id}", note="check"
        )
    )
    assert pay("balance", "5.00")["code"] == "account.restricted"
    picture = io.BytesIO()
    Image.new("RGB", (400, 300), (90, 90, 90)).save(picture, "JPEG")
    appeal = restrictions.appeal(db, user, {"passport_page": picture.getvalue()}, "mine")
    db.run(lambda tx: restrictions.decide_appeal(tx, appeal, reviewer.id, True, "all good"))
    assert pay("balance", "5.00")["status"] == 200
