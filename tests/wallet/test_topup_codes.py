"""Top-up codes sold by stores: printed once and kept hashed, prepaid by the merchant,
redeemed once into a balance by a person whose level may use one, refused clearly when
used, void, mistyped or unknown, slowed down against guessing, and exact when people
race for one code. On SQLite and PostgreSQL; messages in English and Chinese."""

from __future__ import annotations

import random
import uuid
from concurrent.futures import ThreadPoolExecutor
from threading import Barrier

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from qianbao import cli
from qianbao.clock import FrozenClock
from qianbao.db import Database, Tx
from qianbao.errors import QianbaoError
from qianbao.i18n import language_scope
from qianbao.identity import service as identity
from qianbao.identity.phone import parse_mobile
from qianbao.money import Money
from qianbao.risk import restrictions
from qianbao.settings import Settings, get_settings
from qianbao.wallet.ledger import audit as ledger_audit
from qianbao.wallet.ledger import service as ledger
from qianbao.wallet.payments import service as payments
from qianbao.wallet.topup_codes import service as topup_codes
from qianbao.wallet.topup_codes.models import TopupCode, TopupCodeBatch
from tests.api_helpers import api_sign_up, bearer
from tests.verification.flow_helpers import new_person
from tests.wallet.test_payments import PIN, buyer, fund, verify
from tests.web.test_pages import csrf, sign_up_by_form

HOME_IP = "203.0.113.7"


def refused(attempt: object) -> QianbaoError:
    assert callable(attempt)
    with pytest.raises(QianbaoError) as caught:
        attempt()
    return caught.value


def cny(major: str) -> Money:
    return Money.of("CNY", major)


@pytest.fixture
def shop(db: Database) -> uuid.UUID:
    return db.run(lambda tx: payments.create_merchant(tx, "7-Eleven Sanlitun"))


def person(db: Database, number: str = "07911 123456", *, verified: bool = True) -> uuid.UUID:
    account = new_person(db, number)
    if verified:
        db.run(lambda tx: identity.set_verification_level(tx, account.id, "passport_face"))
    return account.id


def balance(db: Database, user_id: uuid.UUID) -> Money:
    return db.run(lambda tx: payments.wallet(tx, user_id)).balance


def settlement(db: Database, shop: uuid.UUID) -> Money:
    def read(tx: Tx) -> Money:
        account = payments.account_of_merchant(tx, shop)
        return Money("CNY", ledger.balance(tx, account).available)

    return db.run(read)


def batch_of(db: Database, value: str = "100", count: int = 5) -> topup_codes.NewBatch:
    """A batch whose face value the store paid by bank transfer."""
    reference = f"TT-{uuid.uuid4().hex[:8]}"  # each batch its own bank transfer
    return topup_codes.create_batch(db, "7-Eleven Sanlitun", value, count, paid_by_bank=reference)


def assert_sound(db: Database) -> None:
    audit = db.run(ledger_audit.audit)
    assert audit.sound, audit


# --- the codes ----------------------------------------------------------------------------


def test_codes_are_random_readable_grouped_and_carry_a_check_character() -> None:
    codes = [topup_codes.new_code() for _ in range(2000)]
    assert len(set(codes)) == len(codes)
    for code in codes[:50]:
        assert len(code) == 16 and not set(code) & set("0O1I")
        printed = topup_codes.grouped(code)
        assert len(printed.split("-")) == 4
        assert topup_codes.parse_code(printed.lower().replace("-", " ")) == code


def test_the_check_character_catches_every_mistyped_character() -> None:
    rng = random.Random(7)
    caught = missed = 0
    for code in (topup_codes.new_code() for _ in range(20)):
        for position in range(len(code)):
            for wrong in topup_codes.ALPHABET.replace(code[position], ""):
                typo = code[:position] + wrong + code[position + 1 :]
                with pytest.raises(QianbaoError) as error:
                    topup_codes.parse_code(typo)
                assert error.value.code == "topup.typo"
        # Swapped neighbours: caught unless they are equal or a pair Luhn cannot see.
        position = rng.randrange(len(code) - 1)
        swapped = code[:position] + code[position + 1] + code[position] + code[position + 2 :]
        if swapped != code:
            try:
                topup_codes.parse_code(swapped)
                missed += 1
            except QianbaoError:
                caught += 1
    assert caught >= 15 and missed <= 2


