"""Pay-for-me (代付): a friend pays someone else's order through a link. The link's time
(never past the order's), the friend's own sources, rights and limits, who is told, where
refunds go, and the states a link says (expired, already paid, closed, unknown, one's own),
in English and Chinese; two friends racing for one link. On SQLite and PostgreSQL."""

from __future__ import annotations

import random
import re
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from qianbao import jobs
from qianbao.clock import FrozenClock
from qianbao.db import Database
from qianbao.errors import QianbaoError
from qianbao.funding import connectors
from qianbao.i18n import language_scope, translate
from qianbao.identity import security
from qianbao.identity import service as identity
from qianbao.identity.models import User
from qianbao.identity.phone import parse_mobile
from qianbao.notify.service import read_outbox, signed_sms
from qianbao.wallet import limits
from qianbao.wallet.ledger import audit as ledger_audit
from qianbao.wallet.ledger import service as ledger
from qianbao.wallet.pay_for_me import service as pay_for_me
from qianbao.wallet.pay_for_me.service import Source
from qianbao.wallet.payments import refunds
from qianbao.wallet.payments import service as payments
from tests.helpers import HOME, last_code
from tests.verification.flow_helpers import new_person
from tests.wallet.test_payments import PIN, add_card, cny, fund, refused, verify

ASKER = "07911 123456"
FRIEND = "07912 345678"
OTHER_FRIEND = "07911 222333"
BALANCE = Source("balance")


def person(db: Database, clock: FrozenClock, number: str) -> uuid.UUID:
    """Someone signed up, with a payment password."""
    account = new_person(db, number)
    clock.advance(seconds=61)  # past the sign-up code's resend cooldown
    security.send_security_code(db, account.id, HOME, "en")
    security.set_payment_password(db, account.id, PIN, sms_code=last_code(db, account.phone))
    return account.id


def verified_friend(db: Database, clock: FrozenClock, number: str, money: str) -> uuid.UUID:
    friend = person(db, clock, number)
    verify(db, friend)
    fund(db, friend, money)
    return friend


@pytest.fixture
def shop(db: Database) -> uuid.UUID:
    return db.run(lambda tx: payments.create_merchant(tx, "Tea House"))


def new_order(
    db: Database, shop: uuid.UUID, amount: str, timeout: timedelta = timedelta(minutes=15)
) -> uuid.UUID:
    number = f"T{uuid.uuid4().hex[:12]}"
    return db.run(
        lambda tx: payments.create_order(tx, shop, number, "Tea", cny(amount), timeout)
    ).id


def ask(db: Database, asker: uuid.UUID, order_id: uuid.UUID) -> pay_for_me.NewLink:
    return db.run(lambda tx: pay_for_me.ask_a_friend(tx, asker, order_id))


def read(db: Database, viewer: uuid.UUID, token: str) -> pay_for_me.LinkView:
    return db.run(lambda tx: pay_for_me.open_link(tx, viewer, token))


def paid(outcome: pay_for_me.LinkView | str) -> pay_for_me.LinkView:
    assert not isinstance(outcome, str)
    return outcome


def paid_messages(db: Database) -> list[str]:
    """The "a friend paid" SMS the asker got (not the codes)."""
    messages = db.run(lambda tx: read_outbox(tx, "+447911123456", 100))
    return [m.body for m in messages if "for you" in m.body]


def in_language(message: str, language: str, params: dict[str, str] | None = None) -> str:
    with language_scope("zh_Hans" if language == "zh_Hans" else "en"):
        return translate(message, params)


def sms_in_language(message: str, language: str, params: dict[str, str] | None = None) -> str:
    """An SMS as sent: the translated text under the language's one signature."""
    return signed_sms(in_language(message, language, params), language)


