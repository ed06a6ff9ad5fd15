"""Use cases of account security: login password, payment password, email, sessions.

Secrets are checked inside the transaction that holds the account's row lock, at READ
COMMITTED (``NUMBER_LOCKED``): parallel wrong guesses queue one behind another and each
sees the count the previous one left, so no burst of tries slips past a limit.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import NoReturn

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import bindparam, func, select, update

from qianbao.db import Database, Tx
from qianbao.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    NotAuthenticated,
    RecordedRefusal,
)
from qianbao.i18n import N_, Language, language_scope, translate
from qianbao.identity import devices, new_country, passwords, pins, places
from qianbao.identity.codes import keyed_hash, new_sms_code, same_hash
from qianbao.identity.models import (
    AuthSession,
    EmailChallenge,
    FaceCheckPass,
    PaymentPassword,
    User,
)
from qianbao.identity.new_country import SmsCodeRequired
from qianbao.identity.phone import PhoneNumber, from_e164
from qianbao.identity.service import (
    NUMBER_LOCKED,
    Client,
    CodeSent,
    SignedIn,
    as_signed_in,
    consume_code,
    is_verified,
    open_session,
    send_code,
)
from qianbao.notify.email import queue_email
from qianbao.settings import Settings
from qianbao.throttling import ratelimit

EMAIL_CODE_TTL = timedelta(minutes=30)
EMAIL_CODE_TRIES = 5
DAY = timedelta(days=1)


@dataclass(frozen=True)
class SecurityStatus:
    """What the Account and Security page shows."""

    phone: PhoneNumber
    email: str | None
    email_pending: str | None
    has_login_password: bool
    login_password_changed_at: datetime | None
    has_payment_password: bool
    payment_locked_until: datetime | None


def _user(tx: Tx, user_id: uuid.UUID) -> User:
    return tx.session.get_one(User, user_id)


def _locked_user(tx: Tx, user_id: uuid.UUID) -> User:
    """The user's row, locked until commit, so that one account's secrets change in turn."""
    return tx.session.scalars(select(User).where(User.id == user_id).with_for_update()).one()


def status(tx: Tx, user_id: uuid.UUID) -> SecurityStatus:
    user = _user(tx, user_id)
    payment = tx.session.get(PaymentPassword, user_id)
    pending = _open_email_challenge(tx, user_id)
    locked = payment.locked_until if payment and payment.locked_until else None
    return SecurityStatus(
        phone=from_e164(user.phone_e164),
        email=user.email,
        email_pending=pending.email if pending else None,
        has_login_password=user.password_hash is not None,
        login_password_changed_at=user.password_changed_at,
        has_payment_password=payment is not None,
        payment_locked_until=locked if locked and locked > tx.now() else None,
    )


# --- step-up codes --------------------------------------------------------------------


def send_security_code(
    db: Database, user_id: uuid.UUID, client: Client, language: Language
) -> CodeSent:
    """An SMS code to the account's own number, to confirm a security change."""
    phone = db.run(lambda tx: from_e164(_user(tx, user_id).phone_e164))
    return send_code(db, phone, "security", client, language)


def _prove_with_sms(tx: Tx, user: User, sms_code: str | None) -> None:
    if not sms_code:
        raise InvalidInput(
            "security.code_required",
            N_("Enter the code we sent to your mobile number to confirm this change."),
        )
    consume_code(tx, from_e164(user.phone_e164), "security", sms_code)


# --- login password -------------------------------------------------------------------


def set_login_password(
    db: Database,
    user_id: uuid.UUID,
    session_id: uuid.UUID,
    new_password: str,
    *,
    current_password: str | None = None,
    sms_code: str | None = None,
) -> None:
    """Set or change the login password, proven by the current one or an SMS code.

    Every other session of the account ends: whoever knew the old password is out.
    """
    db.run(
        lambda tx: _set_login_password(
            tx, user_id, session_id, new_password, current_password, sms_code
        ),
        isolation=NUMBER_LOCKED,
    )


def _set_login_password(
    tx: Tx,
    user_id: uuid.UUID,
    session_id: uuid.UUID,
    new_password: str,
    current_password: str | None,
    sms_code: str | None,
) -> None:
    user = _locked_user(tx, user_id)
    # Check the new password first: a weak choice must not use up the SMS code.
    normalized = passwords.check_login_password(new_password, user.phone_e164)
    if current_password and user.password_hash:
        current = passwords.normalize_login_password(current_password)
        if not passwords.verify_secret(tx.settings, user.password_hash, current):
            _count_password_failure(tx, user.id, None)
            raise RecordedRefusal(
                "password.wrong", N_("The current password is not right."), status=403
            )
    else:
        _prove_with_sms(tx, user, sms_code)
    user.password_hash = passwords.hash_secret(tx.settings, normalized)
    user.password_changed_at = tx.now()
    end_other_sessions(tx, user.id, session_id)


