"""A whole journey over the API with every log line captured, DEBUG included, through
the production pipeline (JSON, redaction): sign-up by SMS code, a payment password, a
foreign card and a card payment, passport and face verification, a transfer. No phone
number, SMS code, passport number, name, birth date, card number or token may appear."""

from __future__ import annotations

import io
import json
import re
import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient

from qianbao import jobs
from qianbao.clock import FrozenClock
from qianbao.db import Database
from qianbao.identity import service as identity
from qianbao.identity.phone import parse_mobile
from qianbao.notify.email import LogEmailGateway
from qianbao.notify.gateways import LogGateway
from qianbao.notify.service import read_outbox
from qianbao.verification import liveness
from qianbao.verification import service as verification
from tests.api_helpers import api_sign_up, bearer
from tests.verification.flow_helpers import CHALLENGE, accept_synthetic_clips, clip, passport
from tests.verification.flow_helpers import reading as page_reading
from tests.wallet.test_wallet_http import VISA_USD, with_payment_password

PIN = "802417"  # with_payment_password's
SENDER, RECIPIENT = "07911 123456", "07400 900123"


def phone_forms(national: str) -> list[str]:
    phone = parse_mobile(national, "GB")
    digits = national.replace(" ", "")
    return [phone.e164, phone.international(), national, digits, digits[1:]]


def sms_codes(db: Database, national: str) -> set[str]:
    e164 = parse_mobile(national, "GB").e164
    bodies = [m.body for m in db.run(lambda tx: read_outbox(tx, e164, 50))]
    return {code for body in bodies for code in re.findall(r"\b\d{6}\b", body)}


def verify_by_passport_and_face(db: Database, user: uuid.UUID) -> None:
    accept_synthetic_clips(db.settings)
    case = db.run(lambda tx: verification.start_case(tx, user))
    db.run(lambda tx: verification.record_page(tx, user, case.id, page_reading()))
    db.run(lambda tx: verification.confirm_document(tx, user, case.id))
    db.run(lambda tx: verification.issue_challenge(tx, user, case.id))
    assert verification.submit_face(db, user, case.id, clip("astronaut")).status == "verified"


def pay_by_card(client: TestClient, auth: dict[str, str]) -> str:
    card = client.post(
        "/api/v1/wallet/cards",
        headers=auth,
        json={"number": VISA_USD, "expiry": "12/30", "cvv": "123", "holder_name": "ADA"},
    )
    assert card.status_code == 201, card.text
    order = client.post("/api/v1/demo/shop/orders", json={"amount": "120.00"}).json()
    paid = client.post(
        f"/api/v1/orders/{order['id']}/pay",
        headers=auth,
        json={"source": "foreign_card", "card_id": card.json()["id"], "payment_password": PIN},
    )
    assert paid.status_code == 200, paid.text
    refund = client.post(
        f"/api/v1/demo/shop/orders/{order['id']}/refunds",
        json={"out_request_no": "R1", "amount": "70.00", "destination": "balance"},
    )
    assert refund.status_code == 200, refund.text
    return str(order["id"])


def journey(client: TestClient, clock: FrozenClock) -> dict[str, Any]:
    db: Database = client.app.state.db  # type: ignore[attr-defined]
    sender = api_sign_up(client, SENDER)
    auth = bearer(sender["token"])
    user = uuid.UUID(client.get("/api/v1/me", headers=auth).json()["id"])
    with_payment_password(client, auth, clock)
    order_id = pay_by_card(client, auth)
    verify_by_passport_and_face(db, user)  # the refund held while unverified is released
    recipient = api_sign_up(client, RECIPIENT)
    recipient_id = uuid.UUID(
        client.get("/api/v1/me", headers=bearer(recipient["token"])).json()["id"]
    )
    db.run(lambda tx: identity.set_verification_level(tx, recipient_id, "bank_card"))
    sent = client.post(
        "/api/v1/wallet/transfers",
        headers={**auth, "Idempotency-Key": "tea-1", "X-Request-ID": "journey-transfer-1"},
        json={"to": "+447400900123", "amount": "12.30", "note": "Tea", "payment_password": PIN},
    )
    assert sent.status_code == 201, sent.text
    assert sent.headers["X-Request-ID"] == "journey-transfer-1"
    jobs.run_due(db, jobs.default_jobs())  # a worker's sweep, whose lines are checked too
    return {"tokens": [sender["token"], recipient["token"]], "order_id": order_id}


def test_a_whole_journey_leaves_no_secret_or_personal_datum_in_the_logs(
    client: TestClient,
    clock: FrozenClock,
    monkeypatch: pytest.MonkeyPatch,
    captured: io.StringIO,
) -> None:
    monkeypatch.setattr(liveness, "new_challenge", lambda rng=None: CHALLENGE)
    done = journey(client, clock)
    db: Database = client.app.state.db  # type: ignore[attr-defined]
    text = captured.getvalue()
    lines = [json.loads(line) for line in text.splitlines()]

    # Not vacuous: the journey was logged, one access line per request, with its route.
    access = [line for line in lines if line.get("logger") == "qianbao.access"]
    assert len(access) >= 15
    idle_runs = [line for line in lines if line["event"] == "job run" and line["rows"] == 0]
    assert idle_runs and idle_runs[0]["level"] == "debug"  # DEBUG was captured too
    assert {"method", "route", "status", "duration_ms", "request_id"} <= set(access[0])
    routes = {(line["method"], line["route"], line["status"]) for line in access}
    assert ("POST", "/api/v1/orders/{order_id}/pay", 200) in routes
    assert ("POST", "/api/v1/wallet/transfers", 201) in routes
    assert any(line.get("request_id") == "journey-transfer-1" for line in access)
    # The raw path is never in an access line, only the template.
    assert not any(done["order_id"] in json.dumps(line) for line in access)

    data = passport()
    names = [
        word
        for word in f"{data.surname}<{data.given_names}".split("<")
        if len(word) >= 3  # a two-letter word could be part of any text
    ]
    birth = data.birth_date
    secrets = {
        *phone_forms(SENDER),
        *phone_forms(RECIPIENT),
        *sms_codes(db, SENDER),
        *sms_codes(db, RECIPIENT),
        PIN,
        data.document_number,
        *names,
        *(name.capitalize() for name in names),
        birth.isoformat(),
        birth.strftime("%y%m%d"),
        birth.strftime("%d.%m.%Y"),
        VISA_USD,
        VISA_USD.replace(" ", ""),
        *done["tokens"],
    }
    assert len(sms_codes(db, SENDER)) >= 2  # sign-up and payment-password codes
    leaked = sorted(secret for secret in secrets if secret in text)
    assert leaked == [], leaked


def test_the_log_gateways_say_where_a_message_went_not_to_whom_or_what(
    captured: io.StringIO,
) -> None:
    LogGateway().send("+447911123456", "Your Qianbao code is 135790.")
    LogEmailGateway().send("ada@example.com", "Your code", "Your code is 135790.")
    sms, mail = (json.loads(line) for line in captured.getvalue().splitlines())
    assert (sms["country"], sms["length"]) == ("+44", 28)
    assert mail["domain"] == "example.com"
    text = captured.getvalue()
    assert "135790" not in text and "7911123456" not in text and "ada@" not in text
