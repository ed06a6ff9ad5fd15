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
from typing import Final

from sqlalchemy import select

from qianbao import audit
from qianbao.access import ROLES
from qianbao.db import Database, Tx
from qianbao.errors import Conflict, InvalidInput, NotFound
from qianbao.i18n import N_
from qianbao.identity import password_sessions, passwords
from qianbao.identity.models import StaffMember, StaffSession
from qianbao.settings import Settings

USERNAME_PATTERN: Final = re.compile(r"^[a-z0-9][a-z0-9._-]{2,63}$")
SESSION_IDLE: Final = timedelta(minutes=30)
SESSION_ABSOLUTE: Final = timedelta(hours=10)
# Which door a session token opens: the back-office pages' cookie or the API's bearer.
Door = password_sessions.Door


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


def _username(text: str) -> str | None:
    """The username as stored, or None where no account can have it: the same answer as
    a wrong password, before the name reaches the rate-limit key (a varchar that
    PostgreSQL also refuses NUL in)."""
    username = text.strip().lower()
    return username if USERNAME_PATTERN.match(username) else None


def _lifetimes(settings: Settings, door: Door) -> tuple[timedelta, timedelta]:
    """(idle, absolute) for a session of that door."""
    if door == "page":
        return SESSION_IDLE, SESSION_ABSOLUTE
    return (
        timedelta(seconds=settings.staff_api_token_idle_seconds),
        timedelta(seconds=settings.staff_api_token_seconds),
    )


_SESSIONS: Final = password_sessions.PasswordSessions(
    account=StaffMember,
    login=StaffMember.username,
    session=StaffSession,
    owner=StaffSession.staff_id,
    labels={"page": "staff-session", "api": "staff-api-token"},
    lifetimes=_lifetimes,
    normalize=_username,
    throttle_key=lambda username: f"pw:staff:{username}",
    login_failed_code="staff.login_failed",
    login_failed=N_("Wrong username or password."),
    throttled_code="staff.throttled",
)


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
    opened = _SESSIONS.open(db, username, password, door, lambda _tx, member: _staff(member))
    return SignedIn(opened.token, opened.expires_at, opened.who)


def authenticate(tx: Tx, token: str, door: Door = "page") -> Staff | None:
    """The staff member a session token of that door belongs to, while the session lives."""
    member = _SESSIONS.authenticate(tx, token, door)
    return None if member is None else _staff(member)


def sign_out(tx: Tx, token: str, door: Door = "page") -> None:
    _SESSIONS.sign_out(tx, token, door)


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


def _staff(member: StaffMember) -> Staff:
    return Staff(
        member.id,
        member.username,
        member.display_name,
        member.role,
        disabled=member.disabled_at is not None,
    )