def test_a_friend_pays_with_their_balance_and_the_asker_is_told(
    db: Database, clock: FrozenClock, shop: uuid.UUID
) -> None:
    asker = person(db, clock, ASKER)
    friend = verified_friend(db, clock, FRIEND, "100")
    order_id = new_order(db, shop, "60.00")
    link = ask(db, asker, order_id)
    assert link.path == f"/pay-for-me/{link.token}" and len(link.token) >= 32

    seen = read(db, friend, link.token)
    assert (seen.state, seen.viewer_is_asker) == ("open", False)
    assert (seen.order.merchant, seen.order.amount) == ("Tea House", cny("60.00"))
    assert seen.asker == "+44 ******3456"  # masked: the friend recognises, no more
    _, cashier = db.run(lambda tx: pay_for_me.friend_cashier(tx, friend, link.token))
    assert cashier is not None and cashier.can_use_balance and cashier.balance == cny("100.00")

    done = paid(pay_for_me.pay(db, friend, link.token, BALANCE, PIN))
    assert done.state == "paid" and done.paid_by == "+44 ******5678"
    order = db.run(lambda tx: payments.get_order(tx, order_id))
    assert (order.status, order.buyer_id, order.payer_id) == ("TRADE_SUCCESS", asker, friend)
    assert db.run(lambda tx: payments.wallet(tx, friend)).balance == cny("40.00")

    # The asker sees it paid, is told by SMS in their own language, and finds it in
    # their history; the friend finds it in theirs as a payment for someone.
    assert read(db, asker, link.token).state == "paid"
    sms = db.run(lambda tx: read_outbox(tx, "+447911123456", 1))[0].body
    assert sms == sms_in_language(
        pay_for_me._PAID_SMS,
        "en",
        {"friend": "+44 ******5678", "amount": cny("60.00").format(), "merchant": "Tea House"},
    )
    for viewer, role, who in (
        (asker, "paid_by_friend", "+44 ******5678"),
        (friend, "paid_for_friend", "+44 ******3456"),
    ):
        rows = db.run(lambda tx, v=viewer: payments.user_orders(tx, v))
        assert [row.id for row in rows] == [order_id]
        notes = db.run(lambda tx, v=viewer, r=rows: pay_for_me.friend_notes(tx, v, r))
        assert (notes[order_id].role, notes[order_id].who) == (role, who)

    # The friend's limits count the payment; the asker's do not.
    for user, used in ((friend, cny("60.00")), (asker, cny("0"))):
        rights = db.run(lambda tx, u=user: payments.standing(tx, u).rights)
        usage = db.run(lambda tx, u=user, r=rights: limits.limit_usage(tx, u, r))
        assert usage["balance_per_day"] == used


def test_the_sms_to_the_asker_is_in_the_asker_s_language(
    db: Database, clock: FrozenClock, shop: uuid.UUID
) -> None:
    asker = person(db, clock, ASKER)
    db.run(lambda tx: identity.set_language(tx, asker, "zh_Hans"))
    friend = verified_friend(db, clock, FRIEND, "100")
    link = ask(db, asker, new_order(db, shop, "10.00"))
    pay_for_me.pay(db, friend, link.token, BALANCE, PIN)
    sms = db.run(lambda tx: read_outbox(tx, "+447911123456", 1))[0]
    params = {"friend": "+44 ******5678", "amount": cny("10.00").format(), "merchant": "Tea House"}
    assert sms.body == sms_in_language(pay_for_me._PAID_SMS, "zh_Hans", params)


