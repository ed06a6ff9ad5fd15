"""Back-office people: reviewers, risk officers, support and administrators.

Staff are not wallet customers: they are created from the command line
(``qianbao admin create-staff NAME --role ROLE``) or by an administrator on
/admin/staff, and each holds one role (qianbao/access.py says what each may do). They
sign in on /admin with a username and a password
(argon2id, the login-password rules of NIST SP 800-63B), and hold sessions of their own
that last one working day at most. Wrong passwords slow further tries for that username
down, doubling each time, as customer logins do.

The JSON API (``/api/v1/staff/...``) takes a bearer token of its own instead of the
cookie: the same username and password, the same throttle, a shorter life
(``QIANBAO_STAFF_API_TOKEN_SECONDS``, idle ``..._IDLE_SECONDS``). Tokens of the two kinds
are kept under keyed hashes of different labels, so a page cookie never opens the API nor
an API token the pages; and both live apart from a person's sessions, so neither opens a
person's operation, nor a person's token a staff one.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, Literal

from sqlalchemy import select

from qianbao import audit
from qianbao.access import ROLES
from qianbao.db import Database, Tx
from qianbao.errors import Conflict, InvalidInput, NotAuthenticated, NotFound
from qianbao.i18n import N_
from qianbao.identity import passwords
from qianbao.identity.codes import keyed_hash, new_token
from qianbao.identity.models import StaffMember, StaffSession
from qianbao.throttling import ratelimit

USERNAME_PATTERN: Final = re.compile(r"^[a-z0-9][a-z0-9._-]{2,63}$")
SESSION_IDLE: Final = timedelta(minutes=30)
SESSION_ABSOLUTE: Final = timedelta(hours=10)
FREE_FAILURES: Final = 5
DAY: Final = timedelta(days=1)

_LOGIN_FAILED: Final = N_("Wrong username or password.")
# Which door a session token opens: the back-office pages' cookie or the API's bearer.
Door = Literal["page", "api"]
_HASH_LABEL: Final[dict[Door, str]] = {"page": "staff-session", "api": "staff-api-token"}


@dataclass(frozen=True)
class Staff:
    id: uuid.UUID
    username: str
    display_name: str
    role: str
    disabled: bool = False


@dataclass(frozen=True)
class SignedIn:
    token: str
    expires_at: datetime
    member: Staff


def create_staff(
    db: Database,
    username: str,
    display_name: str,
    password: str,
    role: str = "reviewer",
    *,
    created_by: uuid.UUID | None = None,
) -> Staff:
    """A new back-office account. The password is hashed outside the transaction; an
    administrator's creation is in the audit log (the command line's is the operator's)."""
    username = username.strip().lower()
    if not USERNAME_PATTERN.match(username):
        raise InvalidInput(
            "staff.username",
            N_("A username is 3 to 64 lower-case letters, digits, dots, dashes or underscores."),
        )
    _check_role(role)
    normalized = passwords.check_login_password(password, "")
    password_hash = passwords.hash_secret(db.settings, normalized)

    def insert(tx: Tx) -> Staff:
        if tx.session.scalar(select(StaffMember.id).where(StaffMember.username == username)):
            raise Conflict("staff.exists", N_("This username is taken."))
        member = StaffMember(
            username=username,
            display_name=display_name.strip()[:128] or username,
            role=role,
            password_hash=password_hash,
            created_at=tx.now(),
        )
        tx.session.add(member)
        tx.session.flush()
        actor = audit.staff_actor(created_by) if created_by else "cli"
        audit.record(tx, actor, "staff.created", f"staff:{member.id}", details={"role": role})
        return _staff(member)

    return db.run(insert)


def sign_in(db: Database, username: str, password: str) -> tuple[str, Staff]:
    """A new page session (the back office's cookie) for a right username and password."""
    signed = open_session(db, username, password, "page")
    return signed.token, signed.member


def open_session(db: Database, username: str, password: str, door: Door) -> SignedIn:
    """A new session token for a right username and password, for the pages or the API;
    both doors share one throttle per username."""
    username = username.strip().lower()
    if not USERNAME_PATTERN.match(username):
        # No such name can exist: the same answer as a wrong password, before the name
        # reaches the rate-limit key (a varchar that PostgreSQL also refuses NUL in).
        raise NotAuthenticated("staff.login_failed", _LOGIN_FAILED)
    key = f"pw:staff:{username}"

    def begin(tx: Tx) -> tuple[uuid.UUID, StaffMember | None]:
        ratelimit.claim(tx, [key])
        _wait_if_throttled(tx, key)
        failure = ratelimit.record(tx, key)  # counted first: parallel guesses see each other
        member = tx.session.scalar(
            select(StaffMember).where(
                StaffMember.username == username, StaffMember.disabled_at.is_(None)
            )
        )
        return failure, member

    failure_id, found = db.run(begin, isolation="read committed")
    normalized = passwords.normalize_login_password(password)
    if found is None or not passwords.verify_secret(db.settings, found.password_hash, normalized):
        raise NotAuthenticated("staff.login_failed", _LOGIN_FAILED)
    staff_id = found.id

    def finish(tx: Tx) -> SignedIn:
        ratelimit.forget(tx, [failure_id])  # a right password takes its own failure back
        member = tx.session.get(StaffMember, staff_id)
        assert member is not None
        now = tx.now()
        token = new_token()
        expires_at = now + _lifetimes(tx, door)[1]
        tx.session.add(
            StaffSession(
                staff_id=staff_id,
                token_hash=_token_hash(tx, token, door),
                created_at=now,
                last_seen_at=now,
                expires_at=expires_at,
            )
        )
        return SignedIn(token, expires_at, _staff(member))

    return db.run(finish, isolation="read committed")