@pytest.mark.parametrize("typed", ["", "ABCD-EFGH", "0BCD-EFGH-JKLM-NPQR", "ABCD EFGH JKLM NPQI"])
def test_what_cannot_be_a_code_is_explained_in_both_languages(typed: str) -> None:
    error = refused(lambda: topup_codes.parse_code(typed))
    assert error.code == "topup.format" and "0, O, 1" in error.localized_message()
    with language_scope("zh_Hans"):
        assert "兑换码" in error.localized_message()


# --- batches ------------------------------------------------------------------------------


def test_a_batch_is_printed_once_stored_hashed_and_prepaid(db: Database, shop: uuid.UUID) -> None:
    batch = batch_of(db, "100", 5)
    assert len(batch.codes) == 5 and batch.value == cny("100")
    stored = db.run(lambda tx: list(tx.session.scalars(select(TopupCode))))
    assert len(stored) == 5 and all(row.state == "active" for row in stored)
    hashes = {row.code_hash for row in stored}
    for code in batch.codes:
        plain = code.replace("-", "")
        assert plain not in hashes and all(plain not in value for value in hashes)

    # The face value already sits in the batch's own account: money that exists.
    def prepaid(tx: Tx) -> int:
        row = tx.session.get_one(TopupCodeBatch, batch.id)
        return ledger.balance(tx, row.account_id).available

    assert db.run(prepaid) == cny("500").minor
    assert_sound(db)


def test_a_batch_from_the_settlement_balance_needs_the_sales_to_cover_it(
    db: Database, clock: FrozenClock, shop: uuid.UUID
) -> None:
    error = refused(lambda: topup_codes.create_batch(db, "7-Eleven Sanlitun", "100", 3))
    assert error.code == "topup.batch_unfunded" and "300.00" in error.localized_message()
    assert db.run(lambda tx: tx.session.scalars(select(TopupCode)).all()) == []
    # The store sells CNY 500 of goods, then CNY 300 of codes come out of that.
    customer = buyer(db, clock)
    verify(db, customer)
    fund(db, customer, "500")
    order = db.run(lambda tx: payments.create_order(tx, shop, "S1", "Snacks", cny("500")))
    payments.pay_with_balance(db, customer, order.id, PIN)
    assert settlement(db, shop) == cny("500")
    topup_codes.create_batch(db, "7-Eleven Sanlitun", "100", 3)
    assert settlement(db, shop) == cny("200")
    assert_sound(db)


@pytest.mark.parametrize(
    ("value", "count", "code"),
    [
        ("0", 1, "topup.batch_value"),
        ("2000.01", 1, "topup.batch_value"),
        ("10.001", 1, "topup.batch_value"),
        ("ten", 1, "topup.batch_value"),
        ("100", 0, "topup.batch_count"),
        ("100", 10_001, "topup.batch_count"),
    ],
)
def test_a_batch_outside_the_rules_is_refused(
    db: Database, shop: uuid.UUID, value: str, count: int, code: str
) -> None:
    error = refused(lambda: batch_of(db, value, count))
    assert error.code == code


def test_one_bank_transfer_pays_for_one_batch_only(db: Database, shop: uuid.UUID) -> None:
    topup_codes.create_batch(db, "7-Eleven Sanlitun", "100", 5, paid_by_bank="TT-0001")
    again = refused(
        lambda: topup_codes.create_batch(db, "7-Eleven Sanlitun", "100", 5, paid_by_bank="TT-0001")
    )
    assert again.code == "topup.reference_used" and again.status == 409
    batches = db.run(lambda tx: list(tx.session.scalars(select(TopupCodeBatch))))
    assert len(batches) == 1  # nothing half-written
    assert_sound(db)


def test_an_unknown_merchant_gets_no_batch(db: Database) -> None:
    error = refused(lambda: topup_codes.create_batch(db, "Nobody", "100", 1, paid_by_bank="X"))
    assert error.code == "topup.merchant"


# --- redeeming ----------------------------------------------------------------------------


def test_a_code_adds_its_value_once(db: Database, shop: uuid.UUID) -> None:
    code = batch_of(db, "100", 2).codes[0]
    ada, bob = person(db), person(db, "07911 123457")
    done = topup_codes.redeem(db, ada, code.lower(), HOME_IP)
    assert (done.amount, done.balance, done.merchant) == (cny("100"), cny("100"), shop_name())
    assert not done.replayed
    again = topup_codes.redeem(db, ada, code, HOME_IP)  # the same person, a retry
    assert again.replayed and again.balance == cny("100") and balance(db, ada) == cny("100")
    error = refused(lambda: topup_codes.redeem(db, bob, code, "198.51.100.1"))
    assert (error.code, error.status) == ("topup.redeemed", 409)
    assert "already been redeemed" in error.localized_message()
    with language_scope("zh_Hans"):
        assert "已被兑换" in error.localized_message()
    assert balance(db, bob) == cny("0")
    rows = db.run(lambda tx: topup_codes.redemptions(tx, ada))
    assert [(row.amount, row.merchant) for row in rows] == [(cny("100"), shop_name())]
    assert_sound(db)