def test_the_order_stays_payable_while_its_link_lives_up_to_the_maximum(
    db: Database, clock: FrozenClock, shop: uuid.UUID
) -> None:
    asker = person(db, clock, ASKER)
    friend = verified_friend(db, clock, FRIEND, "100")
    db.settings.pay_for_me_link_hours = 6
    quick = new_order(db, shop, "10.00")  # the shop's own timeout: 15 minutes
    link = ask(db, asker, quick)
    assert link.expires_at == clock.now() + timedelta(hours=6)
    assert db.run(lambda tx: payments.get_order(tx, quick)).expires_at == link.expires_at

    # An hour later (the shop's 15 minutes long gone) the worker leaves the order open
    # and the friend pays through the link.
    clock.advance(hours=1)
    assert db.run(payments.close_expired_orders) == 0
    assert read(db, friend, link.token).state == "open"
    assert paid(pay_for_me.pay(db, friend, link.token, BALANCE, PIN)).state == "paid"

    # Links keep an order open at most pay_for_me_order_max_hours after it was made.
    db.settings.pay_for_me_order_max_hours = 8
    capped = new_order(db, shop, "10.00")
    made = clock.now()
    first = ask(db, asker, capped)
    clock.advance(hours=5)
    second = ask(db, asker, capped)  # 5 h later: 6 more hours would pass the maximum
    assert (first.expires_at, second.expires_at) == (
        made + timedelta(hours=6),
        made + timedelta(hours=8),
    )
    clock.advance(hours=3)  # 8 h after the order was made
    assert read(db, friend, second.token).state == "order_closed"  # before the worker runs
    error = refused(lambda: pay_for_me.pay(db, friend, second.token, BALANCE, PIN))
    assert error.code == "pay_for_me.order_closed"
    assert db.run(payments.close_expired_orders) == 1

    # An order the shop gave longer than any link keeps its own time; the link ends.
    slow = new_order(db, shop, "10.00", timeout=timedelta(days=3))
    long_link = ask(db, asker, slow)
    assert long_link.expires_at == clock.now() + timedelta(hours=6)
    clock.advance(hours=6)
    assert read(db, friend, long_link.token).state == "expired"  # before the worker runs
    expired = refused(lambda: pay_for_me.pay(db, friend, long_link.token, BALANCE, PIN))
    assert (expired.code, expired.status) == ("pay_for_me.expired", 409)
    assert jobs.expire_pay_for_me_links(db) >= 1
    assert jobs.expire_pay_for_me_links(db) == 0  # each once
    assert db.run(lambda tx: payments.get_order(tx, slow)).status == "WAIT_BUYER_PAY"
    assert db.run(lambda tx: payments.wallet(tx, friend)).balance == cny("90.00")


@pytest.mark.parametrize("language", ["en", "zh_Hans"])
def test_unknown_own_paid_and_closed_links_each_say_so(
    db: Database, clock: FrozenClock, shop: uuid.UUID, language: str
) -> None:
    asker = person(db, clock, ASKER)
    friend = verified_friend(db, clock, FRIEND, "100")
    verify(db, asker)
    fund(db, asker, "100")

    def message(error: QianbaoError) -> str:
        with language_scope("zh_Hans" if language == "zh_Hans" else "en"):
            return error.localized_message()

    unknown = refused(lambda: read(db, friend, "x" * 43))
    assert unknown.code == "pay_for_me.unknown" and unknown.status == 404
    assert message(unknown) == in_language(pay_for_me._UNKNOWN, language)

    order_id = new_order(db, shop, "30.00")
    link = ask(db, asker, order_id)
    own = refused(lambda: pay_for_me.pay(db, asker, link.token, BALANCE, PIN))
    assert own.code == "pay_for_me.own_link"
    assert message(own) == in_language(pay_for_me.OWN_LINK, language)
    assert read(db, asker, link.token).viewer_is_asker

    # The asker pays it at the cashier after all: the link says "already paid".
    payments.pay_with_balance(db, asker, order_id, PIN)
    assert read(db, friend, link.token).state == "already_paid"
    late = refused(lambda: pay_for_me.pay(db, friend, link.token, BALANCE, PIN))
    assert late.code == "pay_for_me.already_paid"
    assert message(late) == in_language("This order is already paid.", language)
    if language == "zh_Hans":  # a message the catalog has had since the cashier
        assert re.search(r"[\u4e00-\u9fff]", message(late))
    again = refused(lambda: ask(db, asker, order_id))
    assert again.code == "pay_for_me.not_payable"
    assert db.run(lambda tx: payments.wallet(tx, friend)).balance == cny("100.00")

    # The shop closes an order: its link says so.
    closing = new_order(db, shop, "30.00")
    closed_link = ask(db, asker, closing)
    clock.advance(hours=db.settings.pay_for_me_link_hours, minutes=1)  # the link kept it open
    db.run(payments.close_expired_orders)
    assert read(db, friend, closed_link.token).state == "order_closed"
    closed = refused(lambda: pay_for_me.pay(db, friend, closed_link.token, BALANCE, PIN))
    assert closed.code == "pay_for_me.order_closed"
    assert message(closed) == in_language(pay_for_me.REFUSALS["order_closed"][1], language)


