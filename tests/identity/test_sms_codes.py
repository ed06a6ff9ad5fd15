"""The rules of SMS codes: single use, short-lived, few tries, locks and sending caps."""

from __future__ import annotations

import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from qianbao.clock import FrozenClock
from qianbao.db import Database
from qianbao.errors import QianbaoError
from qianbao.identity import service
from qianbao.identity.models import AgreementAcceptance, SmsChallenge, User
from qianbao.identity.phone import PhoneNumber, parse_mobile
from qianbao.identity.service import Client
from qianbao.notify.models import OutboxMessage
from tests.helpers import AGREEMENT, HOME, UK, last_code, send_signup_code, sign_up, wrong_code


def refused(attempt: Callable[[], object]) -> QianbaoError:
    with pytest.raises(QianbaoError) as caught:
        attempt()
    return caught.value


def count(db: Database, model: type) -> int:
    return int(db.run(lambda tx: tx.session.scalar(select(func.count()).select_from(model))))


def verify(
    db: Database, code: str, purpose: service.Purpose = "signup"
) -> Callable[[], service.SignedIn]:
    return lambda: service.sign_in(db, UK, purpose, code, HOME)


def test_sign_up_creates_the_account_and_records_the_agreement(
    db: Database, clock: FrozenClock
) -> None:
    code = send_signup_code(db)
    assert len(code) == 6
    signed = service.sign_in(db, UK, "signup", code, HOME)
    assert signed.is_new_account
    assert signed.account.phone.e164 == "+447911123456"
    assert signed.account.verification_level == "unverified"
    record = db.run(lambda tx: service.agreement_record(tx, signed.account.id))
    assert record is not None
    assert (record.version, record.language, record.accepted_at) == (AGREEMENT, "en", clock.now())


def test_sign_up_without_accepting_the_agreement_sends_nothing(db: Database) -> None:
    error = refused(lambda: service.send_code(db, UK, "signup", HOME, "en", None))
    assert error.code == "agreement.required"
    old = refused(lambda: service.send_code(db, UK, "signup", HOME, "en", "2001-01-01"))
    assert old.code == "agreement.required"
    assert count(db, SmsChallenge) == 0
    assert count(db, OutboxMessage) == 0


def test_the_sms_is_written_in_the_persons_language(db: Database) -> None:
    service.send_code(db, UK, "signup", HOME, "zh_Hans", AGREEMENT)
    body = db.run(lambda tx: tx.session.scalars(select(OutboxMessage.body)).one())
    assert re.search(r"\d{6}", body)
    assert "Your Qianbao code" not in body  # the zh_Hans catalog translates it


def test_code_length_is_a_setting(db: Database) -> None:
    db.settings.sms_code_length = 4  # the original app's four digits
    assert len(send_signup_code(db)) == 4


def test_codes_are_stored_only_as_keyed_hashes(db: Database) -> None:
    code = send_signup_code(db)
    stored = db.run(lambda tx: tx.session.scalars(select(SmsChallenge.code_hash)).one())
    assert code not in stored
    assert len(stored) == 64


def test_login_for_an_unknown_number_is_refused(db: Database) -> None:
    error = refused(lambda: service.send_code(db, UK, "login", HOME, "en"))
    assert (error.code, error.status) == ("account.not_found", 404)


def test_signing_up_twice_is_refused(db: Database) -> None:
    sign_up(db)
    error = refused(lambda: service.send_code(db, UK, "signup", HOME, "en", AGREEMENT))
    assert error.code == "account.exists"


def test_a_code_expires_after_five_minutes(db: Database, clock: FrozenClock) -> None:
    code = send_signup_code(db)
    clock.advance(seconds=300)
    assert refused(verify(db, code)).code == "otp.expired"


def test_a_code_works_once(db: Database, clock: FrozenClock) -> None:
    sign_up(db)
    clock.advance(seconds=60)
    service.send_code(db, UK, "login", HOME, "en")
    code = last_code(db, UK)
    verify(db, code, "login")()
    assert refused(verify(db, code, "login")).code == "otp.used"