# --- login by password ----------------------------------------------------------------

_LOGIN_FAILED = N_("The account or password is not right.")


def find_login(tx: Tx, login: str, phone: PhoneNumber | None) -> User | None:
    """The account a login name names: a mobile number, or a proven email address."""
    if phone is not None:
        return tx.session.scalars(select(User).where(User.phone_e164 == phone.e164)).first()
    return tx.session.scalars(
        select(User).where(
            func.lower(User.email) == login.strip().lower(), User.email_verified_at.is_not(None)
        )
    ).first()


def sign_in_with_password(
    db: Database,
    login: str,
    phone: PhoneNumber | None,
    password: str,
    client: Client,
    kind: str = "api",
) -> SignedIn | SmsCodeRequired:
    """Log in by mobile number or email plus login password; from a country none of the
    account's earlier sign-ins came from, the right password asks for an SMS code too
    (``new_country``) and no session opens yet.

    Failures slow further tries down (per account and per address), doubling each
    time; SMS-code login is not affected, so nobody can lock a person out for good.

    argon2 takes a few hundred milliseconds on purpose, so it runs between two short
    transactions, not inside one (on SQLite that would hold every writer back). The
    first transaction counts the try as a failure before the password is checked, so
    parallel guesses see each other; a right password then takes its failure back.
    """
    attempt = db.run(
        lambda tx: _begin_password_attempt(tx, login, phone, client), isolation=NUMBER_LOCKED
    )
    normalized = passwords.normalize_login_password(password)
    if attempt.stored_hash is None:
        # Spend the same time as a real check, so timing does not tell who has an account.
        passwords.verify_secret(db.settings, _DUMMY_HASH.get(db.settings), normalized)
        raise NotAuthenticated("login.failed", _LOGIN_FAILED)
    if not passwords.verify_secret(db.settings, attempt.stored_hash, normalized):
        raise NotAuthenticated("login.failed", _LOGIN_FAILED)
    rehashed = (
        passwords.hash_secret(db.settings, normalized)
        if passwords.needs_rehash(db.settings, attempt.stored_hash)
        else None
    )
    outcome = db.run(
        lambda tx: _finish_password_attempt(tx, attempt, rehashed, client, kind),
        isolation=NUMBER_LOCKED,
    )
    if isinstance(outcome, SignedIn):
        return outcome
    return new_country.ask_for_code(db, outcome, client)


@dataclass(frozen=True)
class _PasswordAttempt:
    user_id: uuid.UUID | None
    stored_hash: str | None
    failure_ids: tuple[uuid.UUID, ...]  # the failures counted ahead, taken back on success


def _begin_password_attempt(
    tx: Tx, login: str, phone: PhoneNumber | None, client: Client
) -> _PasswordAttempt:
    ip_key = f"pw:ip:{ratelimit.address(client.ip)}"
    _wait_if_throttled(tx, ip_key, tx.settings.password_failures_before_delay_per_ip)
    user = find_login(tx, login, phone)
    if user is None or user.password_hash is None:
        ratelimit.record(tx, ip_key)
        return _PasswordAttempt(None, None, ())
    user_key = f"pw:user:{user.id}"
    ratelimit.claim(tx, [user_key])  # one account's tries queue here, one at a time
    _wait_if_throttled(tx, user_key, tx.settings.password_failures_before_delay)
    failures = (ratelimit.record(tx, user_key), ratelimit.record(tx, ip_key))
    return _PasswordAttempt(user.id, user.password_hash, failures)


def _finish_password_attempt(
    tx: Tx, attempt: _PasswordAttempt, rehashed: str | None, client: Client, kind: str
) -> SignedIn | new_country.Challenge:
    assert attempt.user_id is not None
    user = _locked_user(tx, attempt.user_id)
    if user.password_hash != attempt.stored_hash:  # changed while we were checking
        raise NotAuthenticated("login.failed", _LOGIN_FAILED)
    ratelimit.forget(tx, attempt.failure_ids)
    if rehashed is not None:
        user.password_hash = rehashed
    if devices.is_new_country(tx, user.id, places.country_of(tx.settings, client.ip)):
        return new_country.challenge_for(tx, user)
    return as_signed_in(user, open_session(tx, user, client, kind))