def test_the_friend_s_level_and_limits_decide_as_at_the_cashier(
    db: Database, clock: FrozenClock, shop: uuid.UUID
) -> None:
    asker = person(db, clock, ASKER)
    verify(db, asker)  # the asker's own level does not let an unverified friend use balance
    friend = person(db, clock, FRIEND)  # not verified: no balance, cards within a cap
    fund(db, friend, "100")
    link = ask(db, asker, new_order(db, shop, "50.00"))
    _, cashier = db.run(lambda tx: pay_for_me.friend_cashier(tx, friend, link.token))
    assert cashier is not None and not cashier.can_use_balance and cashier.balance_refusal
    balance = refused(lambda: pay_for_me.pay(db, friend, link.token, BALANCE, PIN))
    assert balance.code == "policy.balance_not_allowed"
    wrong = refused(lambda: pay_for_me.pay(db, friend, link.token, BALANCE, "111112"))
    assert wrong.code.startswith("paypw.")  # the friend's own payment password
    card = add_card(db, friend)
    done = paid(pay_for_me.pay(db, friend, link.token, Source("foreign_card", card), PIN))
    assert done.state == "paid" and done.order.source == "foreign_card"

    # A verified friend is held to their own daily balance limit (CNY 5,000 a day).
    rich = verified_friend(db, clock, OTHER_FRIEND, "6000")
    first = ask(db, asker, new_order(db, shop, "4990.00"))
    pay_for_me.pay(db, rich, first.token, BALANCE, PIN)
    second = ask(db, asker, new_order(db, shop, "20.00"))
    over = refused(lambda: pay_for_me.pay(db, rich, second.token, BALANCE, PIN))
    assert over.code == "policy.balance_day_limit"
    assert read(db, rich, second.token).state == "open"  # nothing half-written


def test_refunds_go_back_to_the_friend_the_way_they_paid(
    db: Database, clock: FrozenClock, shop: uuid.UUID
) -> None:
    asker = person(db, clock, ASKER)
    verify(db, asker)
    friend = verified_friend(db, clock, FRIEND, "100")
    by_balance = ask(db, asker, new_order(db, shop, "80.00"))
    pay_for_me.pay(db, friend, by_balance.token, BALANCE, PIN)
    refund = refunds.refund(db, shop, by_balance.order.id, "R1", cny("30.00"))
    assert refund.destination == "balance"
    assert db.run(lambda tx: payments.wallet(tx, friend)).balance == cny("50.00")
    assert db.run(lambda tx: payments.wallet(tx, asker)).balance == cny("0.00")

    card = add_card(db, friend)
    by_card = ask(db, asker, new_order(db, shop, "300.00"))
    pay_for_me.pay(db, friend, by_card.token, Source("foreign_card", card), PIN)
    back = refunds.refund(db, shop, by_card.order.id, "R1", cny("300.00"))
    assert back.destination == "foreign_card" and back.fee_refunded == cny("9.00")
    assert db.run(lambda tx: payments.wallet(tx, asker)).balance == cny("0.00")
    assert db.run(ledger_audit.audit).sound


def test_a_retry_of_a_done_payment_charges_nothing_twice(
    db: Database, clock: FrozenClock, shop: uuid.UUID
) -> None:
    asker = person(db, clock, ASKER)
    friend = verified_friend(db, clock, FRIEND, "100")
    link = ask(db, asker, new_order(db, shop, "25.00"))
    first = paid(pay_for_me.pay(db, friend, link.token, BALANCE, PIN))
    again = paid(pay_for_me.pay(db, friend, link.token, BALANCE, PIN))
    assert first.state == again.state == "paid"
    assert db.run(lambda tx: payments.wallet(tx, friend)).balance == cny("75.00")
    assert len(paid_messages(db)) == 1