def authenticate(tx: Tx, token: str, door: Door = "page") -> Staff | None:
    """The staff member a session token of that door belongs to, while the session lives."""
    session = tx.session.scalar(
        select(StaffSession).where(StaffSession.token_hash == _token_hash(tx, token, door))
    )
    now = tx.now()
    if (
        session is None
        or session.revoked_at is not None
        or session.expires_at <= now
        or session.last_seen_at + _lifetimes(tx, door)[0] <= now
    ):
        return None
    member = tx.session.get(StaffMember, session.staff_id)
    if member is None or member.disabled_at is not None:
        return None
    session.last_seen_at = now
    return _staff(member)


def sign_out(tx: Tx, token: str, door: Door = "page") -> None:
    session = tx.session.scalar(
        select(StaffSession).where(StaffSession.token_hash == _token_hash(tx, token, door))
    )
    if session is not None and session.revoked_at is None:
        session.revoked_at = tx.now()


def all_staff(tx: Tx) -> list[Staff]:
    members = tx.session.scalars(select(StaffMember).order_by(StaffMember.username))
    return [_staff(member) for member in members]


def set_role(tx: Tx, by: uuid.UUID, staff_id: uuid.UUID, role: str) -> Staff:
    """An administrator gives a staff member another role; it applies at their next
    request. Nobody changes their own role (one administrator cannot lock out the rest
    by mistake, nor raise themselves)."""
    _check_role(role)
    member = _other_member(tx, by, staff_id)
    before, member.role = member.role, role
    audit.record(
        tx,
        audit.staff_actor(by),
        "staff.role_changed",
        f"staff:{staff_id}",
        details={"from": before, "to": role},
    )
    return _staff(member)


def disable(tx: Tx, by: uuid.UUID, staff_id: uuid.UUID) -> Staff:
    """An administrator ends a staff account: its sessions stop at once."""
    member = _other_member(tx, by, staff_id)
    if member.disabled_at is None:
        member.disabled_at = tx.now()
        audit.record(tx, audit.staff_actor(by), "staff.disabled", f"staff:{staff_id}")
    return _staff(member)


def _other_member(tx: Tx, by: uuid.UUID, staff_id: uuid.UUID) -> StaffMember:
    if by == staff_id:
        raise Conflict("staff.self", N_("Ask another administrator to change your own account."))
    member = tx.session.get(StaffMember, staff_id, with_for_update=True)
    if member is None:
        raise NotFound("staff.not_found", N_("No such staff member."))
    return member


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise InvalidInput("staff.role_unknown", N_("Unknown role."))


def staff_name(tx: Tx, staff_id: uuid.UUID) -> str:
    member = tx.session.get(StaffMember, staff_id)
    return member.display_name if member is not None else "?"


def _wait_if_throttled(tx: Tx, key: str) -> None:
    failures = ratelimit.count(tx, key, tx.now() - DAY)
    if failures < FREE_FAILURES:
        return
    last = ratelimit.latest(tx, key)
    assert last is not None
    delay = min(float(tx.settings.password_delay_cap_seconds), 2.0 ** (failures - FREE_FAILURES))
    wait = (last + timedelta(seconds=delay) - tx.now()).total_seconds()
    if wait > 0:
        raise ratelimit.refusal(
            "staff.throttled", N_("Too many wrong passwords. Try again in {wait}."), wait
        )


def _token_hash(tx: Tx, token: str, door: Door) -> str:
    return keyed_hash(tx.settings.hmac_key(), _HASH_LABEL[door], token)


def _lifetimes(tx: Tx, door: Door) -> tuple[timedelta, timedelta]:
    """(idle, absolute) for a session of that door."""
    if door == "page":
        return SESSION_IDLE, SESSION_ABSOLUTE
    settings = tx.settings
    return (
        timedelta(seconds=settings.staff_api_token_idle_seconds),
        timedelta(seconds=settings.staff_api_token_seconds),
    )


def _staff(member: StaffMember) -> Staff:
    return Staff(
        member.id,
        member.username,
        member.display_name,
        member.role,
        disabled=member.disabled_at is not None,
    )
