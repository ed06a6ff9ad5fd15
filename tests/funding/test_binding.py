"""Binding a mainland bank card through the service, the API and the pages, with the
sandbox bank: levels follow (Class II alone, Class III with a passport)."""

from __future__ import annotations

import re
import uuid
from datetime import date

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from qianbao.db import Database
from qianbao.funding.models import BankCard, BankCardCheck
from qianbao.standing import standing
from qianbao.verification import liveness
from qianbao.verification import service as verification
from qianbao.verification.mrz import parse_td3
from tests.api_helpers import api_sign_up, bearer
from tests.verification.flow_helpers import (
    CHALLENGE,
    TODAY,
    _reading_for,
    accept_synthetic_clips,
    clip,
)
from tests.verification.passport_pages import PassportData
from tests.web.test_pages import csrf, sign_up_by_form

ICBC = "6222 0200 0000 0000 018"  # JOHN SMITH, 912345678, +447911000001: match
NAME_MISMATCH = "6217 0000 0000 0000 038"
TIMEOUT = "6210 9800 0000 0000 078"
JOHN = {"holder_name": "JOHN SMITH", "passport_number": "912345678"}
RESERVED = "+447911000001"


def card(number: str = ICBC, **changes: str) -> dict[str, str]:
    return {"card_number": number, **JOHN, "reserved_phone": RESERVED, **changes}


def bank_code(client: TestClient) -> str:
    messages = client.get("/api/v1/demo/outbox", params={"phone": RESERVED}).json()
    found = re.search(r"(?<!\d)(\d{6})(?!\d)", messages[0]["body"])
    assert found, messages
    return found.group(1)


def bind(client: TestClient, auth: dict[str, str], **changes: str) -> dict[str, object]:
    started = client.post("/api/v1/funding/bank-cards/checks", headers=auth, json=card(**changes))
    assert started.status_code == 201, started.text
    check = started.json()
    assert check["last4"] == "0018" and "*" in check["masked_phone"]
    done = client.post(
        f"/api/v1/funding/bank-cards/checks/{check['id']}/confirm",
        headers=auth,
        json={"code": bank_code(client)},
    )
    assert done.status_code == 200, done.text
    body: dict[str, object] = done.json()
    return body


def test_an_unverified_person_is_verified_by_bank_card(client: TestClient) -> None:
    auth = bearer(api_sign_up(client)["token"])
    bound = bind(client, auth)
    assert bound["last4"] == "0018" and "Industrial and Commercial" in str(bound["bank_name"])
    level = client.get("/api/v1/me/level", headers=auth).json()
    assert (level["level"], level["tier"], level["has_bank_card"]) == (
        "bank_card",
        "class_ii",
        True,
    )
    cards = client.get("/api/v1/funding/bank-cards", headers=auth).json()
    assert [c["last4"] for c in cards] == ["0018"]
    # The whole number is nowhere in the database.
    db: Database = client.app.state.db  # type: ignore[attr-defined]
    digits = ICBC.replace(" ", "")
    with db.engine.connect() as connection:
        rows = [*connection.execute(select(BankCard.__table__)).all()]
        rows += connection.execute(select(BankCardCheck.__table__)).all()
    assert rows and all(digits not in str(row) for row in rows)
    again = client.post("/api/v1/funding/bank-cards/checks", headers=auth, json=card())
    code = bank_code(client)
    twice = client.post(
        f"/api/v1/funding/bank-cards/checks/{again.json()['id']}/confirm",
        headers=auth,
        json={"code": code},
    )
    assert twice.status_code == 409 and twice.json()["code"] == "card.already_bound"


def test_the_bank_s_refusals_reach_the_person(client: TestClient) -> None:
    auth = bearer(api_sign_up(client)["token"])
    mismatch = client.post(
        "/api/v1/funding/bank-cards/checks",
        headers={**auth, "Accept-Language": "zh-CN"},
        json=card(
            NAME_MISMATCH,
            holder_name="EMMA BROWNE",
            passport_number="533000003",
            reserved_phone="+447700900003",
        ),
    )
    assert mismatch.status_code == 422 and mismatch.json()["code"] == "bank.name_mismatch"
    assert re.search(r"[\u4e00-\u9fff]", mismatch.json()["message"])
    slow = client.post(
        "/api/v1/funding/bank-cards/checks",
        headers=auth,
        json=card(
            TIMEOUT,
            holder_name="ANNA MUELLER",
            passport_number="C00000007",
            reserved_phone="+447700900007",
        ),
    )
    assert slow.status_code == 503 and slow.json()["code"] == "bank.timeout"
    assert int(slow.headers["retry-after"]) > 0
    visa = client.post(
        "/api/v1/funding/bank-cards/checks", headers=auth, json=card("4111 1111 1111 1111")
    )
    assert visa.status_code == 422 and visa.json()["code"] == "card.not_unionpay"
    wrong_code = client.post("/api/v1/funding/bank-cards/checks", headers=auth, json=card())
    refused = client.post(
        f"/api/v1/funding/bank-cards/checks/{wrong_code.json()['id']}/confirm",
        headers=auth,
        json={"code": f"{(int(bank_code(client)) + 1) % 1_000_000:06d}"},
    )
    assert refused.status_code == 422 and refused.json()["code"] == "bank.code_wrong"
    level = client.get("/api/v1/me/level", headers=auth).json()
    assert level["tier"] == "unverified"