def test_two_friends_racing_for_links_one_pays_each_and_no_money_is_made_or_lost(
    db: Database, clock: FrozenClock, shop: uuid.UUID
) -> None:
    """Two friends (and retries of each) pay the same links at once: every order is paid
    exactly once, the loser is told it is already paid, and the ledger balances."""
    asker = person(db, clock, ASKER)
    friends = [
        verified_friend(db, clock, FRIEND, "1000"),
        verified_friend(db, clock, OTHER_FRIEND, "1000"),
    ]
    links = [ask(db, asker, new_order(db, shop, f"{n + 1}.00")) for n in range(12)]

    def attempt(args: tuple[int, int]) -> tuple[uuid.UUID, uuid.UUID, str]:
        link_index, friend_index = args
        link, friend = links[link_index], friends[friend_index]
        try:
            pay_for_me.pay(db, friend, link.token, BALANCE, PIN)
        except QianbaoError as error:
            return link.order.id, friend, error.code
        return link.order.id, friend, "paid"

    tries = [(n, f) for n in range(len(links)) for f in (0, 1, 0, 1)]  # each twice
    random.Random(7).shuffle(tries)
    with ThreadPoolExecutor(max_workers=6) as pool:
        outcomes = list(pool.map(attempt, tries))

    assert {code for _, _, code in outcomes} <= {"paid", "pay_for_me.already_paid"}
    total = 0
    for link in links:
        order = db.run(lambda tx, o=link.order.id: payments.get_order(tx, o))
        assert order.status == "TRADE_SUCCESS" and order.buyer_id == asker
        winners = {f for o, f, code in outcomes if o == link.order.id and code == "paid"}
        assert winners == {order.payer_id}  # only the payer was told "paid"
        assert read(db, asker, link.token).state == "paid"
        total += order.amount.minor
    spent = sum(
        1000_00 - db.run(lambda tx, f=f: payments.wallet(tx, f)).balance.minor for f in friends
    )
    assert spent == total  # what left the friends is what the orders cost, once
    merchant = db.run(lambda tx: payments.account_of_merchant(tx, shop))
    assert db.run(lambda tx: ledger.balance(tx, merchant)).posted == total
    audit = db.run(ledger_audit.audit)
    assert audit.sound, audit
    assert len(paid_messages(db)) == len(links)  # one "paid" SMS per order


# --- over HTTP ---------------------------------------------------------------------------


def log_in_by_form(client: TestClient, db: Database, number: str) -> None:
    phone = parse_mobile(number, "GB")
    token = client.get("/").text.split('name="csrf" value="')[1].split('"')[0]
    started = client.post("/start", data={"csrf": token, "country": "GB", "number": number})
    assert started.url.path == "/code", started.text[:300]
    code = last_code(db, phone)
    client.post(
        "/code", data={"csrf": token, "phone": phone.e164, "purpose": "login", "code": code}
    )


def test_the_pages_ask_a_friend_then_the_friend_logs_in_and_pays(
    client: TestClient, clock: FrozenClock
) -> None:
    db: Database = client.app.state.db  # type: ignore[attr-defined]
    asker = person(db, clock, ASKER)
    friend = verified_friend(db, clock, FRIEND, "100")
    shop = payments.demo_merchant(db)
    order_id = new_order(db, shop, "42.00")

    clock.advance(seconds=61)
    log_in_by_form(client, db, ASKER)
    cashier = client.get(f"/cashier/{order_id}")
    assert f'action="/cashier/{order_id}/pay-for-me"' in cashier.text
    token = cashier.text.split('name="csrf" value="')[1].split('"')[0]
    shared = client.post(f"/cashier/{order_id}/pay-for-me", data={"csrf": token})
    assert shared.status_code == 200 and shared.headers["cache-control"] == "no-store"
    assert "<svg" in shared.text and 'data-testid="pay-for-me-qr"' in shared.text
    # The link is under the public address (QIANBAO_PUBLIC_BASE_URL), not the Host header.
    public = db.settings.public_base_url.rstrip("/")
    found = re.search(f'value="({re.escape(public)}/pay-for-me/[A-Za-z0-9_-]+)"', shared.text)
    assert found, shared.text
    path = found.group(1).removeprefix(public)
    own = client.get(path)
    assert 'data-code="pay_for_me.own_link"' in own.text

    friend_client = TestClient(client.app, base_url="http://127.0.0.1")
    with friend_client:
        signed_out = friend_client.get(path, follow_redirects=False)
        assert signed_out.status_code == 303 and signed_out.headers["location"] == "/"
        log_in_by_form(friend_client, db, FRIEND)  # lands back on the link
        page = friend_client.get(path)
        assert page.status_code == 200 and 'data-state="open"' in page.text
        assert "+44 ******3456" in page.text and "CNY" in page.text
        token = page.text.split('name="csrf" value="')[1].split('"')[0]
        done = friend_client.post(
            path, data={"csrf": token, "source": "balance", "payment_password": PIN}
        )
        assert 'data-state="paid"' in done.text and 'data-testid="paid-by"' in done.text
        history = friend_client.get("/wallet/history")
        assert 'data-testid="friend-note"' in history.text and "+44 ******3456" in history.text

    assert 'data-state="paid"' in client.get(path).text
    detail = client.get(f"/wallet/payments/{order_id}")
    assert 'data-testid="friend-note"' in detail.text and "+44 ******5678" in detail.text
    order = db.run(lambda tx: payments.get_order(tx, order_id))
    assert (order.buyer_id, order.payer_id) == (asker, friend)


