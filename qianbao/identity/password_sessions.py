"""Password sessions: accounts that sign in with a login and a password and then hold
session tokens, as back-office staff (identity/staff.py) and merchants' portal users
(openplatform/merchants/accounts.py) do. Each such kind names its own tables, error
codes, throttle key and lifetimes in one ``PasswordSessions``; the rules live here once:

- A token opens one door: a page's cookie or an API's bearer. Each door's tokens are
  kept under a keyed hash of a label of its own, so a cookie never opens the API nor a
  token the pages, and each kind's labels differ from every other kind's.
- Both doors share one throttle per login: past ``FREE_FAILURES`` wrong passwords in a
  day, each further try waits twice as long as the one before (capped by
  ``password_delay_cap_seconds``). A try is counted before the password is checked, so
  parallel guesses see each other; a right password takes its own count back.
- A session ends when revoked, at its absolute end, or when unused for its idle time.
  Its last-seen time moves at most every ``session_touch_interval_seconds``, as persons'
  sessions' do, so that a signed-in read stays a read.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, Generic, Literal, Protocol, TypeVar

from sqlalchemy import insert, select
from sqlalchemy.orm import InstrumentedAttribute

from qianbao.db import Database, Tx
from qianbao.errors import NotAuthenticated
from qianbao.i18n import N_
from qianbao.identity import passwords
from qianbao.identity.codes import keyed_hash, new_token
from qianbao.settings import Settings
from qianbao.throttling import ratelimit

# Which door a session token opens: the pages' cookie or the API's bearer.
Door = Literal["page", "api"]
FREE_FAILURES: Final = 5
DAY: Final = timedelta(days=1)


class AccountRow(Protocol):
    """The columns a kind's table of accounts has (besides the login)."""

    id: uuid.UUID
    password_hash: str
    disabled_at: datetime | None


class SessionRow(Protocol):
    """The columns a kind's table of sessions has (besides the one naming its account, a
    foreign key to the accounts' table: the only one between the two)."""

    token_hash: str
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    revoked_at: datetime | None


AccountT = TypeVar("AccountT", bound=AccountRow)
ViewT = TypeVar("ViewT")


@dataclass(frozen=True)
class Opened(Generic[ViewT]):
    """A new session: its token (shown this once), its end and who holds it."""

    token: str
    expires_at: datetime
    who: ViewT


@dataclass(frozen=True)
class PasswordSessions(Generic[AccountT]):
    """One kind of password account and its sessions."""

    account: type[AccountT]
    login: InstrumentedAttribute[str]  # the account's column one signs in with
    session: type[SessionRow]
    owner: InstrumentedAttribute[uuid.UUID]  # the session's column naming its account
    labels: Mapping[Door, str]  # the keyed hash's label of each door's tokens
    # (idle, absolute) of a session of that door.
    lifetimes: Callable[[Settings, Door], tuple[timedelta, timedelta]]
    # The login as stored, or None where no account can have it (refused as a wrong
    # password, before it reaches the throttle's key).
    normalize: Callable[[str], str | None]
    throttle_key: Callable[[str], str]  # of a normalized login
    login_failed_code: str
    login_failed: str  # its message (N_), the same whether the login exists or not
    throttled_code: str

    def open(
        self,
        db: Database,
        login: str,
        password: str,
        door: Door,
        view: Callable[[Tx, AccountT], ViewT],
    ) -> Opened[ViewT]:
        """A new session for a right login and password; ``view`` says who holds it."""
        normalized_login = self.normalize(login)
        if normalized_login is None:
            raise NotAuthenticated(self.login_failed_code, self.login_failed)
        key = self.throttle_key(normalized_login)

        def begin(tx: Tx) -> tuple[uuid.UUID, AccountT | None]:
            ratelimit.claim(tx, [key])
            self._wait_if_throttled(tx, key)
            failure = ratelimit.record(tx, key)  # counted first: parallel guesses see each other
            account = tx.session.scalar(
                select(self.account)
                .where(self.login == normalized_login)
                .filter_by(disabled_at=None)
            )
            return failure, account

        failure_id, found = db.run(begin, isolation="read committed")
        normalized = passwords.normalize_login_password(password)
        if found is None or not passwords.verify_secret(
            db.settings, found.password_hash, normalized
        ):
            raise NotAuthenticated(self.login_failed_code, self.login_failed)
        account_id = found.id

        def finish(tx: Tx) -> Opened[ViewT]:
            ratelimit.forget(tx, [failure_id])  # a right password takes its own failure back
            account = tx.session.get(self.account, account_id)
            assert account is not None
            token, now = new_token(), tx.now()
            expires_at = now + self.lifetimes(tx.settings, door)[1]
            tx.session.execute(
                insert(self.session).values(
                    {
                        self.owner.key: account_id,
                        "token_hash": self._token_hash(tx, token, door),
                        "created_at": now,
                        "last_seen_at": now,
                        "expires_at": expires_at,
                    }
                )
            )
            return Opened(token, expires_at, view(tx, account))

        return db.run(finish, isolation="read committed")

    def authenticate(self, tx: Tx, token: str, door: Door) -> AccountT | None:
        """The enabled account a token of that door belongs to, while its session lives."""
        found = tx.session.execute(
            select(self.session, self.account)
            .filter_by(token_hash=self._token_hash(tx, token, door))
            .join(self.account)  # along the session's foreign key
        ).first()
        if found is None:
            return None
        session, account = found
        now = tx.now()
        idle = self.lifetimes(tx.settings, door)[0]
        if (
            session.revoked_at is not None
            or session.expires_at <= now
            or session.last_seen_at + idle <= now
            or account.disabled_at is not None
        ):
            return None
        touch_every = timedelta(seconds=tx.settings.session_touch_interval_seconds)
        if now - session.last_seen_at >= touch_every:  # else this read writes nothing
            session.last_seen_at = now
        return account

    def sign_out(self, tx: Tx, token: str, door: Door) -> None:
        session = tx.session.scalar(
            select(self.session).filter_by(token_hash=self._token_hash(tx, token, door))
        )
        if session is not None and session.revoked_at is None:
            session.revoked_at = tx.now()

    def _wait_if_throttled(self, tx: Tx, key: str) -> None:
        failures = ratelimit.count(tx, key, tx.now() - DAY)
        if failures < FREE_FAILURES:
            return
        last = ratelimit.latest(tx, key)
        assert last is not None
        cap = float(tx.settings.password_delay_cap_seconds)
        delay = min(cap, 2.0 ** (failures - FREE_FAILURES))
        wait = (last + timedelta(seconds=delay) - tx.now()).total_seconds()
        if wait > 0:
            raise ratelimit.refusal(
                self.throttled_code, N_("Too many wrong passwords. Try again in {wait}."), wait
            )

    def _token_hash(self, tx: Tx, token: str, door: Door) -> str:
        return keyed_hash(tx.settings.hmac_key(), self.labels[door], token)