def shop_name() -> str:
    return "7-Eleven Sanlitun"


def test_an_unverified_person_is_asked_for_identification_and_keeps_the_code(
    db: Database, shop: uuid.UUID
) -> None:
    code = batch_of(db, "50", 1).codes[0]
    newcomer = person(db, verified=False)
    error = refused(lambda: topup_codes.redeem(db, newcomer, code, HOME_IP))
    assert (error.code, error.status) == ("topup.verification_required", 403)
    assert "verify your identity" in error.localized_message()
    with language_scope("zh_Hans"):
        assert "身份" in error.localized_message()
    assert db.run(lambda tx: tx.session.scalars(select(TopupCode.state)).one()) == "active"
    db.run(lambda tx: identity.set_verification_level(tx, newcomer, "passport_face"))
    assert topup_codes.redeem(db, newcomer, code, HOME_IP).balance == cny("50")


def test_a_frozen_account_redeems_nothing(db: Database, shop: uuid.UUID) -> None:
    code = batch_of(db, "50", 1).codes[0]
    ada = person(db)
    db.run(
        lambda tx: restrictions.impose(tx, ada, "frozen", "card_velocity", imposed_by="rule:test")
    )
    assert refused(lambda: topup_codes.redeem(db, ada, code, HOME_IP)).code == "account.frozen"
    assert balance(db, ada) == cny("0")


def test_a_void_batch_stops_working_and_its_value_goes_back_to_the_store(
    db: Database, shop: uuid.UUID
) -> None:
    batch = batch_of(db, "100", 3)
    ada = person(db)
    topup_codes.redeem(db, ada, batch.codes[0], HOME_IP)
    voided = topup_codes.void_batch(db, batch.id)
    assert (voided.voided, voided.already_redeemed, voided.returned) == (2, 1, cny("200"))
    assert settlement(db, shop) == cny("200")
    error = refused(lambda: topup_codes.redeem(db, ada, batch.codes[1], HOME_IP))
    assert (error.code, error.status) == ("topup.void", 409)
    with language_scope("zh_Hans"):
        assert "作废" in error.localized_message()
    # Redeemed stays redeemed; voiding again moves nothing.
    assert topup_codes.redeem(db, ada, batch.codes[0], HOME_IP).replayed
    assert topup_codes.void_batch(db, batch.id).voided == 0
    assert settlement(db, shop) == cny("200") and balance(db, ada) == cny("100")
    assert refused(lambda: topup_codes.void_batch(db, uuid.uuid4())).code == "topup.batch"
    assert_sound(db)


def test_an_unknown_code_says_only_that(db: Database, shop: uuid.UUID) -> None:
    batch_of(db, "100", 1)
    ada = person(db)
    error = refused(lambda: topup_codes.redeem(db, ada, topup_codes.new_code(), HOME_IP))
    assert (error.code, error.status) == ("topup.unknown", 404)
    assert "does not work" in error.localized_message()


# --- guessing -------------------------------------------------------------------------------


def test_guessing_is_slowed_per_account_doubling_each_time(
    db: Database, clock: FrozenClock, shop: uuid.UUID
) -> None:
    real = batch_of(db, "100", 1).codes[0]
    ada = person(db)
    for _ in range(5):
        assert refused(lambda: topup_codes.redeem(db, ada, topup_codes.new_code(), HOME_IP))
    locked = refused(lambda: topup_codes.redeem(db, ada, real, HOME_IP))
    assert (locked.code, locked.status, locked.retry_after) == ("topup.throttled", 429, 60)
    assert "1 min" in locked.localized_message()
    with language_scope("zh_Hans"):
        assert "1 min" in locked.localized_message() and "兑换码" in locked.localized_message()
    clock.advance(seconds=60)
    refused(lambda: topup_codes.redeem(db, ada, topup_codes.new_code(), HOME_IP))
    assert refused(lambda: topup_codes.redeem(db, ada, real, HOME_IP)).retry_after == 120
    clock.advance(seconds=119)
    assert refused(lambda: topup_codes.redeem(db, ada, real, HOME_IP)).retry_after == 1
    clock.advance(seconds=1)
    assert topup_codes.redeem(db, ada, real, HOME_IP).amount == cny("100")
    # A mistyped code is caught before any lookup and costs no try.
    typo = real[:-1] + ("2" if real[-1] != "2" else "3")
    assert refused(lambda: topup_codes.redeem(db, ada, typo, HOME_IP)).code == "topup.typo"