class _DummyHash:
    """A hash of nothing in particular, made once per setting of the cost."""

    def __init__(self) -> None:
        self._by_cost: dict[tuple[int, int, int], str] = {}

    def get(self, s: Settings) -> str:
        cost = (s.argon2_time_cost, s.argon2_memory_kib, s.argon2_parallelism)
        if cost not in self._by_cost:
            self._by_cost[cost] = passwords.hash_secret(s, "not a password of anyone")
        return self._by_cost[cost]


_DUMMY_HASH = _DummyHash()


def _count_password_failure(tx: Tx, user_id: uuid.UUID | None, ip: str | None) -> None:
    if user_id is not None:
        ratelimit.record(tx, f"pw:user:{user_id}")
    if ip is not None:
        ratelimit.record(tx, f"pw:ip:{ratelimit.address(ip)}")


def _wait_if_throttled(tx: Tx, key: str, free_failures: int) -> None:
    """After ``free_failures`` failures in a day, wait 1 s, 2 s, 4 s, ... after the last."""
    failures = ratelimit.count(tx, key, tx.now() - DAY)
    if failures < free_failures:
        return
    last = ratelimit.latest(tx, key)
    assert last is not None
    delay = min(float(tx.settings.password_delay_cap_seconds), 2.0 ** (failures - free_failures))
    wait = (last + timedelta(seconds=delay) - tx.now()).total_seconds()
    if wait > 0:
        raise ratelimit.refusal(
            "login.throttled",
            N_("Too many wrong passwords. Try again in {wait}, or log in with an SMS code."),
            wait,
        )


# --- payment password -----------------------------------------------------------------


# What a payment password must not be but identity cannot know itself: the birth date a
# verification read from the passport. Verification says how to find it, so identity does
# not import verification (which builds on identity).
BirthDateSource = Callable[[Tx, uuid.UUID], date | None]
_birth_date_sources: list[BirthDateSource] = []


def on_birth_date_asked(source: BirthDateSource) -> None:
    """Ask ``source(tx, user_id)`` for the person's known birth date when a payment
    password is set."""
    if source not in _birth_date_sources:
        _birth_date_sources.append(source)


def _known_birth_date(tx: Tx, user_id: uuid.UUID) -> date | None:
    for source in _birth_date_sources:
        found = source(tx, user_id)
        if found is not None:
            return found
    return None


def set_payment_password(
    db: Database,
    user_id: uuid.UUID,
    new_pin: str,
    *,
    current_pin: str | None = None,
    sms_code: str | None = None,
    birth_date: date | None = None,
) -> None:
    """Set the payment password (an SMS code proves it is you) or change it (the current
    one, or an SMS code when it is forgotten). It may not be the person's birth date:
    ``birth_date``, or the one verification knows (``on_birth_date_asked``)."""
    db.run(
        lambda tx: _set_payment_password(tx, user_id, new_pin, current_pin, sms_code, birth_date),
        isolation=NUMBER_LOCKED,
    )


def _set_payment_password(
    tx: Tx,
    user_id: uuid.UUID,
    new_pin: str,
    current_pin: str | None,
    sms_code: str | None,
    birth_date: date | None,
) -> None:
    user = _locked_user(tx, user_id)
    known = birth_date or _known_birth_date(tx, user_id)
    passwords.check_payment_password(new_pin, user.phone_e164, known)
    existing = tx.session.get(PaymentPassword, user_id)
    if existing is not None and current_pin:
        check_payment_password(tx, user_id, current_pin)  # a wrong one counts as a try
    else:
        # A forgotten payment password is reset with an SMS code; a verified person also
        # shows their face (a SIM swap alone must not open their balance).
        _prove_with_sms(tx, user, sms_code)
        if existing is not None and is_verified(user.verification_level):
            _use_fresh_face_check(tx, user)
    hashed = pins.hash_pin(tx.settings, user_id, new_pin)
    if existing is None:
        tx.session.add(PaymentPassword(user_id=user_id, password_hash=hashed, set_at=tx.now()))
    else:
        existing.password_hash, existing.set_at = hashed, tx.now()
        existing.failures, existing.locked_until = 0, None


def record_face_check_pass(tx: Tx, user_id: uuid.UUID) -> None:
    """Called by verification when a fresh face check of a verified person passes."""
    tx.session.add(FaceCheckPass(user_id=user_id, passed_at=tx.now()))