def test_a_new_code_replaces_the_old_one(db: Database, clock: FrozenClock) -> None:
    first = send_signup_code(db)
    clock.advance(seconds=61)
    second = send_signup_code(db)
    if first != second:
        assert refused(verify(db, first)).code == "otp.mismatch"
    assert verify(db, second)().is_new_account


def test_five_wrong_tries_kill_the_code(db: Database) -> None:
    code = send_signup_code(db)
    for left in (4, 3, 2, 1):
        error = refused(verify(db, wrong_code(code)))
        assert error.code == "otp.mismatch"
        assert error.details["tries_left"] == left
    assert refused(verify(db, wrong_code(code))).code == "otp.exhausted"
    # Even the right code is refused now.
    assert refused(verify(db, code)).code == "otp.exhausted"
    assert count(db, User) == 0


def test_malformed_codes_are_refused_without_costing_a_try(db: Database) -> None:
    code = send_signup_code(db)
    for bad in ("", "12ab56", "１２３４５６", "1" * 12):
        assert refused(verify(db, bad)).code == "otp.format"
    assert verify(db, code)().is_new_account


def test_twenty_failures_lock_the_number_for_a_day_across_new_codes(
    db: Database, clock: FrozenClock
) -> None:
    failures = 0
    while failures < 20:
        code = send_signup_code(db)
        for _ in range(5):
            error = refused(verify(db, wrong_code(code)))
            failures += 1
            if failures == 20:
                assert (error.code, error.status) == ("otp.locked", 429)
                assert error.retry_after == 24 * 3600
                break
        clock.advance(minutes=21)  # stay within the hourly cap of 3 codes for one purpose
    # Locked: no new code, and the right code would not help either.
    clock.advance(hours=1)
    locked = refused(lambda: service.send_code(db, UK, "signup", HOME, "en", AGREEMENT))
    assert locked.code == "otp.locked"
    assert locked.retry_after is not None and 0 < locked.retry_after <= 23 * 3600
    clock.advance(hours=23)
    assert sign_up(db).is_new_account


def test_resend_waits_sixty_seconds_and_says_when(db: Database, clock: FrozenClock) -> None:
    send_signup_code(db)
    clock.advance(seconds=45)
    error = refused(lambda: service.send_code(db, UK, "signup", HOME, "en", AGREEMENT))
    assert (error.code, error.status, error.retry_after) == ("otp.resend_too_soon", 429, 15)
    clock.advance(seconds=15)
    send_signup_code(db)


def test_each_purpose_has_its_own_cooldown_and_quota(db: Database, clock: FrozenClock) -> None:
    """Right after sign-up the payment-password (security) code is sent: the sign-up
    code's cooldown is its own."""
    db.settings.sms_per_number_per_hour = 10  # the totals out of the way here
    sign_up(db)
    sent = service.send_code(db, UK, "security", HOME, "en")
    assert sent.purpose == "security" and last_code(db, UK)
    again = refused(lambda: service.send_code(db, UK, "security", HOME, "en"))
    assert again.code == "otp.resend_too_soon"
    login = service.send_code(db, UK, "login", HOME, "en")  # another purpose: sent
    assert login.purpose == "login"

    for _ in range(2):  # 3 security codes an hour (sms_per_purpose_per_hour)
        clock.advance(seconds=61)
        service.send_code(db, UK, "security", HOME, "en")
    clock.advance(seconds=61)
    error = refused(lambda: service.send_code(db, UK, "security", HOME, "en"))
    assert error.code == "otp.purpose_hourly_cap"
    service.send_code(db, UK, "login", HOME, "en")  # login's quota is its own


