"""Restrictions and freezes: the risk rules that impose them, what they stop, the
appeal with documents, and the reviewer who lifts or keeps them."""

from __future__ import annotations

import io
import re
import uuid
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from qianbao.clock import FrozenClock
from qianbao.db import Database
from qianbao.errors import QianbaoError
from qianbao.identity import staff
from qianbao.notify import service as notify
from qianbao.risk import restrictions
from qianbao.wallet.payments import refunds
from qianbao.wallet.payments import service as payments
from tests.verification.flow_helpers import new_person
from tests.wallet.test_payments import (
    PIN,
    VISA_USD,
    add_card,
    buyer,
    cny,
    fund,
    order,
    verify,
)
from tests.web.test_pages import csrf, sign_up_by_form


def refused(attempt: Callable[[], object]) -> QianbaoError:
    with pytest.raises(QianbaoError) as caught:
        attempt()
    return caught.value


@pytest.fixture
def shop(db: Database) -> uuid.UUID:
    return db.run(lambda tx: payments.create_merchant(tx, "Demo Shop"))


def photo() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (640, 480), (200, 180, 160)).save(buffer, "JPEG")
    return buffer.getvalue()


def test_paying_by_card_too_fast_while_unverified_restricts_the_account(
    db: Database, clock: FrozenClock, shop: uuid.UUID
) -> None:
    db.settings.risk_card_velocity_payments = 3
    user = buyer(db, clock)
    card = add_card(db, user)
    for number in ("A1", "A2", "A3"):
        payments.pay_with_card(db, user, order(db, shop, "10.00", number), card, PIN)
    found = db.run(lambda tx: restrictions.active(tx, user))
    assert found is not None and (found.kind, found.reason) == ("restricted", "card_velocity")
    blocked = refused(
        lambda: payments.pay_with_card(db, user, order(db, shop, "10.00", "A4"), card, PIN)
    )
    assert blocked.code == "account.restricted" and blocked.status == 403
    messages = db.run(lambda tx: notify.read_outbox(tx, "+447911123456", 5))
    assert any("restricted" in m.body for m in messages)


def test_one_card_on_several_accounts_restricts_the_newest(
    db: Database, clock: FrozenClock
) -> None:
    db.settings.risk_shared_card_accounts = 2
    first = buyer(db, clock)
    add_card(db, first, VISA_USD)
    second = new_person(db, "07400 123456").id
    add_card(db, second, VISA_USD)
    assert db.run(lambda tx: restrictions.active(tx, first)) is None
    found = db.run(lambda tx: restrictions.active(tx, second))
    assert found is not None and found.reason == "shared_card"


def test_a_frozen_account_moves_no_money_and_refunds_to_it_are_held(
    db: Database, clock: FrozenClock, shop: uuid.UUID
) -> None:
    user = buyer(db, clock)
    verify(db, user)
    fund(db, user, "100")
    paid = order(db, shop, "40.00")
    payments.pay_with_balance(db, user, paid, PIN)
    reviewer = staff.create_staff(db, "rita", "Rita", "a long reviewer passphrase")
    db.run(
        lambda tx: restrictions.impose(
            tx, user, "frozen", "reviewer", imposed_by=f"staff:{reviewer.id}", note="checking"
        )
    )
    assert (
        refused(
            lambda: payments.pay_with_balance(db, user, order(db, shop, "5.00", "B1"), PIN)
        ).code
        == "account.frozen"
    )
    refunds.refund(db, shop, paid, "R1", cny("40.00"))
    view = db.run(lambda tx: payments.wallet(tx, user))
    assert view.held == cny("40.00") and view.balance == cny("60.00")