def _use_fresh_face_check(tx: Tx, user: User) -> None:
    since = tx.now() - timedelta(seconds=tx.settings.face_check_valid_seconds)
    fresh = tx.session.scalars(
        select(FaceCheckPass)
        .where(
            FaceCheckPass.user_id == user.id,
            FaceCheckPass.used_at.is_(None),
            FaceCheckPass.passed_at > since,
        )
        .order_by(FaceCheckPass.passed_at.desc())
        .limit(1)
    ).first()
    if fresh is None:
        raise Forbidden(
            "paypw.face_check_required",
            N_(
                "Your account is verified, so a forgotten payment password is reset with "
                "a face check as well as an SMS code. Do the face check first."
            ),
        )
    fresh.used_at = tx.now()


def verify_payment_password(db: Database, user_id: uuid.UUID, pin: str) -> None:
    """The payment password checked in a transaction of its own (for a use case that
    moves no money itself; a payment checks it in its own transaction instead)."""
    db.run(lambda tx: check_payment_password(tx, user_id, pin), isolation=NUMBER_LOCKED)


def check_payment_password(tx: Tx, user_id: uuid.UUID, pin: str) -> None:
    """The one check every payment makes, FIRST in the payment's own transaction (so that
    a wrong entry, whose count is kept when the transaction ends in its refusal, finds
    nothing else written). Three wrong entries lock payments for 3 hours.

    The row is locked while the PIN is checked: parallel wrong entries queue one behind
    another, so however many arrive at once only the allowed number count as tries and
    the rest meet the lock. The check is a keyed hash (``pins``), microseconds; a hash
    from before (argon2, or an older key) is replaced on a match.
    """
    row = tx.read(_PIN_ROW, {"user_id": user_id}).first()
    if row is None:
        raise Forbidden("paypw.not_set", N_("Set a payment password first."))
    _refuse_if_payments_locked(tx, row.locked_until)
    check = pins.check_pin(tx.settings, user_id, row.password_hash, pin)
    if check.matches and not row.failures and check.upgraded is None:
        return  # the common case: nothing to write
    # Something to write (a count to clear or to raise, a hash to replace): the row as an
    # object, fresh (its lock is held already).
    record = tx.session.get_one(
        PaymentPassword, user_id, with_for_update=True, populate_existing=True
    )
    if check.matches:
        record.failures = 0
        if check.upgraded is not None:
            record.password_hash = check.upgraded
        return
    _count_wrong_entry(tx, record)


# Read first, locked, by every payment: three columns (``Tx.read``; the ORM's load of the
# row cost more than the check it serves).
_PIN_ROW = (
    select(PaymentPassword.password_hash, PaymentPassword.failures, PaymentPassword.locked_until)
    .where(PaymentPassword.user_id == bindparam("user_id"))
    .with_for_update()
)


_PAYMENTS_LOCKED = N_(
    "Payments are locked after too many wrong payment passwords. "
    "Try again in {wait}, or reset the payment password."
)


def _refuse_if_payments_locked(tx: Tx, locked_until: datetime | None) -> None:
    now = tx.now()
    if locked_until is not None and locked_until > now:
        raise ratelimit.refusal(
            "paypw.locked", _PAYMENTS_LOCKED, (locked_until - now).total_seconds()
        )


def _count_wrong_entry(tx: Tx, record: PaymentPassword) -> NoReturn:
    record.failures += 1
    limit = tx.settings.payment_password_max_failures
    if record.failures >= limit:
        lock = tx.settings.payment_password_lock_seconds
        record.failures, record.locked_until = 0, tx.now() + timedelta(seconds=lock)
        tx.session.flush()
        raise RecordedRefusal(
            "paypw.locked",
            _PAYMENTS_LOCKED,
            {"wait": ratelimit.human_wait(lock)},
            retry_after=lock,
            status=429,
        )
    tx.session.flush()
    raise RecordedRefusal(
        "paypw.mismatch",
        N_("Wrong payment password. Tries left before payments lock: {left}."),
        {"left": limit - record.failures},
        details={"tries_left": limit - record.failures},
        status=403,
    )


# --- email ----------------------------------------------------------------------------


def _normalize_email(address: str) -> str:
    try:
        checked = validate_email(address.strip(), check_deliverability=False)
    except EmailNotValidError:
        raise InvalidInput("email.invalid", N_("This is not a valid email address.")) from None
    return str(checked.normalized)