def test_five_codes_an_hour_and_ten_a_day_per_number_whatever_they_are_for(
    db: Database, clock: FrozenClock
) -> None:
    db.settings.sms_per_purpose_per_hour = 3
    db.settings.sms_per_purpose_per_day = 6
    signed = sign_up(db)  # one sign-up code
    assert signed.is_new_account
    start = clock.now()

    def ask(purpose: service.Purpose) -> None:
        service.send_code(db, UK, purpose, HOME, "en")

    first_hour: tuple[service.Purpose, ...] = ("login", "login", "security", "security")
    for purpose in first_hour:
        clock.advance(seconds=61)
        ask(purpose)
    clock.advance(seconds=61)
    error = refused(lambda: ask("security"))  # the number's 6th code within the hour
    assert error.code == "otp.number_hourly_cap"
    hour_used = int((clock.now() - start).total_seconds())
    assert error.retry_after == 3600 - hour_used  # when the sign-up code leaves the hour
    clock.advance(hours=1)
    second_hour: tuple[service.Purpose, ...] = ("login", "login", "security", "security", "login")
    for purpose in second_hour:
        ask(purpose)
        clock.advance(seconds=61)
    clock.advance(hours=1)
    error = refused(lambda: ask("security"))  # the 11th code of the day
    assert error.code == "otp.number_daily_cap"
    clock.advance(hours=22)
    ask("security")


def test_caps_per_address_per_country_and_per_number_range(db: Database) -> None:
    db.settings.sms_per_ip_per_hour = 3
    numbers = [parse_mobile(f"07911 1230{n:02d}", "GB") for n in range(10)]
    for phone in numbers[:3]:
        send_signup_code(db, phone)
    error = refused(lambda: service.send_code(db, numbers[3], "signup", HOME, "en", AGREEMENT))
    assert error.code == "otp.ip_hourly_cap"
    # From other addresses, the same range of numbers is still capped.
    db.settings.sms_per_prefix_per_hour = 4
    other = Client(ip="198.51.100.9")
    send_signup_code(db, numbers[3], other)
    error = refused(lambda: service.send_code(db, numbers[4], "signup", other, "en", AGREEMENT))
    assert error.code == "otp.prefix_cap"
    db.settings.sms_per_country_per_hour = 4
    far = parse_mobile("07911 765432", "GB")
    error = refused(
        lambda: service.send_code(db, far, "signup", Client(ip="192.0.2.1"), "en", AGREEMENT),
    )
    assert error.code == "otp.country_cap"


def test_one_address_may_not_hop_across_more_than_three_countries(
    db: Database, clock: FrozenClock
) -> None:
    hopper = Client(ip="192.0.2.66")
    for typed, country in [("07911 123456", "GB"), ("8123 4567", "SG"), ("012-345 6789", "MY")]:
        send_signup_code(db, parse_mobile(typed, country), hopper)
        clock.advance(hours=1)
    fourth = parse_mobile("0812-3456-789", "ID")
    error = refused(lambda: service.send_code(db, fourth, "signup", hopper, "en", AGREEMENT))
    assert error.code == "otp.too_many_countries"
    assert error.retry_after == 21 * 3600  # the UK code leaves the 24 h window first
    # A country already used today is still fine (and now the UK counts until 27 h).
    send_signup_code(db, parse_mobile("07911 000111", "GB"), hopper)
    clock.advance(hours=21)
    still = refused(lambda: service.send_code(db, fourth, "signup", hopper, "en", AGREEMENT))
    assert still.retry_after == 3600  # Singapore, used at 1 h, leaves at 25 h
    clock.advance(hours=1)
    send_signup_code(db, fourth, hopper)


