"""Use cases of account security: login password, payment password, email, sessions.

Secrets are checked inside the transaction that holds the account's row lock, at READ
COMMITTED (``NUMBER_LOCKED``): parallel wrong guesses queue one behind another and each
sees the count the previous one left, so no burst of tries slips past a limit.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import func, select, update

from qianbao.db import Database, Tx
from qianbao.errors import Conflict, Forbidden, InvalidInput, RecordedRefusal
from qianbao.i18n import N_, Language, language_scope, translate
from qianbao.identity import passwords
from qianbao.identity.codes import keyed_hash, new_sms_code, same_hash
from qianbao.identity.models import AuthSession, EmailChallenge, PaymentPassword, User
from qianbao.identity.phone import PhoneNumber, from_e164
from qianbao.identity.service import (
    NUMBER_LOCKED,
    Client,
    CodeSent,
    SignedIn,
    consume_code,
    open_session,
    send_code,
    to_account,
)
from qianbao.risk import ratelimit

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
) -> SignedIn:
    """Log in by mobile number or email plus login password.

    Failures slow further tries down (per account and per address), doubling each
    time; SMS-code login is not affected, so nobody can lock a person out for good.
    """
    return db.run(
        lambda tx: _sign_in_with_password(tx, login, phone, password, client, kind),
        isolation=NUMBER_LOCKED,
    )


def _sign_in_with_password(
    tx: Tx, login: str, phone: PhoneNumber | None, password: str, client: Client, kind: str
) -> SignedIn:
    _wait_if_throttled(tx, f"pw:ip:{client.ip}", tx.settings.password_failures_before_delay_per_ip)
    user = find_login(tx, login, phone)
    if user is None or user.password_hash is None:
        # Spend the same time as a real check, so timing does not tell who has an account.
        passwords.verify_secret(tx.settings, _DUMMY_HASH.get(tx), password)
        _count_password_failure(tx, None, client.ip)
        raise RecordedRefusal("login.failed", _LOGIN_FAILED, status=401)
    user = _locked_user(tx, user.id)
    _wait_if_throttled(tx, f"pw:user:{user.id}", tx.settings.password_failures_before_delay)
    normalized = passwords.normalize_login_password(password)
    stored = user.password_hash or ""
    if not passwords.verify_secret(tx.settings, stored, normalized):
        _count_password_failure(tx, user.id, client.ip)
        raise RecordedRefusal("login.failed", _LOGIN_FAILED, status=401)
    if passwords.needs_rehash(tx.settings, stored):
        user.password_hash = passwords.hash_secret(tx.settings, normalized)
    token, session = open_session(tx, user, client, kind)
    return SignedIn(to_account(user), session.id, token, session.expires_at, False)


class _DummyHash:
    """A hash of nothing in particular, made once per setting of the cost."""

    def __init__(self) -> None:
        self._by_cost: dict[tuple[int, int, int], str] = {}

    def get(self, tx: Tx) -> str:
        s = tx.settings
        cost = (s.argon2_time_cost, s.argon2_memory_kib, s.argon2_parallelism)
        if cost not in self._by_cost:
            self._by_cost[cost] = passwords.hash_secret(s, "not a password of anyone")
        return self._by_cost[cost]


_DUMMY_HASH = _DummyHash()


def _count_password_failure(tx: Tx, user_id: uuid.UUID | None, ip: str | None) -> None:
    if user_id is not None:
        ratelimit.record(tx, f"pw:user:{user_id}")
    if ip is not None:
        ratelimit.record(tx, f"pw:ip:{ip}")


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
    one, or an SMS code when it is forgotten)."""
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
    passwords.check_payment_password(new_pin, user.phone_e164, birth_date)
    existing = tx.session.get(PaymentPassword, user_id)
    if existing is not None and current_pin:
        _check_payment_password(tx, existing, current_pin)
    else:
        # A forgotten payment password is reset with an SMS code. Verified accounts will
        # also need a fresh face check once real-name verification exists.
        _prove_with_sms(tx, user, sms_code)
    hashed = passwords.hash_secret(tx.settings, new_pin)
    if existing is None:
        tx.session.add(PaymentPassword(user_id=user_id, password_hash=hashed, set_at=tx.now()))
    else:
        existing.password_hash, existing.set_at = hashed, tx.now()
        existing.failures, existing.locked_until = 0, None


def verify_payment_password(db: Database, user_id: uuid.UUID, pin: str) -> None:
    """The one check every payment calls. Three wrong entries lock payments for 3 hours."""
    db.run(lambda tx: check_payment_password(tx, user_id, pin), isolation=NUMBER_LOCKED)


def check_payment_password(tx: Tx, user_id: uuid.UUID, pin: str) -> None:
    """As ``verify_payment_password``, inside a caller's transaction (a payment's own)."""
    record = tx.session.scalars(
        select(PaymentPassword).where(PaymentPassword.user_id == user_id).with_for_update()
    ).first()
    if record is None:
        raise Forbidden("paypw.not_set", N_("Set a payment password first."))
    _check_payment_password(tx, record, pin)


def _check_payment_password(tx: Tx, record: PaymentPassword, pin: str) -> None:
    now = tx.now()
    if record.locked_until is not None and record.locked_until > now:
        raise ratelimit.refusal(
            "paypw.locked",
            N_(
                "Payments are locked after too many wrong payment passwords. "
                "Try again in {wait}, or reset the payment password."
            ),
            (record.locked_until - now).total_seconds(),
        )
    if passwords.verify_secret(tx.settings, record.password_hash, pin):
        record.failures = 0
        return
    record.failures += 1
    limit = tx.settings.payment_password_max_failures
    if record.failures >= limit:
        record.failures, record.locked_until = (
            0,
            now + timedelta(seconds=tx.settings.payment_password_lock_seconds),
        )
        tx.session.flush()
        raise RecordedRefusal(
            "paypw.locked",
            N_(
                "Payments are locked after too many wrong payment passwords. "
                "Try again in {wait}, or reset the payment password."
            ),
            {"wait": ratelimit.human_wait(tx.settings.payment_password_lock_seconds)},
            retry_after=tx.settings.payment_password_lock_seconds,
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
    from qianbao.notify.email import queue_email

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
