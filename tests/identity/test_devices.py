"""Account security people expect: a notice for a new device with a link that ends that
session, device names on the sessions page, and an SMS code for a password sign-in from
a new country."""

from __future__ import annotations

import re
import threading
from dataclasses import replace

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from qianbao.app import create_app
from qianbao.clock import FrozenClock
from qianbao.db import Database, Tx
from qianbao.errors import NotAuthenticated, QianbaoError
from qianbao.identity import devices, new_country, security, service
from qianbao.identity.models import KnownDevice, SignInCountry, User
from qianbao.identity.new_country import SmsCodeRequired
from qianbao.identity.service import Client, SignedIn
from qianbao.notify.email import read_email_outbox
from qianbao.notify.service import read_outbox
from qianbao.settings import Settings
from tests.helpers import HOME, UK, last_code, sign_up, wrong_code
from tests.web.test_pages import csrf, sign_up_by_form

ANDROID = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Mobile Safari/537.36"
)
IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)
LONDON_IP, PARIS_IP = "203.0.113.7", "198.51.100.20"  # HOME's address is the London one
PASSWORD = "tea with plenty of milk"


@pytest.fixture(autouse=True)
def _countries(settings: Settings) -> None:
    settings.ip_countries = {"203.0.113.0/24": "GB", "198.51.100.0/24": "FR"}


def notices(db: Database) -> list[str]:
    """The new-device SMS notices sent to UK, newest first."""
    messages = db.run(lambda tx: read_outbox(tx, UK.e164, 50))
    return [m.body for m in messages if devices.END_LINK_PATH in m.body]


def sms_login(db: Database, client: Client) -> SignedIn:
    service.send_code(db, UK, "login", client, "en")
    return service.sign_in(db, UK, "login", last_code(db, UK), client)


def end_path(text: str) -> str:
    found = re.search(r"https?://[^/\s]+(/sessions/end/[A-Za-z0-9_-]{43})", text)
    assert found, text
    return found.group(1)


# --- the new-device notice -----------------------------------------------------------


def test_a_new_device_gets_one_notice_and_the_same_device_none_again(
    db: Database, clock: FrozenClock
) -> None:
    first = sign_up(db)  # a new account's first device is no news
    assert notices(db) == [] and first.device_id

    clock.advance(seconds=61)
    phone = Client(LONDON_IP, ANDROID)  # no device cookie yet: a new device
    on_phone = sms_login(db, phone)
    assert on_phone.device_id != first.device_id
    [notice] = notices(db)
    assert f"{on_phone.session_id}" not in notice  # the link is signed, not a bare id
    # On the person's clock: Beijing's until they choose one (not the number's zone).
    assert "Jan 1, 2026, 4:01\u202fPM (China Standard Time)" in notice
    assert "Guernsey" not in notice
    assert "United Kingdom" in notice and "Chrome Mobile on Android" in notice

    clock.advance(seconds=61)
    sms_login(db, replace(phone, device_id=on_phone.device_id))  # the same phone again
    clock.advance(seconds=61)
    sms_login(db, replace(HOME, device_id=first.device_id))  # the sign-up device again
    assert len(notices(db)) == 1