def test_guessing_from_one_address_is_slowed_across_accounts(db: Database, shop: uuid.UUID) -> None:
    real = batch_of(db, "100", 1).codes[0]
    guessers = [person(db, f"07911 1234{n:02d}") for n in range(5)]
    for guesser in guessers:
        for _ in range(4):  # under each account's own limit
            refused(lambda g=guesser: topup_codes.redeem(db, g, topup_codes.new_code(), HOME_IP))
    honest = person(db, "07911 123498")
    error = refused(lambda: topup_codes.redeem(db, honest, real, HOME_IP))
    assert (error.code, error.retry_after) == ("topup.throttled", 60)
    assert topup_codes.redeem(db, honest, real, "198.51.100.9").amount == cny("100")


# --- racing ---------------------------------------------------------------------------------


def test_people_racing_for_one_code_exactly_one_gets_it(db: Database, shop: uuid.UUID) -> None:
    batch = batch_of(db, "100", 2)
    racers = [person(db, f"07911 1234{n:02d}") for n in range(6)]
    start = Barrier(len(racers))

    def race(user_id: uuid.UUID) -> str:
        start.wait()
        try:
            topup_codes.redeem(db, user_id, batch.codes[0], f"198.51.100.{racers.index(user_id)}")
        except QianbaoError as error:
            return error.code
        return "redeemed"

    with ThreadPoolExecutor(max_workers=len(racers)) as pool:
        outcomes = list(pool.map(race, racers))
    assert sorted(outcomes) == ["redeemed"] + ["topup.redeemed"] * 5
    assert sum((balance(db, user) for user in racers), cny("0")) == cny("100")
    # One person pressing the button many times at once: one redemption, the rest retries.
    ada = racers[outcomes.index("topup.redeemed")]
    again = Barrier(5)

    def press(_: int) -> bool:
        again.wait()
        return topup_codes.redeem(db, ada, batch.codes[1], HOME_IP).replayed

    with ThreadPoolExecutor(max_workers=5) as pool:
        replays = list(pool.map(press, range(5)))
    assert sorted(replays) == [False, True, True, True, True]
    assert balance(db, ada) == cny("100")
    assert_sound(db)


def test_a_void_racing_redemptions_leaves_every_code_either_redeemed_or_refunded(
    db: Database, shop: uuid.UUID
) -> None:
    batch = batch_of(db, "10", 8)
    people = [person(db, f"07911 1234{n:02d}") for n in range(8)]
    start = Barrier(len(people) + 1)

    def redeem(index: int) -> bool:
        start.wait()
        try:
            topup_codes.redeem(db, people[index], batch.codes[index], f"198.51.100.{index}")
        except QianbaoError as error:
            assert error.code == "topup.void"
            return False
        return True

    def void() -> topup_codes.VoidedBatch:
        start.wait()
        return topup_codes.void_batch(db, batch.id)

    with ThreadPoolExecutor(max_workers=len(people) + 1) as pool:
        voiding = pool.submit(void)
        redeemed = sum(pool.map(redeem, range(len(people))))
    voided = voiding.result()
    assert voided.voided + redeemed == 8
    assert settlement(db, shop) == Money("CNY", 1000 * voided.voided)
    assert sum((balance(db, p) for p in people), cny("0")) == Money("CNY", 1000 * redeemed)
    assert_sound(db)


# --- over HTTP and on the command line -------------------------------------------------------


def test_the_api_redeems_and_explains_in_both_languages(
    client: TestClient, clock: FrozenClock
) -> None:
    db: Database = client.app.state.db  # type: ignore[attr-defined]
    db.run(lambda tx: payments.create_merchant(tx, "7-Eleven Sanlitun"))
    code = batch_of(db, "88.80", 1).codes[0]
    signed = api_sign_up(client)
    auth = bearer(signed["token"])
    url = "/api/v1/wallet/topup-codes/redemptions"
    unverified = client.post(url, headers=auth, json={"code": code})
    assert unverified.status_code == 403
    assert unverified.json()["code"] == "topup.verification_required"
    chinese = client.post(url, headers={**auth, "Accept-Language": "zh-CN"}, json={"code": "X"})
    assert chinese.status_code == 422 and "兑换码" in chinese.json()["message"]
    user_id = uuid.UUID(signed["account"]["id"])
    db.run(lambda tx: identity.set_verification_level(tx, user_id, "passport_face"))
    done = client.post(url, headers=auth, json={"code": code})
    assert done.status_code == 200, done.text
    assert done.json()["amount"] == {"currency": "CNY", "value": "88.80"}
    assert done.json()["merchant"] == "7-Eleven Sanlitun" and not done.json()["replayed"]
    assert client.post(url, headers=auth, json={"code": code}).json()["replayed"]
    listed = client.get(url, headers=auth).json()
    assert [row["amount"]["value"] for row in listed] == ["88.80"]
    for _ in range(5):
        client.post(url, headers=auth, json={"code": topup_codes.new_code()})
    throttled = client.post(url, headers=auth, json={"code": topup_codes.new_code()})
    assert throttled.status_code == 429 and throttled.headers["Retry-After"] == "60"