def test_a_link_page_logs_the_friend_in_and_comes_back(
    client: TestClient, clock: FrozenClock
) -> None:
    db: Database = client.app.state.db  # type: ignore[attr-defined]
    asker = person(db, clock, ASKER)
    person(db, clock, FRIEND)
    link = ask(db, asker, new_order(db, payments.demo_merchant(db), "5.00"))
    assert client.get(link.path, follow_redirects=False).status_code == 303
    clock.advance(seconds=61)
    log_in_by_form(client, db, FRIEND)
    # The login's own redirect went back to the link (once), not to /home.
    assert client.get("/home", follow_redirects=False).status_code == 200
    page = client.get(link.path)
    assert 'data-testid="pay-for-me"' in page.text


@pytest.mark.parametrize("language", ["en", "zh-CN"])
def test_the_api_asks_reads_and_pays_with_localized_refusals(
    client: TestClient, clock: FrozenClock, language: str
) -> None:
    db: Database = client.app.state.db  # type: ignore[attr-defined]
    asker = person(db, clock, ASKER)
    friend = verified_friend(db, clock, FRIEND, "100")
    order_id = new_order(db, payments.demo_merchant(db), "12.50")
    tokens = {
        user: db.run(
            lambda tx, u=user: identity.open_session(tx, tx.session.get_one(User, u), HOME, "api")[
                0
            ]
        )
        for user in (asker, friend)
    }
    lang = {"Accept-Language": language}
    auth = {user: {"Authorization": f"Bearer {token}", **lang} for user, token in tokens.items()}

    made = client.post(f"/api/v1/orders/{order_id}/pay-for-me", headers=auth[asker])
    assert made.status_code == 201, made.text
    url = made.json()["url"]
    token = url.rsplit("/", 1)[1]
    public = db.settings.public_base_url.rstrip("/")  # never the request's Host header
    assert "token" not in made.json() and url.startswith(public + "/pay-for-me/")
    seen = client.get(f"/api/v1/pay-for-me/{token}", headers=auth[friend]).json()
    assert seen["link"]["state"] == "open" and seen["link"]["asker"] == "+44 ******3456"
    assert seen["cashier"]["balance"] == {"currency": "CNY", "value": "100.00"}
    own = client.post(
        f"/api/v1/pay-for-me/{token}/pay",
        headers=auth[asker],
        json={"source": "balance", "payment_password": PIN},
    )
    expected = "zh_Hans" if language == "zh-CN" else "en"
    assert own.status_code == 409 and own.json()["code"] == "pay_for_me.own_link"
    assert own.json()["message"] == in_language(pay_for_me.OWN_LINK, expected)
    done = client.post(
        f"/api/v1/pay-for-me/{token}/pay",
        headers=auth[friend],
        json={"source": "balance", "payment_password": PIN},
    )
    assert done.status_code == 200, done.text
    assert done.json()["link"]["state"] == "paid"
    mine = client.get(f"/api/v1/orders/{order_id}/pay-for-me", headers=auth[asker]).json()
    assert [(row["state"], row["paid_by"]) for row in mine] == [("paid", "+44 ******5678")]
    after = client.get(f"/api/v1/pay-for-me/{token}", headers=auth[friend]).json()
    assert after["cashier"] is None
    missing = client.get("/api/v1/pay-for-me/" + "y" * 43, headers=auth[friend])
    assert missing.status_code == 404
    assert missing.json()["message"] == in_language(pay_for_me._UNKNOWN, expected)
    signed_out = client.get(f"/api/v1/pay-for-me/{token}", headers=lang)
    assert signed_out.status_code == 401


