"""The wallet page's words: held money explained (the returned fee share), and each banner
with advice that fits the person (no "Verify now" to someone already verified)."""

from __future__ import annotations

import uuid

from fastapi.testclient import TestClient

from qianbao.clock import FrozenClock
from qianbao.db import Database
from qianbao.identity import service as identity
from qianbao.risk import restrictions
from qianbao.wallet.payments import refunds
from qianbao.wallet.payments import service as payments
from tests.wallet.test_pay_for_me import log_in_by_form
from tests.wallet.test_payments import PIN, add_card, buyer, cny, order, verify

NUMBER = "07911 123456"


def held_section(page: str) -> str:
    return page.split('class="card balance-card"')[1].split("</section>")[0]


def test_held_money_says_it_includes_the_returned_fee_share(
    client: TestClient, clock: FrozenClock
) -> None:
    db: Database = client.app.state.db  # type: ignore[attr-defined]
    person = buyer(db, clock, NUMBER)
    shop = payments.demo_merchant(db)
    paid = order(db, shop, "300.00")  # by card, above CNY 200: a 3 % fee (CNY 9)
    payments.pay_with_card(db, person, paid, add_card(db, person), PIN)
    refunds.refund(db, shop, paid, "R1", cny("100.00"), to_balance=True)  # + CNY 3 of fee
    view = db.run(lambda tx: payments.wallet(tx, person))
    assert view.held == cny("103.00")
    found = db.run(lambda tx: refunds.held_refunds(tx, person, view.held))
    assert found == refunds.HeldRefunds(cny("100.00"), cny("3.00"))

    clock.advance(seconds=61)
    log_in_by_form(client, db, NUMBER)
    held = held_section(client.get("/wallet").text)
    # As the page writes amounts: Babel's format, one unbreakable word.
    refunded, fee = (f'<span class="amount">{cny(v).format()}</span>' for v in ("100.00", "3.00"))
    assert cny("103.00").format() in held
    assert 'data-testid="held-fee-share"' in held
    assert f"{refunded} refunded plus {fee}, your share of the card fee" in held
    client.cookies.set("qb_lang", "zh_Hans")
    chinese = held_section(client.get("/wallet").text)
    assert refunded in chinese and fee in chinese and "手续费" in chinese


def test_held_money_of_another_kind_is_not_explained_as_refunds(
    db: Database, clock: FrozenClock
) -> None:
    person = buyer(db, clock, NUMBER)
    assert db.run(lambda tx: refunds.held_refunds(tx, person, cny("5.00"))) is None


def freeze(db: Database, person: uuid.UUID) -> None:
    db.run(
        lambda tx: restrictions.impose(
            tx, person, "frozen", "risk_officer", imposed_by="test", note="check"
        )
    )


def test_the_freeze_banner_tells_only_an_unverified_person_to_verify(
    client: TestClient, clock: FrozenClock
) -> None:
    db: Database = client.app.state.db  # type: ignore[attr-defined]
    person = buyer(db, clock, NUMBER)
    freeze(db, person)
    clock.advance(seconds=61)
    log_in_by_form(client, db, NUMBER)

    def banner() -> str:
        page = client.get("/wallet").text
        return page.split('data-testid="restriction"')[1].split("</section>")[0]

    unverified = banner()
    assert 'href="/me/verify"' in unverified and 'href="/wallet/appeal"' in unverified
    verify(db, person)
    assert db.run(lambda tx: identity.get_account(tx, person)).verification_level != ("unverified")
    verified = banner()
    assert 'href="/me/verify"' not in verified and "Verify now" not in verified
    assert 'href="/wallet/appeal"' in verified
    assert "Verify your real name" not in verified and "Send us your documents" in verified
    # The API's advice comes from the same place.
    assert restrictions.what_to_do(verified=True) == restrictions.WHAT_TO_DO_VERIFIED
    assert restrictions.what_to_do(verified=False) == restrictions.WHAT_TO_DO