def test_one_new_device_signing_in_many_times_at_once_is_new_once(db: Database) -> None:
    user_id = sign_up(db).account.id
    paris = Client(PARIS_IP, ANDROID, devices.new_device_id())
    start, failures = threading.Barrier(8), []

    def sign_in() -> None:
        start.wait()
        try:
            db.run(
                lambda tx: service.open_session(
                    tx, tx.session.get_one(User, user_id), paris, "api"
                ),
                isolation="read committed",  # as the SMS and password sign-ins run
            )
        except Exception as error:
            failures.append(error)

    threads = [threading.Thread(target=sign_in) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert len(notices(db)) == 1
    known = db.run(lambda tx: tx.session.scalars(select(KnownDevice)).all())
    assert len(known) == 2  # the sign-up's device and this one
    countries = db.run(lambda tx: tx.session.scalars(select(SignInCountry.country)).all())
    assert sorted(countries) == ["FR", "GB"]


def test_the_device_id_is_kept_only_as_a_keyed_hash_and_odd_cookies_get_a_new_one(
    db: Database, clock: FrozenClock
) -> None:
    first = sign_up(db, client=replace(HOME, device_id="not-a-device-id"))
    assert first.device_id != "not-a-device-id"
    stored = db.run(lambda tx: list(tx.session.scalars(select(KnownDevice.device_hash))))
    assert len(stored) == 1 and first.device_id not in stored[0]


def test_the_notice_is_in_the_persons_language_and_goes_by_proven_email_too(
    db: Database, clock: FrozenClock
) -> None:
    account = sign_up(db).account

    def prove_email(tx: Tx) -> None:
        user = tx.session.get_one(User, account.id)
        user.email, user.email_verified_at, user.language = (
            "ada@example.com",
            clock.now(),
            "zh_Hans",
        )

    db.run(prove_email)
    clock.advance(seconds=61)
    sms_login(db, Client("192.0.2.1", IPHONE))  # an address of no known country
    [sms] = notices(db)
    assert "未知地点" in sms and "iOS 上的 Mobile Safari" in sms
    [mail] = db.run(lambda tx: read_email_outbox(tx, "ada@example.com", 5))
    assert mail.subject == "您的钱包账户有新的登录" and "设备：iOS 上的 Mobile Safari" in mail.body
    assert end_path(mail.body) == end_path(sms)


def test_the_notice_tells_the_time_in_the_zone_the_person_chose(
    db: Database, clock: FrozenClock
) -> None:
    account = sign_up(db).account  # a UK number, in New York
    db.run(lambda tx: service.set_time_zone(tx, account.id, "America/New_York"))
    clock.advance(seconds=61)  # 08:01 UTC
    sms_login(db, Client(PARIS_IP, ANDROID))
    [sms] = notices(db)
    assert "Jan 1, 2026, 3:01\u202fAM (Eastern Standard Time)" in sms

    def in_chinese(tx: Tx) -> None:
        tx.session.get_one(User, account.id).language = "zh_Hans"

    db.run(in_chinese)
    clock.advance(hours=5)  # 13:01 UTC
    sms_login(db, Client(LONDON_IP, IPHONE))
    sms = notices(db)[0]
    assert "2026年1月1日 08:01（北美东部标准时间）" in sms
    shown = db.run(lambda tx: devices.linked_session(tx, end_path(sms).rsplit("/", 1)[1], "en"))
    assert shown is not None and shown.facts.time.endswith("(Eastern Standard Time)")


def test_the_link_ends_that_session_only_once_and_needs_no_login(
    client: TestClient, clock: FrozenClock
) -> None:
    db: Database = client.app.state.db  # type: ignore[attr-defined]
    mine = sign_up(db)
    clock.advance(seconds=61)
    theirs = sms_login(db, Client(PARIS_IP, ANDROID))
    path = end_path(notices(db)[0])

    shown = client.get(path)  # no login: this browser has no session
    assert shown.status_code == 200
    assert "Chrome Mobile on Android" in shown.text and "France" in shown.text
    db.run(lambda tx: service.authenticate(tx, theirs.token))  # a GET ends nothing
    token = re.search(r'name="csrf" value="([^"]+)"', shown.text)
    assert token
    ended = client.post(path, data={"csrf": token.group(1)})
    assert ended.status_code == 200 and "This session has ended" in ended.text
    with pytest.raises(NotAuthenticated):
        db.run(lambda tx: service.authenticate(tx, theirs.token))
    db.run(lambda tx: service.authenticate(tx, mine.token))  # the owner's stays

    again = client.post("/api/v1/auth/session-ends", json={"token": path.rsplit("/", 1)[1]})
    assert again.status_code == 200 and again.json() == {"ended": False}


def test_a_forged_or_altered_link_ends_nothing(client: TestClient, clock: FrozenClock) -> None:
    db: Database = client.app.state.db  # type: ignore[attr-defined]
    sign_up(db)
    clock.advance(seconds=61)
    theirs = sms_login(db, Client(PARIS_IP, ANDROID))
    token = end_path(notices(db)[0]).rsplit("/", 1)[1]
    altered = token[:-2] + ("AA" if token[-2:] != "AA" else "BB")
    answer = client.post("/api/v1/auth/session-ends", json={"token": altered})
    assert answer.status_code == 404 and answer.json()["code"] == "session_link.invalid"
    assert client.get(devices.END_LINK_PATH + altered).status_code == 404
    db.run(lambda tx: service.authenticate(tx, theirs.token))  # still signed in
    ended = client.post("/api/v1/auth/session-ends", json={"token": token})
    assert ended.json() == {"ended": True}


# --- the sessions page ---------------------------------------------------------------


def test_the_sessions_page_and_api_name_devices_not_user_agents(
    settings: Settings, clock: FrozenClock
) -> None:
    app = create_app(settings, clock)
    with TestClient(
        app, base_url="http://127.0.0.1", client=(LONDON_IP, 5000), headers={"user-agent": IPHONE}
    ) as browser:
        sign_up_by_form(browser)
        db: Database = app.state.db
        clock.advance(seconds=61)
        sms_login(db, Client(PARIS_IP, ANDROID))
        shown = browser.get("/me/sessions").text
        assert "Mobile Safari on iOS" in shown and "Chrome Mobile on Android" in shown
        assert IPHONE not in shown and ANDROID not in shown
        assert "United Kingdom" in shown and "France" in shown
        assert "(China Standard Time)" in shown  # times on the person's clock (Beijing's)
        assert " UTC" not in shown


# --- a new country asks for the SMS code ---------------------------------------------


def with_password(db: Database, clock: FrozenClock) -> SignedIn:
    signed = sign_up(db)  # from London: the account knows the United Kingdom
    clock.advance(seconds=61)
    security.send_security_code(db, signed.account.id, HOME, "en")
    security.set_login_password(
        db, signed.account.id, signed.session_id, PASSWORD, sms_code=last_code(db, UK)
    )
    return signed


def password_login(db: Database, client: Client) -> SignedIn | SmsCodeRequired:
    return security.sign_in_with_password(db, "07911 123456", UK, PASSWORD, client)


def test_a_password_sign_in_from_a_new_country_needs_the_sms_code(
    db: Database, clock: FrozenClock
) -> None:
    with_password(db, clock)
    assert isinstance(password_login(db, Client(LONDON_IP, ANDROID)), SignedIn)  # known

    clock.advance(seconds=61)
    paris = Client(PARIS_IP, ANDROID)
    asked = password_login(db, paris)
    assert isinstance(asked, SmsCodeRequired)  # the right password opened nothing
    code = last_code(db, UK)
    with pytest.raises(QianbaoError) as wrong:
        new_country.confirm(db, asked.challenge, wrong_code(code), paris)
    assert wrong.value.code == "otp.mismatch"
    # A forged challenge: its first character (a hex digit of the account id) changed;
    # to an upper-case letter, another spelling of the same digit for "b" and "c", which
    # is refused too (only the token as issued is one).
    forged = ("B" if asked.challenge[0] != "B" else "C") + asked.challenge[1:]
    with pytest.raises(NotAuthenticated):  # a challenge is no password: forged, refused
        new_country.confirm(db, forged, code, paris)
    user_hex, _, rest = asked.challenge.partition(".")
    with pytest.raises(NotAuthenticated):  # the same id spelt otherwise: not as issued
        new_country.confirm(db, f"{user_hex.upper()}.{rest}", code, paris)
    signed = new_country.confirm(db, asked.challenge, code, paris)
    db.run(lambda tx: service.authenticate(tx, signed.token))

    clock.advance(seconds=61)
    assert isinstance(password_login(db, paris), SignedIn)  # France is known now


def test_the_challenge_runs_out_and_dies_with_a_password_change(
    db: Database, clock: FrozenClock
) -> None:
    signed = with_password(db, clock)
    clock.advance(seconds=61)
    asked = password_login(db, Client(PARIS_IP, ANDROID))
    assert isinstance(asked, SmsCodeRequired)
    clock.advance(seconds=db.settings.new_country_code_window_seconds + 1)
    with pytest.raises(NotAuthenticated) as late:
        new_country.confirm(db, asked.challenge, last_code(db, UK), Client(PARIS_IP))
    assert late.value.code == "login.challenge_expired"

    asked = password_login(db, Client(PARIS_IP, ANDROID))
    assert isinstance(asked, SmsCodeRequired)
    clock.advance(seconds=61)
    security.send_security_code(db, signed.account.id, HOME, "en")
    security.set_login_password(
        db, signed.account.id, signed.session_id, PASSWORD + "!", sms_code=last_code(db, UK)
    )
    with pytest.raises(NotAuthenticated) as changed:
        new_country.resend(db, asked.challenge, Client(PARIS_IP))
    assert changed.value.code == "login.challenge_invalid"


def test_unknown_places_and_sms_logins_ask_nothing_more(db: Database, clock: FrozenClock) -> None:
    with_password(db, clock)
    assert isinstance(password_login(db, Client("192.0.2.1")), SignedIn)  # country unknown
    clock.advance(seconds=61)
    sms_login(db, Client(PARIS_IP))  # the SMS code is the proof; France is learnt
    assert isinstance(password_login(db, Client(PARIS_IP)), SignedIn)


def test_the_api_answers_202_sms_code_required_then_signs_in_with_the_code(
    settings: Settings, clock: FrozenClock
) -> None:
    app = create_app(settings, clock)
    db: Database = app.state.db
    with_password(db, clock)
    clock.advance(seconds=61)
    with TestClient(app, base_url="http://127.0.0.1", client=(PARIS_IP, 5000)) as api:
        login = {"login": "07911 123456", "country": "GB", "password": PASSWORD}
        asked = api.post("/api/v1/auth/password-sessions", json=login)
        assert asked.status_code == 202, asked.text
        body = asked.json()
        assert body["status"] == "sms_code_required" and "token" not in body
        assert body["phone"] == UK.masked() and body["phone"] in body["message"]
        code = last_code(db, UK)
        step = {"challenge": body["challenge"], "code": wrong_code(code)}
        refused = api.post("/api/v1/auth/password-sessions/sms", json=step)
        assert refused.status_code == 400 and refused.json()["code"] == "otp.mismatch"
        step["code"] = code
        signed = api.post("/api/v1/auth/password-sessions/sms", json=step)
        assert signed.status_code == 201, signed.text
        token = signed.json()["token"]
        assert api.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).is_success
        listed = api.get("/api/v1/me/sessions", headers={"Authorization": f"Bearer {token}"})
        mine = [s for s in listed.json() if s["current"]]
        assert mine[0]["country"] == "FR" and mine[0]["place"] == "France"


def test_the_web_login_asks_for_the_code_from_a_new_country(
    settings: Settings, clock: FrozenClock
) -> None:
    app = create_app(settings, clock)
    db: Database = app.state.db
    with_password(db, clock)
    clock.advance(seconds=61)
    with TestClient(app, base_url="http://127.0.0.1", client=(PARIS_IP, 5000)) as browser:
        form = {"csrf": csrf(browser, "/login/password"), "login": "07911 123456"}
        asked = browser.post(
            "/login/password", data={**form, "country": "GB", "password": PASSWORD}
        )
        assert asked.status_code == 200 and 'name="challenge"' in asked.text
        assert browser.get("/me").url.path == "/"  # no session yet
        challenge = re.search(r'name="challenge" value="([^"]+)"', asked.text)
        assert challenge
        step = {"csrf": form["csrf"], "challenge": challenge.group(1)}
        code = last_code(db, UK)
        wrong = browser.post("/login/password/code", data={**step, "code": wrong_code(code)})
        assert wrong.status_code == 400 and browser.get("/me").url.path == "/"
        done = browser.post("/login/password/code", data={**step, "code": code})
        assert done.url.path == "/home"
        assert browser.cookies.get("qb_device")
