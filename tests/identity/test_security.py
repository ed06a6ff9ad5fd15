"""Account security: login password, password login, payment password, other sessions."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import date

import pytest
from sqlalchemy import select

from qianbao.clock import FrozenClock
from qianbao.db import Database, Tx
from qianbao.errors import QianbaoError
from qianbao.identity import passwords, pins, security, service
from qianbao.identity.models import PaymentPassword, User
from qianbao.identity.phone import parse_mobile
from qianbao.identity.service import Client
from qianbao.sealing import new_key_entry
from tests.helpers import HOME, UK, last_code, sign_up

GOOD = "tea with plenty of milk"
UK_DIGITS = "+447911123456"


def refused(attempt: Callable[[], object]) -> QianbaoError:
    with pytest.raises(QianbaoError) as caught:
        attempt()
    return caught.value


def security_code(db: Database, user_id: uuid.UUID, clock: FrozenClock) -> str:
    clock.advance(seconds=61)  # past the resend cooldown of the previous code
    security.send_security_code(db, user_id, HOME, "en")
    return last_code(db, UK)


def with_password(db: Database, clock: FrozenClock) -> service.SignedIn:
    signed = sign_up(db)
    code = security_code(db, signed.account.id, clock)
    security.set_login_password(db, signed.account.id, signed.session_id, GOOD, sms_code=code)
    return signed


def with_payment_password(db: Database, clock: FrozenClock, pin: str = "802417") -> uuid.UUID:
    signed = sign_up(db)
    code = security_code(db, signed.account.id, clock)
    security.set_payment_password(db, signed.account.id, pin, sms_code=code)
    return signed.account.id


def password_login(db: Database, password: str, client: Client = HOME) -> service.SignedIn:
    return security.sign_in_with_password(db, "07911 123456", UK, password, client)


# --- rules ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("password", "code"),
    [
        ("short", "password.too_short"),
        ("x" * 65, "password.too_long"),
        ("password123", "password.common"),
        ("iloveyou", "password.common"),
        ("QWERTYUIOP", "password.common"),
        ("my number 7911123456!", "password.contains_phone"),
    ],
)
def test_login_password_rules(password: str, code: str) -> None:
    with pytest.raises(QianbaoError) as caught:
        passwords.check_login_password(password, UK_DIGITS)
    assert caught.value.code == code


def test_any_characters_and_no_composition_rules() -> None:
    for fine in (GOOD, "我的密码很长很长啊", "Ünïcødé pass", "aaaaaaaaaaaaaaaaz"):
        assert passwords.check_login_password(fine, UK_DIGITS)
    # NFKC: full-width letters are the same password as their ASCII forms.
    assert passwords.normalize_login_password("ｐａｓｓｗｏｒｄ") == "password"


@pytest.mark.parametrize(
    ("pin", "code"),
    [
        ("12345", "paypw.format"),
        ("1234567", "paypw.format"),
        ("12a456", "paypw.format"),
        ("１２３４５６", "paypw.format"),
        ("111111", "paypw.repeated"),
        ("123456", "paypw.sequence"),
        ("654321", "paypw.sequence"),
        ("345678", "paypw.sequence"),
        ("123456"[::-1], "paypw.sequence"),
    ],
)
def test_payment_password_rules(pin: str, code: str) -> None:
    with pytest.raises(QianbaoError) as caught:
        passwords.check_payment_password(pin, UK_DIGITS, None)
    assert caught.value.code == code


def test_payment_password_may_not_be_the_phone_or_birth_date() -> None:
    phone_tail = refused(lambda: passwords.check_payment_password("123456", "+447911123456", None))
    assert phone_tail.code == "paypw.sequence"
    assert (
        refused(lambda: passwords.check_payment_password("123457", "+447911123457", None)).code
        == "paypw.phone"
    )
    born = date(1990, 7, 14)
    for form in ("900714", "140790", "071490"):
        assert (
            refused(lambda form=form: passwords.check_payment_password(form, UK_DIGITS, born)).code
            == "paypw.birth_date"
        )
    assert passwords.check_payment_password("802417", UK_DIGITS, born) == "802417"


# --- login password -------------------------------------------------------------------


def test_setting_the_login_password_needs_an_sms_code(db: Database, clock: FrozenClock) -> None:
    signed = sign_up(db)
    missing = refused(
        lambda: security.set_login_password(db, signed.account.id, signed.session_id, GOOD)
    )
    assert missing.code == "security.code_required"
    code = security_code(db, signed.account.id, clock)
    weak = refused(
        lambda: security.set_login_password(
            db, signed.account.id, signed.session_id, "password", sms_code=code
        )
    )
    assert weak.code == "password.common"
    # The weak try did not use up the code.
    security.set_login_password(db, signed.account.id, signed.session_id, GOOD, sms_code=code)
    stored = db.run(lambda tx: tx.session.get_one(User, signed.account.id).password_hash)
    assert stored is not None and stored.startswith("$argon2id$")
    assert GOOD not in stored


def test_password_login_by_number_and_wrong_password(db: Database, clock: FrozenClock) -> None:
    with_password(db, clock)
    assert password_login(db, GOOD).account.phone == UK
    wrong = refused(lambda: password_login(db, "tea with plenty of sugar"))
    assert (wrong.code, wrong.status) == ("login.failed", 401)
    unknown = refused(
        lambda: security.sign_in_with_password(
            db, "8123 4567", parse_mobile("8123 4567", "SG"), GOOD, HOME
        )
    )
    assert unknown.code == "login.failed"  # the same answer: no account enumeration


def test_changing_the_password_ends_every_other_session(db: Database, clock: FrozenClock) -> None:
    signed = with_password(db, clock)
    laptop = password_login(db, GOOD)
    security.set_login_password(
        db,
        signed.account.id,
        signed.session_id,
        "coffee, black, no sugar",
        current_password=GOOD,
    )
    assert refused(lambda: db.run(lambda tx: service.authenticate(tx, laptop.token))).code == (
        "session.invalid"
    )
    db.run(lambda tx: service.authenticate(tx, signed.token))  # this one stays
    assert password_login(db, "coffee, black, no sugar")
    wrong_current = refused(
        lambda: security.set_login_password(
            db,
            signed.account.id,
            signed.session_id,
            "another fine phrase",
            current_password="not it at all",
        )
    )
    assert wrong_current.code == "password.wrong"


def test_wrong_passwords_slow_down_but_sms_login_still_works(
    db: Database, clock: FrozenClock
) -> None:
    with_password(db, clock)
    for _ in range(5):
        assert refused(lambda: password_login(db, "wrong guess here")).code == "login.failed"
    # Five failures are free; then 1 s, 2 s, 4 s ... after the last one.
    throttled = refused(lambda: password_login(db, GOOD))
    assert (throttled.code, throttled.retry_after) == ("login.throttled", 1)
    clock.advance(seconds=1)
    assert refused(lambda: password_login(db, "wrong again here")).code == "login.failed"
    assert refused(lambda: password_login(db, GOOD)).retry_after == 2
    # The person is never locked out: an SMS code logs in regardless.
    clock.advance(seconds=61)
    service.send_code(db, UK, "login", HOME, "en")
    assert service.sign_in(db, UK, "login", last_code(db, UK), HOME)
    clock.advance(seconds=2)
    assert password_login(db, GOOD)


def test_the_growing_delay_is_capped(db: Database, clock: FrozenClock) -> None:
    with_password(db, clock)
    cap = db.settings.password_delay_cap_seconds
    for n in range(20):  # from many addresses: this is about the account's own delay
        somewhere = Client(ip=f"198.51.100.{n}")
        assert refused(lambda c=somewhere: password_login(db, "wrong guess", c)).code == (
            "login.failed"
        )
        clock.advance(seconds=cap)
    clock.advance(seconds=-cap)  # right after the twentieth failure
    assert refused(lambda: password_login(db, GOOD)).retry_after == cap  # not 2**15 s
    clock.advance(seconds=cap)
    assert password_login(db, GOOD)


def test_parallel_guesses_are_throttled(db: Database, clock: FrozenClock) -> None:
    with_password(db, clock)

    def guess(n: int) -> str:
        try:
            password_login(db, f"guess number {n}")
            return "IN"
        except QianbaoError as error:
            return error.code

    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(guess, range(40)))
    assert "IN" not in results
    # With the clock still, only the free failures (and the first delayed one) are tried.
    assert results.count("login.failed") == db.settings.password_failures_before_delay
    assert results.count("login.throttled") == 40 - db.settings.password_failures_before_delay


# --- payment password -----------------------------------------------------------------


def test_payment_password_set_check_and_change(db: Database, clock: FrozenClock) -> None:
    user_id = with_payment_password(db, clock)
    security.verify_payment_password(db, user_id, "802417")
    wrong = refused(lambda: security.verify_payment_password(db, user_id, "802418"))
    assert (wrong.code, wrong.details["tries_left"]) == ("paypw.mismatch", 2)
    security.set_payment_password(db, user_id, "590316", current_pin="802417")
    security.verify_payment_password(db, user_id, "590316")
    stored = db.run(lambda tx: tx.session.get_one(PaymentPassword, user_id).password_hash)
    assert stored.startswith("pin-hmac-sha256$") and "590316" not in stored


def _stored_pin(db: Database, user_id: uuid.UUID) -> str:
    return db.run(lambda tx: tx.session.get_one(PaymentPassword, user_id).password_hash)


def _put_pin_hash(db: Database, user_id: uuid.UUID, hashed: str) -> None:
    def put(tx: Tx) -> None:
        tx.session.get_one(PaymentPassword, user_id).password_hash = hashed

    db.run(put)


def test_the_payment_password_is_a_keyed_hash_that_the_database_alone_cannot_check(
    db: Database, clock: FrozenClock
) -> None:
    user_id = with_payment_password(db, clock)
    stored = _stored_pin(db, user_id)
    # The right PIN checks under the server's keys, and under no other keys.
    assert pins.check_pin(db.settings, user_id, stored, "802417").matches
    elsewhere = db.settings.model_copy(update={"sealing_keys": new_key_entry("k1")})
    assert not pins.check_pin(elsewhere, user_id, stored, "802417").matches
    # Bound to the person: the same PIN hashes differently for someone else, and a hash
    # copied to another person's row does not verify there.
    other = uuid.uuid4()
    assert pins.hash_pin(db.settings, other, "802417") != stored
    assert not pins.check_pin(db.settings, other, stored, "802417").matches


def test_an_argon2_payment_password_from_before_moves_to_the_keyed_hash_on_use(
    db: Database, clock: FrozenClock
) -> None:
    user_id = with_payment_password(db, clock)
    _put_pin_hash(db, user_id, passwords.hash_secret(db.settings, "802417"))
    wrong = refused(lambda: security.verify_payment_password(db, user_id, "111111"))
    assert wrong.code == "paypw.mismatch"
    assert _stored_pin(db, user_id).startswith("$argon2id$")  # a miss changes nothing
    security.verify_payment_password(db, user_id, "802417")
    assert _stored_pin(db, user_id).startswith("pin-hmac-sha256$")
    security.verify_payment_password(db, user_id, "802417")  # and it still checks


def test_a_payment_password_under_a_rotated_key_moves_to_the_new_key_on_use(
    db: Database, clock: FrozenClock
) -> None:
    old_entry = new_key_entry("old")
    db.settings.sealing_keys = old_entry
    user_id = with_payment_password(db, clock)
    assert _stored_pin(db, user_id).startswith("pin-hmac-sha256$old$")
    db.settings.sealing_keys = f"{new_key_entry('new')},{old_entry}"  # rotated: new first
    security.verify_payment_password(db, user_id, "802417")
    assert _stored_pin(db, user_id).startswith("pin-hmac-sha256$new$")
    db.settings.sealing_keys = db.settings.sealing_keys.split(",")[0]  # old key retired
    security.verify_payment_password(db, user_id, "802417")
    # A PIN not entered again before its key was retired: a reset, not a server error.
    db.settings.sealing_keys = new_key_entry("newer")
    stuck = refused(lambda: security.verify_payment_password(db, user_id, "802417"))
    assert (stuck.code, stuck.status) == ("paypw.reset_needed", 409)


def test_three_wrong_entries_lock_payments_for_three_hours(
    db: Database, clock: FrozenClock
) -> None:
    user_id = with_payment_password(db, clock)
    for left in (2, 1):
        assert (
            refused(lambda: security.verify_payment_password(db, user_id, "000001")).details[
                "tries_left"
            ]
            == left
        )
    locked = refused(lambda: security.verify_payment_password(db, user_id, "000001"))
    assert (locked.code, locked.retry_after) == ("paypw.locked", 3 * 3600)
    # Even the right password is refused while locked.
    clock.advance(hours=2, minutes=59)
    assert refused(lambda: security.verify_payment_password(db, user_id, "802417")).code == (
        "paypw.locked"
    )
    clock.advance(minutes=1)
    security.verify_payment_password(db, user_id, "802417")


def test_the_lock_holds_under_twenty_parallel_wrong_entries(
    db: Database, clock: FrozenClock
) -> None:
    user_id = with_payment_password(db, clock)

    def enter(n: int) -> str:
        try:
            security.verify_payment_password(db, user_id, f"{n:06d}")
            return "OK"
        except QianbaoError as error:
            return error.code

    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(enter, range(100, 120)))
    assert results.count("paypw.mismatch") == 2
    assert results.count("paypw.locked") == 18
    record = db.run(lambda tx: tx.session.get_one(PaymentPassword, user_id))
    assert record.locked_until is not None


def test_a_forgotten_payment_password_is_reset_by_sms(db: Database, clock: FrozenClock) -> None:
    user_id = with_payment_password(db, clock)
    for _ in range(3):
        refused(lambda: security.verify_payment_password(db, user_id, "000001"))
    code = security_code(db, user_id, clock)
    security.set_payment_password(db, user_id, "590316", sms_code=code)
    security.verify_payment_password(db, user_id, "590316")  # and the lock is gone


def test_payments_need_a_payment_password_first(db: Database) -> None:
    signed = sign_up(db)
    error = refused(lambda: security.verify_payment_password(db, signed.account.id, "802417"))
    assert (error.code, error.status) == ("paypw.not_set", 403)


# --- sessions -------------------------------------------------------------------------


def test_log_out_everywhere_else(db: Database, clock: FrozenClock) -> None:
    signed = with_password(db, clock)
    others = [password_login(db, GOOD, Client(ip=f"198.51.100.{n}")) for n in range(3)]
    ended = db.run(lambda tx: security.end_other_sessions(tx, signed.account.id, signed.session_id))
    assert ended == 3
    for other in others:
        assert (
            refused(
                lambda other=other: db.run(lambda tx: service.authenticate(tx, other.token))
            ).code
            == "session.invalid"
        )
    db.run(lambda tx: service.authenticate(tx, signed.token))
    assert db.run(lambda tx: tx.session.scalars(select(User)).one()).id == signed.account.id
