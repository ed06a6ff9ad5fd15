"""Use cases of the identity domain: number lookup, SMS codes, sign-up, sessions.

Rules for SMS codes follow NIST SP 800-63B and OWASP ASVS: random codes, kept only as
keyed hashes, single use, short-lived, few tries per code, a lockout per number that
a fresh code does not reset, and sending limits that stop SMS pumping.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, Literal, NamedTuple, NoReturn

from sqlalchemy import bindparam, select, update

from qianbao.db import Database, Tx
from qianbao.errors import Conflict, InvalidInput, NotAuthenticated, NotFound, RecordedRefusal
from qianbao.i18n import N_, Language, current_language, language_scope, translate
from qianbao.i18n.formats import DEFAULT_TIME_ZONE, is_time_zone
from qianbao.identity import agreements, devices, places, session_cache
from qianbao.identity.codes import keyed_hash, new_sms_code, new_token, same_hash
from qianbao.identity.models import AgreementAcceptance, AuthSession, SmsChallenge, User
from qianbao.identity.phone import PhoneNumber, from_e164
from qianbao.notify import service as notify
from qianbao.throttling import quotas, ratelimit
from qianbao.throttling.quotas import Quota
from qianbao.throttling.ratelimit import Limit

# security: a step-up code a signed-in person enters to change passwords or email.
Purpose = Literal["signup", "login", "security"]
# The SMS use cases first lock the number's own rows (``ratelimit.claim``) and read
# nothing about the number before that, so they are exact at READ COMMITTED; run
# SERIALIZABLE, PostgreSQL's page-level predicate locks on small indexes make
# unrelated sign-ups abort each other (measured: 2.5 retries per sign-up at 8 threads).
# The unique phone number on ``users`` stays the last line of defence.
NUMBER_LOCKED: Literal["read committed"] = "read committed"
HOUR, DAY = timedelta(hours=1), timedelta(days=1)
DEMO_NUMBERS = ("+447911000001", "+6591234567", "+8613800138000")


@dataclass(frozen=True)
class Client:
    """Who is asking: the address, the user agent and the device id it presented (the
    device cookie, or an API client's ``device_id``; empty: none)."""

    ip: str
    user_agent: str = ""
    device_id: str = ""


@dataclass(frozen=True)
class NumberStatus:
    phone: PhoneNumber
    has_account: bool


@dataclass(frozen=True)
class CodeSent:
    phone: PhoneNumber
    purpose: Purpose
    code_length: int
    expires_at: datetime
    resend_at: datetime


@dataclass(frozen=True)
class Account:
    id: uuid.UUID
    phone: PhoneNumber
    language: Language
    verification_level: str
    created_at: datetime
    time_zone: str = DEFAULT_TIME_ZONE  # the IANA zone the pages show times in


@dataclass(frozen=True)
class SignedIn:
    account: Account
    session_id: uuid.UUID
    token: str
    expires_at: datetime
    is_new_account: bool
    # The device id the client keeps (the cookie's value): the one it presented, or new.
    device_id: str = ""


class OpenedSession(NamedTuple):
    """A new session: its token (the cookie or bearer value), its row, the device id."""

    token: str
    session: AuthSession
    device_id: str


@dataclass(frozen=True)
class CurrentSession:
    session_id: uuid.UUID
    account: Account


@dataclass(frozen=True)
class SessionInfo:
    id: uuid.UUID
    kind: str
    created_at: datetime
    last_seen_at: datetime
    ip: str
    user_agent: str
    is_current: bool
    device_name: str  # "Chrome Mobile on Android", in the current language
    country: str | None
    place: str  # the country's name in the current language, or "unknown place"


# --- numbers -------------------------------------------------------------------------


def check_number(db: Database, phone: PhoneNumber, client: Client) -> NumberStatus:
    """Tell the app whether a number goes to sign-up or to login, as the original does.

    This reveals whether a number has an account, so it is limited per address.
    """
    quota = Quota(
        f"lookup:ip:{ratelimit.address(client.ip)}",
        db.settings.number_lookups_per_ip_per_hour,
        HOUR,
        "rate.lookups",
        _TOO_MANY_FROM_HERE,
    )
    db.run(lambda tx: quotas.take(tx, [quota]), isolation="read committed")
    return db.run(lambda tx: NumberStatus(phone, _user_by_phone(tx, phone.e164) is not None))


# --- SMS codes -----------------------------------------------------------------------

_TOO_MANY_FROM_HERE = N_("Too many requests from your network. Try again in {wait}.")


def send_code(
    db: Database,
    phone: PhoneNumber,
    purpose: Purpose,
    client: Client,
    language: Language,
    agreement_version: str | None = None,
) -> CodeSent:
    """Send a fresh code to ``phone`` if every limit allows it; older codes stop working.

    Two transactions: first the shared quotas (the address, the country, the number
    range) in a short one of their own, so that a popular country's counter is locked
    for one increment and not for the whole use case; then the use case itself. A
    request refused after its quotas were taken still counts against them, as an
    attempt should.
    """
    db.run(
        lambda tx: _admit_code_request(tx, phone, purpose, client, agreement_version),
        isolation="read committed",
    )
    return db.run(
        lambda tx: request_code(tx, phone, purpose, client, language, agreement_version),
        isolation=NUMBER_LOCKED,
    )


def _check_purpose(
    tx: Tx, phone: PhoneNumber, purpose: Purpose, agreement_version: str | None
) -> None:
    has_account = _user_by_phone(tx, phone.e164) is not None
    if purpose == "signup":
        if has_account:
            raise Conflict(
                "account.exists", N_("This number already has an account. Log in instead.")
            )
        if agreement_version != agreements.CURRENT_VERSION:
            raise InvalidInput(
                "agreement.required",
                N_("Read and accept the user agreement to create an account."),
                details={"current_version": agreements.CURRENT_VERSION},
            )
    elif not has_account:
        raise NotFound("account.not_found", N_("No account uses this number. Sign up instead."))


def _admit_code_request(
    tx: Tx, phone: PhoneNumber, purpose: Purpose, client: Client, agreement_version: str | None
) -> None:
    # What the number's own limits will refuse costs the shared quotas nothing (a
    # person pressing "resend" must not use up their neighbours' number range).
    # ``request_code`` checks these again, exactly, under the number's lock.
    _check_purpose(tx, phone, purpose, agreement_version)
    _refuse_if_locked(tx, phone)
    _enforce_number_limits(tx, phone, purpose)
    quotas.take(tx, _shared_quotas(tx, phone, client))
    _refuse_country_hopping(tx, phone, client)


def request_code(
    tx: Tx,
    phone: PhoneNumber,
    purpose: Purpose,
    client: Client,
    language: Language,
    agreement_version: str | None = None,
) -> CodeSent:
    """The use case proper: the number's own limits, then a new code and its SMS.

    Callers go through ``send_code``, which takes the shared quotas first.
    """
    settings = tx.settings
    number_key = _number_limits(tx, phone)[0].key
    # Everything about the number is read after this lock, so it is exact at READ COMMITTED.
    ratelimit.claim(tx, [number_key, _lock_key(phone)])
    _check_purpose(tx, phone, purpose, agreement_version)
    _refuse_if_locked(tx, phone)
    _enforce_number_limits(tx, phone, purpose)
    ratelimit.record(tx, number_key)  # one event for the totals...
    ratelimit.record(tx, _purpose_limits(tx, phone, purpose)[0].key)  # ...one for the purpose

    now = tx.now()
    _close_open_challenges(tx, phone.e164, purpose, "superseded")
    code = _choose_code(tx, phone)
    challenge = SmsChallenge(
        phone_e164=phone.e164,
        purpose=purpose,
        code_hash="",
        created_at=now,
        expires_at=now + timedelta(seconds=settings.sms_code_ttl_seconds),
        language=language,
        ip=client.ip,
        agreement_version=agreement_version if purpose == "signup" else None,
        agreement_accepted_at=now if purpose == "signup" else None,
    )
    challenge.id = uuid.uuid4()
    challenge.code_hash = _code_hash(tx, challenge.id, code)
    tx.session.add(challenge)
    with language_scope(language):
        text = translate(
            N_(
                "Your Qianbao code is {code}. It is valid for {minutes} min. "
                "Never share it with anyone, including Qianbao staff."
            ),
            {"code": code, "minutes": settings.sms_code_ttl_seconds // 60},
        )
    notify.queue_sms(tx, phone.e164, text, language)
    return CodeSent(
        phone,
        purpose,
        len(code),
        challenge.expires_at,
        now + timedelta(seconds=settings.sms_resend_cooldown_seconds),
    )


def _number_limits(tx: Tx, phone: PhoneNumber) -> list[Limit]:
    """The number's total caps, whatever the codes were for: exact sliding windows."""
    s = tx.settings
    number = f"sms:number:{phone.e164}"
    wait_number = N_("Too many codes were sent to this number. Try again in {wait}.")
    return [
        Limit(number, s.sms_per_number_per_hour, HOUR, "otp.number_hourly_cap", wait_number),
        Limit(number, s.sms_per_number_per_day, DAY, "otp.number_daily_cap", wait_number),
    ]


def _purpose_limits(tx: Tx, phone: PhoneNumber, purpose: Purpose) -> list[Limit]:
    """The cooldown and quotas of one purpose: a sign-up code just sent does not hold
    back the payment-password code asked for a moment later."""
    s = tx.settings
    key = f"sms:number:{phone.e164}:{purpose}"
    wait_purpose = N_("Too many codes for this were sent to this number. Try again in {wait}.")
    return [
        Limit(
            key,
            1,
            timedelta(seconds=s.sms_resend_cooldown_seconds),
            "otp.resend_too_soon",
            N_("A code was just sent. You can ask for another in {wait}."),
        ),
        Limit(key, s.sms_per_purpose_per_hour, HOUR, "otp.purpose_hourly_cap", wait_purpose),
        Limit(key, s.sms_per_purpose_per_day, DAY, "otp.purpose_daily_cap", wait_purpose),
    ]


def _enforce_number_limits(tx: Tx, phone: PhoneNumber, purpose: Purpose) -> None:
    # The purpose's own first: its cooldown is the answer a person pressing "resend" needs.
    ratelimit.enforce(tx, *_purpose_limits(tx, phone, purpose))
    ratelimit.enforce(tx, *_number_limits(tx, phone))


def _shared_quotas(tx: Tx, phone: PhoneNumber, client: Client) -> list[Quota]:
    """Quotas on what many numbers share: the address asking, the country, the range."""
    s = tx.settings
    ip = f"sms:ip:{ratelimit.address(client.ip)}"
    prefix = phone.e164[: -s.sms_prefix_tail_digits] if s.sms_prefix_tail_digits else phone.e164
    return [
        Quota(ip, s.sms_per_ip_per_hour, HOUR, "otp.ip_hourly_cap", _TOO_MANY_FROM_HERE),
        Quota(ip, s.sms_per_ip_per_day, DAY, "otp.ip_daily_cap", _TOO_MANY_FROM_HERE),
        Quota(
            f"sms:country:{phone.country_code}",
            s.sms_per_country_per_hour,
            HOUR,
            "otp.country_cap",
            N_("We are sending too many codes to this country right now. Try again in {wait}."),
        ),
        Quota(
            f"sms:prefix:{prefix}",
            s.sms_per_prefix_per_hour,
            HOUR,
            "otp.prefix_cap",
            N_("Too many codes were sent to numbers like this one. Try again in {wait}."),
        ),
    ]


def _refuse_country_hopping(tx: Tx, phone: PhoneNumber, client: Client) -> None:
    """One address asking for codes to many countries is the mark of SMS pumping.

    Runs after the address's quota was taken, whose row lock serializes the address.
    """
    key = f"sms:countries:{client.ip}"
    last_use = quotas.marks_since(tx, key, tx.now() - DAY)
    country = str(phone.country_code)
    if country not in last_use and len(last_use) >= tx.settings.sms_countries_per_ip_per_day:
        # A country stops counting a day after its most recent code.
        wait = (min(last_use.values()) + DAY - tx.now()).total_seconds()
        raise ratelimit.refusal(
            "otp.too_many_countries",
            N_(
                "Your network has asked for codes for numbers in too many countries today. "
                "Try again in {wait}."
            ),
            wait,
            quota=tx.settings.sms_countries_per_ip_per_day,
            window=DAY,
        )
    quotas.touch_mark(tx, key, country)


def _choose_code(tx: Tx, phone: PhoneNumber) -> str:
    if tx.settings.demo and phone.e164 in DEMO_NUMBERS:
        return tx.settings.demo_sms_code
    return new_sms_code(tx.settings.sms_code_length)


def _code_hash(tx: Tx, challenge_id: uuid.UUID, code: str) -> str:
    return keyed_hash(tx.settings.hmac_key(), "sms", str(challenge_id), code)


def _lock_key(phone: PhoneNumber) -> str:
    return f"otp:lock:{phone.e164}"


def _failure_key(phone: PhoneNumber) -> str:
    return f"otp:fail:{phone.e164}"


def _refuse_if_locked(tx: Tx, phone: PhoneNumber) -> None:
    locked_at = ratelimit.latest(tx, _lock_key(phone))
    if locked_at is None:
        return
    until = locked_at + timedelta(seconds=tx.settings.sms_lock_seconds)
    if until > tx.now():
        raise ratelimit.refusal(
            "otp.locked",
            _LOCKED,
            (until - tx.now()).total_seconds(),
        )


_LOCKED = N_(
    "Too many wrong codes for this number. For your safety, signing in by code is paused. "
    "Try again in {wait}."
)


def _close_open_challenges(tx: Tx, e164: str, purpose: Purpose, reason: str) -> None:
    tx.session.execute(
        update(SmsChallenge)
        .where(
            SmsChallenge.phone_e164 == e164,
            SmsChallenge.purpose == purpose,
            SmsChallenge.closed_reason.is_(None),
        )
        .values(closed_reason=reason, closed_at=tx.now())
    )


def code_status(tx: Tx, phone: PhoneNumber, purpose: Purpose) -> CodeSent | None:
    """The code most recently sent to ``phone`` for ``purpose``, if one may still be tried."""
    challenge = _latest_challenge(tx, phone.e164, purpose)
    if challenge is None or challenge.closed_reason is not None:
        return None
    cooldown = timedelta(seconds=tx.settings.sms_resend_cooldown_seconds)
    return CodeSent(
        phone,
        purpose,
        tx.settings.sms_code_length,
        challenge.expires_at,
        challenge.created_at + cooldown,
    )


def sign_in(
    db: Database,
    phone: PhoneNumber,
    purpose: Purpose,
    code: str,
    client: Client,
    kind: str = "api",
) -> SignedIn:
    """Check a code and open a session (creating the account on sign-up)."""
    return db.run(
        lambda tx: verify_code(tx, phone, purpose, code, client, kind), isolation=NUMBER_LOCKED
    )


def verify_code(
    tx: Tx, phone: PhoneNumber, purpose: Purpose, code: str, client: Client, kind: str = "api"
) -> SignedIn:
    """Check a code; on success create the account (sign-up) and a session."""
    challenge = consume_code(tx, phone, purpose, code)
    if purpose == "signup":
        user, is_new = _create_account(tx, phone, challenge, client), True
    else:
        found = _user_by_phone(tx, phone.e164)
        if found is None:
            raise NotFound("account.not_found", N_("No account uses this number. Sign up instead."))
        user, is_new = found, False
    # A new account's first device is no news to its owner: no notice.
    opened = open_session(tx, user, client, kind, notify_new_device=not is_new)
    return as_signed_in(user, opened, is_new)


def as_signed_in(user: User, opened: OpenedSession, is_new_account: bool = False) -> SignedIn:
    session = opened.session
    return SignedIn(
        to_account(user),
        session.id,
        opened.token,
        session.expires_at,
        is_new_account,
        opened.device_id,
    )


def consume_code(tx: Tx, phone: PhoneNumber, purpose: Purpose, code: str) -> SmsChallenge:
    """Check the newest code sent to ``phone`` for ``purpose`` and use it up.

    A wrong code counts against the code (5 tries) and the number (20 a day), and
    that count is committed even though the request is refused.
    """
    code = code.strip()
    if not (code.isascii() and code.isdigit() and len(code) in range(4, 9)):
        raise InvalidInput("otp.format", N_("Enter the code from the SMS: digits only."))
    # Every check of this number's codes queues behind this claim.
    ratelimit.claim(tx, [_lock_key(phone), _failure_key(phone)])
    _refuse_if_locked(tx, phone)
    challenge = _latest_challenge(tx, phone.e164, purpose)
    if challenge is None or challenge.closed_reason == "superseded":
        raise InvalidInput("otp.none", N_("Ask for a code first."))
    if challenge.closed_reason == "used":
        raise InvalidInput("otp.used", N_("This code was already used. Ask for a new one."))
    if challenge.closed_reason == "exhausted":
        raise InvalidInput(
            "otp.exhausted", N_("Too many wrong tries for this code. Ask for a new one.")
        )
    if challenge.expires_at <= tx.now():
        raise InvalidInput("otp.expired", N_("This code has expired. Ask for a new one."))

    if not same_hash(challenge.code_hash, _code_hash(tx, challenge.id, code)):
        _refuse_wrong_code(tx, phone, challenge)
    challenge.closed_reason, challenge.closed_at = "used", tx.now()
    return challenge


def _latest_challenge(tx: Tx, e164: str, purpose: Purpose) -> SmsChallenge | None:
    query = (
        select(SmsChallenge)
        .where(SmsChallenge.phone_e164 == e164, SmsChallenge.purpose == purpose)
        .order_by(SmsChallenge.created_at.desc())
        .limit(1)
    )
    return tx.session.scalars(query).first()


def _refuse_wrong_code(tx: Tx, phone: PhoneNumber, challenge: SmsChallenge) -> NoReturn:
    """Remember a wrong code (the transaction commits it), then refuse."""
    settings = tx.settings
    challenge.attempts += 1
    ratelimit.record(tx, _failure_key(phone))
    window_start = tx.now() - timedelta(seconds=settings.sms_failure_window_seconds)
    if ratelimit.count(tx, _failure_key(phone), window_start) >= settings.sms_failures_before_lock:
        ratelimit.record(tx, _lock_key(phone))
        for purpose in ("signup", "login", "security"):
            _close_open_challenges(tx, phone.e164, purpose, "exhausted")
        tx.session.flush()
        raise _refusal(
            "otp.locked",
            _LOCKED,
            {"wait": ratelimit.human_wait(settings.sms_lock_seconds)},
            status=429,
            retry_after=settings.sms_lock_seconds,
        )
    left = settings.sms_code_max_attempts - challenge.attempts
    if left <= 0:
        challenge.closed_reason, challenge.closed_at = "exhausted", tx.now()
        tx.session.flush()
        raise _refusal(
            "otp.exhausted", N_("Too many wrong tries for this code. Ask for a new one."), {}
        )
    tx.session.flush()
    raise _refusal(
        "otp.mismatch",
        N_("The code is not right. Tries left for this code: {left}."),
        {"left": left},
        details={"tries_left": left},
    )


def _refusal(
    code: str,
    message: str,
    params: dict[str, object],
    *,
    status: int = 400,
    retry_after: float | None = None,
    details: dict[str, object] | None = None,
) -> RecordedRefusal:
    return RecordedRefusal(
        code, message, params, details=details, retry_after=retry_after, status=status
    )


def _create_account(tx: Tx, phone: PhoneNumber, challenge: SmsChallenge, client: Client) -> User:
    if _user_by_phone(tx, phone.e164) is not None:
        raise Conflict("account.exists", N_("This number already has an account. Log in instead."))
    now = tx.now()
    user = User(phone_e164=phone.e164, language=challenge.language, created_at=now)
    tx.session.add(user)
    tx.session.flush()
    tx.session.add(
        AgreementAcceptance(
            user_id=user.id,
            version=challenge.agreement_version or agreements.CURRENT_VERSION,
            language=challenge.language,
            accepted_at=challenge.agreement_accepted_at or now,
            ip=client.ip,
        )
    )
    return user


def _user_by_phone(tx: Tx, e164: str) -> User | None:
    return tx.session.scalars(select(User).where(User.phone_e164 == e164)).first()


def to_account(user: User) -> Account:
    language: Language = "zh_Hans" if user.language == "zh_Hans" else "en"
    return Account(
        user.id,
        from_e164(user.phone_e164),
        language,
        user.verification_level,
        user.created_at,
        user.time_zone,
    )


# --- sessions ------------------------------------------------------------------------


def _token_hash(tx: Tx, token: str) -> str:
    return keyed_hash(tx.settings.hmac_key(), "session", token)


def open_session(
    tx: Tx, user: User, client: Client, kind: str, *, notify_new_device: bool = True
) -> OpenedSession:
    """A new session on the client's device, in the country its address is from; the
    device and country are remembered, and a device new to the account sets off the
    notice (SMS, and email when proven) with a link that ends this session."""
    now = tx.now()
    token = new_token()
    device_id = devices.usable_device_id(client.device_id) or devices.new_device_id()
    device, is_new_device = devices.remember_device(tx, user.id, device_id, client.user_agent)
    country = places.country_of(tx.settings, client.ip)
    session = AuthSession(
        user_id=user.id,
        token_hash=_token_hash(tx, token),
        kind=kind,
        created_at=now,
        last_seen_at=now,
        expires_at=now + timedelta(seconds=tx.settings.session_absolute_seconds),
        ip=client.ip[:64],
        user_agent=client.user_agent[:512],
        country=country,
        device_id=device.id,
    )
    tx.session.add(session)
    tx.session.flush()
    devices.remember_country(tx, user.id, country)
    if is_new_device and notify_new_device:
        devices.queue_new_device_notice(tx, user, session)
    return OpenedSession(token, session, device_id)


# Every signed-in request runs this: one statement built once (the session and the
# columns of its account that a request needs), no ORM entities, and a write only when
# the last-seen time is due to move.
_SESSION_BY_TOKEN: Final = (
    select(
        AuthSession.id,
        AuthSession.revoked_at,
        AuthSession.expires_at,
        AuthSession.last_seen_at,
        User.id.label("user_id"),
        User.phone_e164,
        User.language,
        User.verification_level,
        User.created_at,
        User.time_zone,
    )
    .join(User, User.id == AuthSession.user_id)
    .where(AuthSession.token_hash == bindparam("token_hash"))
)
_SESSION_STATE: Final = select(
    AuthSession.revoked_at, AuthSession.expires_at, AuthSession.last_seen_at
).where(AuthSession.id == bindparam("session_id"))
_TOUCH_SESSION: Final = (
    update(AuthSession)
    .where(AuthSession.id == bindparam("session_id"))
    .values(last_seen_at=bindparam("now"))
)


def authenticate(tx: Tx, token: str) -> CurrentSession:
    """The session a token belongs to, if it is still alive; its last-seen time moves."""
    row = (
        tx.session.connection()
        .execute(_SESSION_BY_TOKEN, {"token_hash": _token_hash(tx, token)})
        .first()
    )
    if row is None:
        raise NotAuthenticated("session.invalid", _PLEASE_LOG_IN)
    _refuse_ended_or_touch(tx, row.id, row.revoked_at, row.expires_at, row.last_seen_at)
    language: Language = "zh_Hans" if row.language == "zh_Hans" else "en"
    account = Account(
        row.user_id,
        from_e164(row.phone_e164),
        language,
        row.verification_level,
        row.created_at,
        row.time_zone,
    )
    session = CurrentSession(row.id, account)
    session_cache.remember(tx, _token_hash(tx, token), row.id, session)
    return session


def check_session(tx: Tx, session_id: uuid.UUID) -> None:
    """The session still alive, inside the caller's transaction (one indexed read): what
    a request whose session came from the cache runs first in each of its transactions,
    so that a session ended anywhere, by any process, stops it at once."""
    row = tx.session.connection().execute(_SESSION_STATE, {"session_id": session_id}).first()
    if row is None:
        raise NotAuthenticated("session.invalid", _PLEASE_LOG_IN)
    _refuse_ended_or_touch(tx, session_id, row.revoked_at, row.expires_at, row.last_seen_at)


def cached_session(db: Database, token: str) -> CurrentSession | None:
    """The session a token opened, as the cache last saw it alive (never more than
    ``session_cache_seconds`` ago), or None: the caller must then ``check_session`` in
    every transaction it runs."""
    found = session_cache.of(db).get(keyed_hash(db.settings.hmac_key(), "session", token))
    return found if isinstance(found, CurrentSession) else None


_PLEASE_LOG_IN: Final = N_("Please log in.")


def _refuse_ended_or_touch(
    tx: Tx,
    session_id: uuid.UUID,
    revoked_at: datetime | None,
    expires_at: datetime,
    last_seen_at: datetime,
) -> None:
    now = tx.now()
    idle = timedelta(seconds=tx.settings.session_idle_seconds)
    if revoked_at is not None:
        session_cache.forget(tx.db, session_id)
        raise NotAuthenticated("session.invalid", _PLEASE_LOG_IN)
    if expires_at <= now or last_seen_at + idle <= now:
        session_cache.forget(tx.db, session_id)
        raise NotAuthenticated(
            "session.expired", N_("Your session has expired. Please log in again.")
        )
    if (now - last_seen_at).total_seconds() >= tx.settings.session_touch_interval_seconds:
        tx.session.connection().execute(_TOUCH_SESSION, {"session_id": session_id, "now": now})


def list_sessions(tx: Tx, user_id: uuid.UUID, current_id: uuid.UUID) -> list[SessionInfo]:
    now = tx.now()
    idle = timedelta(seconds=tx.settings.session_idle_seconds)
    query = (
        select(AuthSession)
        .where(
            AuthSession.user_id == user_id,
            AuthSession.revoked_at.is_(None),
            AuthSession.expires_at > now,
            AuthSession.last_seen_at > now - idle,
        )
        .order_by(AuthSession.last_seen_at.desc())
    )
    language = current_language()
    return [
        SessionInfo(
            s.id,
            s.kind,
            s.created_at,
            s.last_seen_at,
            s.ip,
            s.user_agent,
            s.id == current_id,
            devices.device_name(s.user_agent),
            s.country,
            places.place_name(s.country, language),
        )
        for s in tx.session.scalars(query)
    ]


def revoke_session(tx: Tx, user_id: uuid.UUID, session_id: uuid.UUID) -> None:
    """End one of the user's own sessions (logging out is revoking the current one)."""
    session = tx.session.get(AuthSession, session_id)
    if session is None or session.user_id != user_id:
        raise NotFound("session.not_found", N_("That session does not exist."))
    if session.revoked_at is None:
        session.revoked_at = tx.now()


def get_account(tx: Tx, user_id: uuid.UUID) -> Account:
    return to_account(tx.keep(tx.session.get_one(User, user_id)))


_VERIFICATION_LEVEL: Final = select(User.verification_level).where(User.id == bindparam("user_id"))


def verification_level(tx: Tx, user_id: uuid.UUID) -> str:
    """The account's verification level alone (every payment asks: one column, not the
    whole row)."""
    level: str | None = tx.read(_VERIFICATION_LEVEL, {"user_id": user_id}).scalar()
    if level is None:
        raise NotFound("account.not_found", N_("There is no such account."))
    return level


def tell(
    tx: Tx,
    user_id: uuid.UUID,
    message: str,
    params: Mapping[str, str] | None = None,
    *,
    msgid_params: Mapping[str, str] | None = None,
) -> None:
    """An SMS to the account's number in the account's own language. ``params`` are put
    in as they are (a name, an amount, a reviewer's note: never looked up in the
    catalog, so a shop called "Balance" stays "Balance"); ``msgid_params`` are msgids,
    translated like the message."""
    account = get_account(tx, user_id)
    with language_scope(account.language):
        localized = {key: translate(value) for key, value in (msgid_params or {}).items()}
        text = translate(message, {**(params or {}), **localized})
    notify.queue_sms(tx, account.phone.e164, text, account.language)


def account_by_phone(tx: Tx, phone: PhoneNumber) -> Account:
    """The account of a mobile number (for the back office)."""
    user = _user_by_phone(tx, phone.e164)
    if user is None:
        raise NotFound("account.not_found", N_("No such account."))
    return to_account(tx.keep(user))


def set_language(tx: Tx, user_id: uuid.UUID, language: Language) -> None:
    tx.session.get_one(User, user_id).language = language


def set_time_zone(tx: Tx, user_id: uuid.UUID, zone: str) -> str:
    """The zone whose clock the person's pages show: an IANA name (``Europe/London``)."""
    cleaned = zone.strip()
    if not is_time_zone(cleaned):
        raise InvalidInput(
            "time_zone.unknown",
            N_("Choose a time zone from the list, such as Asia/Shanghai."),
        )
    tx.session.get_one(User, user_id).time_zone = cleaned
    return cleaned


def agreement_record(tx: Tx, user_id: uuid.UUID) -> AgreementAcceptance | None:
    return tx.session.scalars(
        select(AgreementAcceptance)
        .where(AgreementAcceptance.user_id == user_id)
        .order_by(AgreementAcceptance.accepted_at.desc())
    ).first()


# --- demo ----------------------------------------------------------------------------


def seed_demo_accounts(tx: Tx) -> list[Account]:
    """Create the demo accounts if missing (English, Singapore, mainland China numbers)."""
    created = []
    languages: tuple[Language, ...] = ("en", "en", "zh_Hans")
    for e164, language in zip(DEMO_NUMBERS, languages, strict=True):
        user = _user_by_phone(tx, e164)
        if user is None:
            user = User(phone_e164=e164, language=language, created_at=tx.now())
            tx.session.add(user)
            tx.session.flush()
            tx.session.add(
                AgreementAcceptance(
                    user_id=user.id,
                    version=agreements.CURRENT_VERSION,
                    language=language,
                    accepted_at=tx.now(),
                    ip="127.0.0.1",
                )
            )
        created.append(to_account(user))
    return created


# Verification levels, weakest first. Each verified level names the method that reached
# it; what a level may do is decided by policy.py alone.
VERIFICATION_LEVELS: Final = ("unverified", "passport_face", "passport_chip", "bank_card")
VERIFICATION_METHODS = {
    "passport_face": N_("Passport and face"),
    "passport_chip": N_("Passport chip and face"),
    "bank_card": N_("Mainland China bank card"),
}


def is_verified(level: str) -> bool:
    return level != "unverified"


def verification_method_label(level: str) -> str | None:
    """How the level was reached, in the current language; None when unverified."""
    method = VERIFICATION_METHODS.get(level)
    return translate(method) if method is not None else None


# Who wants to know, in the same transaction, that a person's level was set: the wallet
# releases the money it held for them while they were unverified. Verification and
# funding set the level and the wallet listens, so neither imports the wallet (which
# builds on both).
LevelListener = Callable[[Tx, uuid.UUID], object]
_level_listeners: list[LevelListener] = []


def on_level_set(listener: LevelListener) -> None:
    """Call ``listener(tx, user_id)`` after every ``set_verification_level``."""
    if listener not in _level_listeners:
        _level_listeners.append(listener)


# Sent by every route of real-name verification when it verifies a person.
VERIFIED_SMS: Final = N_(
    "Your real-name verification was successful. Your account is now verified."
)


def set_verification_level(tx: Tx, user_id: uuid.UUID, level: str) -> None:
    """Called by real-name verification when a person passes (or a reviewer approves)."""
    if level not in VERIFICATION_LEVELS:
        raise ValueError(f"unknown verification level {level!r}")
    user = tx.session.get(User, user_id, with_for_update=True)
    if user is None:
        raise NotFound("account.not_found", N_("No such account."))
    user.verification_level = level
    tx.session.flush()  # listeners read the new level
    for listener in _level_listeners:
        listener(tx, user_id)


def verification_label(level: str) -> str:
    """The level's name in the current language."""
    if is_verified(level):
        return translate(N_("Verified"))
    return translate(N_("Unverified"))