def test_the_friend_pays_by_a_checked_card_or_a_mainland_bank_card(
    db: Database, clock: FrozenClock, shop: uuid.UUID
) -> None:
    from qianbao.funding import service as funding
    from tests.wallet.test_payments import add_checked_card

    asker = person(db, clock, ASKER)
    friend = person(db, clock, FRIEND)

    # A card whose issuer checks the payer (3-D Secure): the friend answers, then it pays.
    card = add_checked_card(db, friend)
    link = ask(db, asker, new_order(db, shop, "20.00"))
    challenge = pay_for_me.pay(
        db, friend, link.token, Source("foreign_card", card), PIN, challenge_return_url="/back"
    )
    assert isinstance(challenge, str) and "/sandbox/3ds/" in challenge
    assert read(db, friend, link.token).state == "open"  # nothing recorded yet
    connectors.network_for(db).complete_challenge(
        challenge.split("/sandbox/3ds/")[1].split("?")[0], "1234"
    )
    done = pay_for_me.finish_card(db, friend, link.token)
    assert done.state == "paid" and done.order.payer_id == friend

    # A mainland bank card: no fee; the refund goes back to that card.
    holder = funding.CardHolder(
        "6222 0200 0000 0000 018", "JOHN SMITH", "912345678", "+447911000001"
    )
    started = funding.start_check(db, friend, holder, None)
    text = db.run(lambda tx: read_outbox(tx, "+447911000001", 1))[0].body
    code = re.search(r"(?<!\d)(\d{6})(?!\d)", text)
    assert code
    bank_card = funding.confirm_check(db, friend, started.id, code.group(1))
    by_bank = ask(db, asker, new_order(db, shop, "300.00"))
    paid_by_bank = paid(
        pay_for_me.pay(db, friend, by_bank.token, Source("bank_card", bank_card.id), PIN)
    )
    assert (paid_by_bank.state, paid_by_bank.order.source) == ("paid", "bank_card")
    assert paid_by_bank.order.fee == cny("0")
    back = refunds.refund(db, shop, by_bank.order.id, "R1", cny("300.00"))
    assert back.destination == "bank_card"
    assert db.run(lambda tx: payments.wallet(tx, asker)).held == cny("0.00")
    assert db.run(ledger_audit.audit).sound


def test_a_card_captured_while_another_friend_paid_first_is_given_back(
    db: Database, clock: FrozenClock, shop: uuid.UUID, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race made certain: friend A's card is captured, then friend B pays the same
    link from their balance before A's payment is recorded. A is told it is already paid
    and the card gets the whole capture back; the order is paid once."""
    asker = person(db, clock, ASKER)
    card_friend = person(db, clock, FRIEND)
    card = add_card(db, card_friend)
    quicker = verified_friend(db, clock, OTHER_FRIEND, "500")
    link = ask(db, asker, new_order(db, shop, "300.00"))
    network = connectors.network_for(db)
    real_capture, real_refund = network.capture, network.refund
    refunds: list[tuple[str, int]] = []

    def capture_then_lose_the_race(authorization_id: str, amount: object = None) -> object:
        captured = real_capture(authorization_id)
        pay_for_me.pay(db, quicker, link.token, BALANCE, PIN)  # B is quicker
        return captured

    def spy_refund(capture_id: str, amount: object, **kwargs: object) -> object:
        done = real_refund(capture_id, amount, **kwargs)  # type: ignore[arg-type]
        refunds.append((capture_id, done.amount.minor))
        return done

    monkeypatch.setattr(network, "capture", capture_then_lose_the_race)
    monkeypatch.setattr(network, "refund", spy_refund)
    lost = refused(
        lambda: pay_for_me.pay(db, card_friend, link.token, Source("foreign_card", card), PIN)
    )
    assert lost.code == "pay_for_me.already_paid"
    assert len(refunds) == 1 and refunds[0][1] == 309_00  # the amount and its 3% fee
    order = db.run(lambda tx: payments.get_order(tx, link.order.id))
    assert (order.payer_id, order.source, order.card_amount) == (quicker, "balance", None)
    assert db.run(lambda tx: payments.wallet(tx, quicker)).balance == cny("200.00")
    assert db.run(ledger_audit.audit).sound