def test_checks_are_capped_per_day(client: TestClient) -> None:
    client.app.state.settings.bank_checks_per_day = 2  # type: ignore[attr-defined]
    auth = bearer(api_sign_up(client)["token"])
    for _ in range(2):
        assert (
            client.post("/api/v1/funding/bank-cards/checks", headers=auth, json=card()).status_code
            == 201
        )
    capped = client.post("/api/v1/funding/bank-cards/checks", headers=auth, json=card())
    assert capped.status_code == 429 and capped.json()["code"] == "bank.too_many_checks"


def verify_as_john(db: Database, user_id: uuid.UUID, monkeypatch: pytest.MonkeyPatch) -> None:
    """Verify by passport and face with a passport issued to JOHN SMITH, 912345678."""
    monkeypatch.setattr(liveness, "new_challenge", lambda rng=None: CHALLENGE)
    accept_synthetic_clips(db.settings)
    john = PassportData(
        "SMITH", "JOHN", "GBR", "912345678", date(1990, 5, 17), "M", date(2031, 4, 1)
    )
    mrz = parse_td3(*john.lines(), today=TODAY)
    case = db.run(lambda tx: verification.start_case(tx, user_id))
    db.run(lambda tx: verification.record_page(tx, user_id, case.id, _reading_for(7, mrz)))
    db.run(lambda tx: verification.confirm_document(tx, user_id, case.id))
    db.run(lambda tx: verification.issue_challenge(tx, user_id, case.id))
    assert verification.submit_face(db, user_id, case.id, clip("astronaut")).status == "verified"


def test_a_passport_plus_a_bank_card_is_class_iii(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    db: Database = client.app.state.db  # type: ignore[attr-defined]
    auth = bearer(api_sign_up(client)["token"])
    user_id = uuid.UUID(client.get("/api/v1/me", headers=auth).json()["id"])
    verify_as_john(db, user_id, monkeypatch)
    assert db.run(lambda tx: standing(tx, user_id)).tier == "class_ii"
    someone_else = client.post(
        "/api/v1/funding/bank-cards/checks",
        headers=auth,
        json=card(holder_name="JANE SMITH"),
    )
    assert someone_else.status_code == 422
    assert someone_else.json()["code"] == "card.holder_mismatch"
    # The passport says SMITH JOHN; the bank holds JOHN SMITH: either order is the person.
    bind(client, auth, holder_name="JOHN SMITH")
    found = db.run(lambda tx: standing(tx, user_id))
    assert (found.level, found.tier) == ("passport_face", "class_iii")
    assert found.rights.wealth_products


def test_the_pages_add_a_card(client: TestClient) -> None:
    sign_up_by_form(client)
    token = csrf(client, "/me/verify/bank-card")
    sent = client.post("/me/verify/bank-card", data={"csrf": token, **card()})
    assert 'data-testid="bank-check"' in sent.text
    check_id = re.search(r"/me/verify/bank-card/([0-9a-f-]+)/confirm", sent.text)
    assert check_id
    done = client.post(
        f"/me/verify/bank-card/{check_id.group(1)}/confirm",
        data={"csrf": token, "code": bank_code(client)},
    )
    assert done.url.path == "/me/level"
    assert 'data-tier="class_ii"' in done.text


def test_the_bank_card_route_texts_its_success_like_the_passport_route(
    client: TestClient,
) -> None:
    signed = api_sign_up(client)
    bind(client, bearer(signed["token"]))
    texts = client.get("/api/v1/demo/outbox", params={"phone": "+447911123456"}).json()
    assert texts[0]["body"] == (
        "[Qianbao] Your real-name verification was successful. Your account is now verified."
    )


def test_the_wallet_lists_bound_bank_cards_where_the_unionpay_advice_points(
    client: TestClient,
) -> None:
    sign_up_by_form(client)
    before = client.get("/wallet").text
    assert 'id="bank-cards"' in before and "No bank card yet." in before
    token = csrf(client, "/me/verify/bank-card")
    sent = client.post("/me/verify/bank-card", data={"csrf": token, **card()})
    check_id = re.search(r"/me/verify/bank-card/([0-9a-f-]+)/confirm", sent.text)
    assert check_id
    client.post(
        f"/me/verify/bank-card/{check_id.group(1)}/confirm",
        data={"csrf": token, "code": bank_code(client)},
    )
    wallet = client.get("/wallet").text
    listed = wallet.split('data-testid="bank-cards"')[1].split("</ul>")[0]
    assert "0018" in listed and "No bank card yet." not in wallet
    # A UnionPay number on the foreign-card form: the refusal names Bank cards, and the
    # form links to that section of the wallet.
    form = client.get("/wallet/cards/new").text
    assert 'href="/wallet#bank-cards"' in form
    refused = client.post(
        "/wallet/cards",
        data={
            "csrf": csrf(client, "/wallet/cards/new"),
            "number": ICBC,
            "expiry": "08/29",
            "cvv": "123",
            "holder_name": "JOHN SMITH",
        },
    )
    assert 'data-code="card.brand_unknown"' in refused.text and "Bank cards" in refused.text