def start_email_change(
    db: Database,
    user_id: uuid.UUID,
    address: str,
    language: Language,
    sms_code: str | None = None,
) -> str:
    """Mail a code to a new address. Replacing a proven address needs an SMS code too."""
    email = _normalize_email(address)
    return db.run(
        lambda tx: _start_email_change(tx, user_id, email, language, sms_code),
        isolation=NUMBER_LOCKED,
    )


def _start_email_change(
    tx: Tx, user_id: uuid.UUID, email: str, language: Language, sms_code: str | None
) -> str:
    user = _locked_user(tx, user_id)
    taken = tx.session.scalars(
        select(User.id).where(func.lower(User.email) == email.lower(), User.id != user_id)
    ).first()
    if taken is not None:
        raise Conflict("email.taken", N_("Another account already uses this email address."))
    if user.email is not None:
        _prove_with_sms(tx, user, sms_code)
    _close_email_challenges(tx, user_id, "superseded")
    code = new_sms_code(tx.settings.sms_code_length)
    challenge = EmailChallenge(
        id=uuid.uuid4(),
        user_id=user_id,
        email=email,
        code_hash="",
        created_at=tx.now(),
        expires_at=tx.now() + EMAIL_CODE_TTL,
    )
    challenge.code_hash = _email_code_hash(tx, challenge.id, code)
    tx.session.add(challenge)
    with language_scope(language):
        subject = translate(N_("Your Qianbao email code"))
        body = translate(
            N_(
                "Your code to confirm this email address for Qianbao is {code}. "
                "It is valid for {minutes} min. If you did not ask for it, ignore this email."
            ),
            {"code": code, "minutes": int(EMAIL_CODE_TTL.total_seconds() // 60)},
        )
    queue_email(tx, email, subject, body, language)
    return email


def confirm_email(tx: Tx, user_id: uuid.UUID, code: str) -> str:
    """Check the mailed code; the address becomes the account's (and a login name)."""
    challenge = _open_email_challenge(tx, user_id)
    if challenge is None:
        raise InvalidInput("email.no_code", N_("Ask for an email code first."))
    if challenge.expires_at <= tx.now():
        raise InvalidInput("email.code_expired", N_("This code has expired. Ask for a new one."))
    if not same_hash(challenge.code_hash, _email_code_hash(tx, challenge.id, code.strip())):
        challenge.attempts += 1
        if challenge.attempts >= EMAIL_CODE_TRIES:
            challenge.closed_reason = "exhausted"
        tx.session.flush()
        raise RecordedRefusal(
            "email.code_mismatch",
            N_("The code is not right. Tries left for this code: {left}."),
            {"left": max(0, EMAIL_CODE_TRIES - challenge.attempts)},
        )
    taken = tx.session.scalars(
        select(User.id).where(func.lower(User.email) == challenge.email.lower(), User.id != user_id)
    ).first()
    if taken is not None:
        raise Conflict("email.taken", N_("Another account already uses this email address."))
    challenge.closed_reason = "used"
    user = _locked_user(tx, user_id)
    user.email, user.email_verified_at = challenge.email, tx.now()
    return challenge.email


def _open_email_challenge(tx: Tx, user_id: uuid.UUID) -> EmailChallenge | None:
    return tx.session.scalars(
        select(EmailChallenge)
        .where(EmailChallenge.user_id == user_id, EmailChallenge.closed_reason.is_(None))
        .order_by(EmailChallenge.created_at.desc())
        .limit(1)
    ).first()


def _close_email_challenges(tx: Tx, user_id: uuid.UUID, reason: str) -> None:
    tx.session.execute(
        update(EmailChallenge)
        .where(EmailChallenge.user_id == user_id, EmailChallenge.closed_reason.is_(None))
        .values(closed_reason=reason)
    )


def _email_code_hash(tx: Tx, challenge_id: uuid.UUID, code: str) -> str:
    return keyed_hash(tx.settings.hmac_key(), "email", str(challenge_id), code)


# --- sessions -------------------------------------------------------------------------


def end_other_sessions(tx: Tx, user_id: uuid.UUID, keep_session_id: uuid.UUID | None) -> int:
    """Log out everywhere else; returns how many sessions ended."""
    result = tx.session.execute(
        update(AuthSession)
        .where(
            AuthSession.user_id == user_id,
            AuthSession.revoked_at.is_(None),
            AuthSession.id != keep_session_id,
        )
        .values(revoked_at=tx.now())
    )
    return int(getattr(result, "rowcount", 0) or 0)