def test_the_page_asks_for_identification_then_redeems(client: TestClient) -> None:
    db: Database = client.app.state.db  # type: ignore[attr-defined]
    db.run(lambda tx: payments.create_merchant(tx, "7-Eleven Sanlitun"))
    code = batch_of(db, "100", 1).codes[0]
    sign_up_by_form(client)
    wallet = client.get("/wallet")  # the row says why, rather than offering the page
    assert 'data-action="topup_code" data-allowed="false"' in wallet.text
    assert "Verify your real name to add money to your balance." in wallet.text
    asked = client.get("/wallet/topup-code")
    assert 'data-testid="verification-required"' in asked.text and 'name="code"' not in asked.text
    phone = parse_mobile("+447911123456", "GB")
    user_id = db.run(lambda tx: identity.account_by_phone(tx, phone)).id
    db.run(lambda tx: identity.set_verification_level(tx, user_id, "passport_face"))
    token = csrf(client, "/wallet/topup-code")
    typo = client.post("/wallet/topup-code", data={"csrf": token, "code": code[:-1] + "Z"})
    if code.endswith("Z"):
        typo = client.post("/wallet/topup-code", data={"csrf": token, "code": code[:-1] + "Y"})
    assert typo.status_code == 422 and 'data-code="topup.typo"' in typo.text
    done = client.post("/wallet/topup-code", data={"csrf": token, "code": code})
    assert done.status_code == 200 and done.url.path == "/wallet/topup-code"
    assert 'data-testid="added"' in done.text and "100.00" in done.text
    assert "100.00" in client.get("/wallet").text


def test_the_cli_prints_a_batch_once_and_voids_it(
    settings: Settings, db: Database, shop: uuid.UUID, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QIANBAO_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("QIANBAO_VAR_DIR", str(settings.var_dir))
    monkeypatch.setenv("QIANBAO_SECRET_KEY", settings.secret_key)
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        args = ["admin", "create-topup-codes", "--merchant", "7-Eleven Sanlitun"]
        made = runner.invoke(
            cli.app, [*args, "--value", "50", "--count", "3", "--paid-by-bank", "T9"]
        )
        assert made.exit_code == 0, made.output
        lines = made.output.strip().splitlines()
        batch_id = lines[0].split()[1].rstrip(":")
        codes = lines[1:]
        assert len(codes) == 3 and all(len(code) == 19 for code in codes)
        ada = person(db)
        topup_codes.redeem(db, ada, codes[0], HOME_IP)
        unfunded = runner.invoke(cli.app, [*args, "--value", "50", "--count", "3"])
        assert unfunded.exit_code != 0 and "settlement balance" in unfunded.output
        voided = runner.invoke(cli.app, ["admin", "void-topup-codes", "--batch", batch_id])
        assert voided.exit_code == 0, voided.output
        assert "2 codes voided" in voided.output and "1 were already redeemed" in voided.output
    finally:
        get_settings.cache_clear()


def test_guessing_from_many_addresses_of_one_ipv6_network_is_one_guesser(
    db: Database, shop: uuid.UUID
) -> None:
    db.settings.topup_code_failures_before_delay_per_ip = 2
    guessers = [person(db, number) for number in ("07911 123456", "07400 900123", "07400 900456")]
    network = "2001:db8:77:1:"
    codes = []
    for index, guesser in enumerate(guessers):
        unknown = topup_codes.grouped(topup_codes.new_code())  # well formed, never sold
        try:
            topup_codes.redeem(db, guesser, unknown, f"{network}:{index + 1}")
        except QianbaoError as error:
            codes.append(error.code)
    assert codes == ["topup.unknown", "topup.unknown", "topup.throttled"]  # one /64