def test_an_appeal_reaches_a_reviewer_who_lifts_the_restriction(
    db: Database, clock: FrozenClock, shop: uuid.UUID
) -> None:
    user = buyer(db, clock)
    reviewer = staff.create_staff(db, "rita", "Rita", "a long reviewer passphrase")
    assert refused(lambda: restrictions.appeal(db, user, {"passport_page": photo()}, "")).code == (
        "appeal.nothing"
    )
    db.run(
        lambda tx: restrictions.impose(tx, user, "restricted", "shared_card", imposed_by="rule:x")
    )
    bad = refused(lambda: restrictions.appeal(db, user, {"passport_page": b"%PDF-1.4"}, ""))
    assert bad.code == "image.not_image"
    appeal_id = restrictions.appeal(
        db,
        user,
        {"passport_page": photo(), "selfie_with_passport": photo(), "card_statement": photo()},
        "This is my own card; my partner used it once.",
    )
    again = refused(lambda: restrictions.appeal(db, user, {"passport_page": photo()}, ""))
    assert again.code == "appeal.pending"
    queue = db.run(restrictions.pending_appeals)
    assert [item.id for item in queue] == [appeal_id]
    document_id = queue[0].documents[0][0]
    opened = db.run(lambda tx: restrictions.appeal_document(tx, appeal_id, document_id))
    assert opened.startswith(b"\xff\xd8")
    assert (
        refused(
            lambda: db.run(
                lambda tx: restrictions.decide_appeal(tx, appeal_id, reviewer.id, True, "")
            )
        ).code
        == "appeal.note_required"
    )
    db.run(lambda tx: restrictions.decide_appeal(tx, appeal_id, reviewer.id, True, "card is hers"))
    assert db.run(lambda tx: restrictions.active(tx, user)) is None
    card = add_card(db, user)
    assert not isinstance(
        payments.pay_with_card(db, user, order(db, shop, "12.00"), card, PIN), str
    )


def test_the_pages_show_the_restriction_and_take_the_appeal(client: TestClient) -> None:
    db = client.app.state.db  # type: ignore[attr-defined]
    sign_up_by_form(client)
    staff.create_staff(db, "rita", "Rita", "a long reviewer passphrase", "risk_officer")
    reviewer = TestClient(client.app, base_url="http://127.0.0.1")
    admin_token = csrf(reviewer, "/admin/login")
    reviewer.post(
        "/admin/login",
        data={"csrf": admin_token, "username": "rita", "password": "a long reviewer passphrase"},
    )
    no_note = reviewer.post(
        "/admin/restrictions",
        data={"csrf": admin_token, "phone": "+44 7911 123456", "kind": "frozen", "note": ""},
    )
    assert no_note.status_code == 422
    reviewer.post(
        "/admin/restrictions",
        data={"csrf": admin_token, "phone": "+44 7911 123456", "kind": "frozen", "note": "check"},
    )
    wallet = client.get("/wallet")
    assert 'data-testid="restriction" data-kind="frozen"' in wallet.text
    token = csrf(client, "/wallet/appeal")
    sent = client.post(
        "/wallet/appeal",
        data={"csrf": token, "message": "It is my card."},
        files={"passport_page": ("page.jpg", photo(), "image/jpeg")},
    )
    assert sent.url.path == "/wallet" and "being checked" in sent.text
    queue = reviewer.get("/admin/appeals")
    found = re.search(r"/admin/appeals/([0-9a-f-]{36})", queue.text)
    assert found
    appeal_page = reviewer.get(f"/admin/appeals/{found.group(1)}")
    image = re.search(r'src="(/admin/appeals/[^"]+/documents/[^"]+)"', appeal_page.text)
    assert image and reviewer.get(image.group(1)).content.startswith(b"\xff\xd8")
    not_for_customers = client.get(image.group(1))  # sent to the staff's sign-in instead
    assert (
        not_for_customers.url.path == "/admin/login"
        and b"\xff\xd8" not in not_for_customers.content
    )
    reviewer.post(
        f"/admin/appeals/{found.group(1)}/decision",
        data={"csrf": admin_token, "decision": "lift", "note": "documents match"},
    )
    assert 'data-testid="restriction"' not in client.get("/wallet").text