def test_ten_thousand_guesses_in_a_row_get_twenty_tries_at_most(
    db: Database, clock: FrozenClock
) -> None:
    real_code = send_signup_code(db)
    outcomes: dict[str, int] = {}
    for guess in range(10_000):
        candidate = f"{guess:06d}"
        if candidate == real_code:
            continue
        try:
            verify(db, candidate)()
            pytest.fail(f"guess {candidate} got in")
        except QianbaoError as error:
            outcomes[error.code] = outcomes.get(error.code, 0) + 1
            if error.code == "otp.exhausted":
                # The attacker asks for a fresh code, as often as the caps allow.
                clock.advance(seconds=1201)  # 3 codes for one purpose an hour
                try:
                    real_code = send_signup_code(db)
                except QianbaoError as refused:
                    assert refused.code == "otp.locked"
    tried = db.run(lambda tx: tx.session.scalar(select(func.sum(SmsChallenge.attempts))))
    assert tried == 20
    assert outcomes["otp.mismatch"] == 16  # 4 per code before each fifth try kills it
    assert outcomes["otp.locked"] >= 9_900
    assert count(db, User) == 0


def test_parallel_guesses_cannot_exceed_the_tries(db: Database) -> None:
    real = send_signup_code(db)
    guesses = [f"{n:06d}" for n in range(10_000) if f"{n:06d}" != real]

    def attack(chunk: list[str]) -> list[str]:
        outcomes = []
        for candidate in chunk:
            try:
                verify(db, candidate)()
                outcomes.append("IN")
            except QianbaoError as error:
                outcomes.append(error.code)
        return outcomes

    with ThreadPoolExecutor(max_workers=20) as pool:
        results = [
            c for chunk in pool.map(attack, [guesses[i::20] for i in range(20)]) for c in chunk
        ]
    assert "IN" not in results
    assert results.count("otp.mismatch") + results.count("otp.exhausted") >= 5
    attempts = db.run(lambda tx: tx.session.scalars(select(SmsChallenge.attempts)).one())
    assert attempts == 5  # exactly the allowed tries were evaluated, no more
    assert results.count("otp.mismatch") == 4


def test_parallel_requests_cannot_exceed_the_sending_caps(db: Database) -> None:
    def ask(_: int) -> str:
        try:
            service.send_code(db, UK, "signup", HOME, "en", AGREEMENT)
            return "sent"
        except QianbaoError as error:
            return error.code

    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(ask, range(20)))
    assert results.count("sent") == 1
    assert set(results) == {"sent", "otp.resend_too_soon"}
    db.settings.sms_resend_cooldown_seconds = 0
    db.settings.sms_per_prefix_per_hour = 1000  # this test is about the number's own cap
    db.settings.sms_per_purpose_per_hour = db.settings.sms_per_purpose_per_day = 1000
    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(ask, range(20)))
    assert results.count("sent") == 4  # five an hour, one already sent
    assert count(db, OutboxMessage) == 5


def test_agreement_row_is_written_once_per_account(db: Database) -> None:
    sign_up(db)
    assert count(db, AgreementAcceptance) == 1


def test_lock_expiry_is_measured_from_the_locking_failure(db: Database, clock: FrozenClock) -> None:
    db.settings.sms_failures_before_lock = 3
    code = send_signup_code(db)
    for _ in range(3):
        error = refused(verify(db, wrong_code(code)))
    assert error.code == "otp.locked"
    clock.advance(seconds=24 * 3600 - 1)
    assert refused(verify(db, code)).code == "otp.locked"
    clock.advance(seconds=1)
    assert (clock.now() - timedelta(days=1)) <= clock.now()
    assert sign_up(db).is_new_account


def test_parallel_requests_cannot_exceed_an_address_quota(db: Database) -> None:
    db.settings.sms_per_ip_per_hour = 7
    numbers = [parse_mobile(f"07911 2{n:05d}", "GB") for n in range(30)]

    def ask(phone: PhoneNumber) -> str:
        try:
            service.send_code(db, phone, "signup", HOME, "en", AGREEMENT)
            return "sent"
        except QianbaoError as error:
            return error.code

    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(ask, numbers))
    assert results.count("sent") == 7
    assert results.count("otp.ip_hourly_cap") == 23
    assert count(db, OutboxMessage) == 7
