"""The shop's own SQLite database: accounts, sessions, pending logins, links, orders.

Each request opens a connection and commits once (``transaction``); the schema is
created on first use. Tokens that grant access (session cookies) are kept as SHA-256
digests, so a copy of the file does not sign anyone in.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final

SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts (
    id INTEGER PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    token_hash TEXT PRIMARY KEY,
    account_id INTEGER REFERENCES accounts (id),
    csrf_token TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS pending_logins (
    state TEXT PRIMARY KEY,
    session_hash TEXT NOT NULL,
    purpose TEXT NOT NULL CHECK (purpose IN ('link', 'signin')),
    nonce TEXT NOT NULL,
    code_verifier TEXT NOT NULL,
    account_id INTEGER REFERENCES accounts (id),
    created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS qianbao_links (
    account_id INTEGER PRIMARY KEY REFERENCES accounts (id),
    subject TEXT NOT NULL UNIQUE,
    refresh_token TEXT,
    verified_name TEXT,
    nationality TEXT,
    route TEXT,
    trust_framework TEXT,
    linked_at INTEGER NOT NULL,
    checked_at INTEGER NOT NULL,
    ended_at INTEGER,
    end_reason TEXT
);
CREATE TABLE IF NOT EXISTS orders (
    id INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts (id),
    product_id TEXT NOT NULL,
    quantity INTEGER NOT NULL CHECK (quantity > 0),
    total_fen INTEGER NOT NULL CHECK (total_fen > 0),
    created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS order_refunds (
    id INTEGER PRIMARY KEY,
    order_id INTEGER NOT NULL REFERENCES orders (id),
    out_request_no TEXT NOT NULL UNIQUE,
    amount_fen INTEGER NOT NULL CHECK (amount_fen > 0),
    fund_change INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS payment_notifications (
    id INTEGER PRIMARY KEY,
    order_id INTEGER NOT NULL REFERENCES orders (id),
    notify_id TEXT NOT NULL,
    trade_status TEXT NOT NULL,
    received_at INTEGER NOT NULL
);
"""
# Columns added to orders by payments (an older database file gets them on start).
ORDER_PAYMENT_COLUMNS: Final = {
    "out_trade_no": "TEXT",
    "trade_no": "TEXT",
    "trade_status": "TEXT",
    "qr_code": "TEXT",
    "paid_at": "INTEGER",
    "refunded_fen": "INTEGER NOT NULL DEFAULT 0",
}


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_schema(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with transaction(path) as db:
        db.executescript(SCHEMA)
        present = {row["name"] for row in db.execute("PRAGMA table_info(orders)")}
        for name, kind in ORDER_PAYMENT_COLUMNS.items():
            if name not in present:
                db.execute(f"ALTER TABLE orders ADD COLUMN {name} {kind}")
        db.execute(
            "CREATE UNIQUE INDEX IF NOT EXISTS ix_orders_out_trade_no ON orders (out_trade_no)"
        )


@contextmanager
def transaction(path: Path) -> Iterator[sqlite3.Connection]:
    """One connection, one transaction: committed when the block ends, else rolled back."""
    connection = sqlite3.connect(path, timeout=10)
    connection.row_factory = sqlite3.Row
    connection.execute("PRAGMA foreign_keys = ON")
    try:
        with connection:
            yield connection
    finally:
        connection.close()


@dataclass(frozen=True)
class Account:
    id: int
    email: str
    password_hash: str


@dataclass(frozen=True)
class Session:
    account_id: int | None
    csrf_token: str


@dataclass(frozen=True)
class PendingLogin:
    state: str
    session_hash: str
    purpose: str
    nonce: str
    code_verifier: str
    account_id: int | None
    created_at: int


@dataclass(frozen=True)
class Link:
    account_id: int
    subject: str
    refresh_token: str | None
    verified_name: str | None
    nationality: str | None
    route: str | None
    trust_framework: str | None
    linked_at: int
    checked_at: int
    ended_at: int | None
    end_reason: str | None

    @property
    def active(self) -> bool:
        return self.ended_at is None

    @property
    def verified(self) -> bool:
        """An active link that carries a verified identity lifts the restriction."""
        return self.active and self.verified_name is not None


@dataclass(frozen=True)
class Order:
    id: int
    account_id: int
    product_id: str
    quantity: int
    total_fen: int
    created_at: int
    out_trade_no: str | None
    trade_no: str | None
    trade_status: str | None  # Alipay's state at Qianbao; None before paying started
    qr_code: str | None
    paid_at: int | None
    refunded_fen: int

    @property
    def paid(self) -> bool:
        return self.paid_at is not None

    @property
    def refundable_fen(self) -> int:
        return self.total_fen - self.refunded_fen if self.paid else 0


@dataclass(frozen=True)
class OrderRefund:
    out_request_no: str
    amount_fen: int
    fund_change: bool
    created_at: int


@dataclass(frozen=True)
class PaymentNotification:
    notify_id: str
    trade_status: str
    received_at: int


# --- accounts and sessions ---


def insert_account(db: sqlite3.Connection, email: str, password_hash: str, now: int) -> int:
    cursor = db.execute(
        "INSERT INTO accounts (email, password_hash, created_at) VALUES (?, ?, ?)",
        (email, password_hash, now),
    )
    assert cursor.lastrowid is not None
    return cursor.lastrowid


def account_by_email(db: sqlite3.Connection, email: str) -> Account | None:
    row = db.execute(
        "SELECT id, email, password_hash FROM accounts WHERE email = ?", (email,)
    ).fetchone()
    return None if row is None else Account(row["id"], row["email"], row["password_hash"])


def account_by_id(db: sqlite3.Connection, account_id: int) -> Account | None:
    row = db.execute(
        "SELECT id, email, password_hash FROM accounts WHERE id = ?", (account_id,)
    ).fetchone()
    return None if row is None else Account(row["id"], row["email"], row["password_hash"])


def insert_session(
    db: sqlite3.Connection, token: str, account_id: int | None, csrf_token: str, expires_at: int
) -> None:
    db.execute(
        "INSERT INTO sessions (token_hash, account_id, csrf_token, expires_at) VALUES (?, ?, ?, ?)",
        (digest(token), account_id, csrf_token, expires_at),
    )


def session_by_token(db: sqlite3.Connection, token: str, now: int) -> Session | None:
    row = db.execute(
        "SELECT account_id, csrf_token FROM sessions WHERE token_hash = ? AND expires_at > ?",
        (digest(token), now),
    ).fetchone()
    return None if row is None else Session(row["account_id"], row["csrf_token"])


def forget_sessions_before(db: sqlite3.Connection, now: int) -> None:
    db.execute("DELETE FROM sessions WHERE expires_at <= ?", (now,))


def delete_session(db: sqlite3.Connection, token: str) -> None:
    db.execute("DELETE FROM sessions WHERE token_hash = ?", (digest(token),))


# --- logins in flight at Qianbao ---


def insert_pending(db: sqlite3.Connection, pending: PendingLogin) -> None:
    db.execute(
        "INSERT INTO pending_logins (state, session_hash, purpose, nonce, code_verifier,"
        " account_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            pending.state,
            pending.session_hash,
            pending.purpose,
            pending.nonce,
            pending.code_verifier,
            pending.account_id,
            pending.created_at,
        ),
    )


def take_pending(db: sqlite3.Connection, state: str) -> PendingLogin | None:
    """The login that ``state`` names, removed: a state is good for one callback."""
    row = db.execute("SELECT * FROM pending_logins WHERE state = ?", (state,)).fetchone()
    if row is None:
        return None
    db.execute("DELETE FROM pending_logins WHERE state = ?", (state,))
    return PendingLogin(**dict(row))


def forget_pending_before(db: sqlite3.Connection, cutoff: int) -> None:
    db.execute("DELETE FROM pending_logins WHERE created_at < ?", (cutoff,))


# --- links to Qianbao ---


def link_of(db: sqlite3.Connection, account_id: int) -> Link | None:
    row = db.execute("SELECT * FROM qianbao_links WHERE account_id = ?", (account_id,)).fetchone()
    return None if row is None else Link(**dict(row))


def link_by_subject(db: sqlite3.Connection, subject: str) -> Link | None:
    row = db.execute("SELECT * FROM qianbao_links WHERE subject = ?", (subject,)).fetchone()
    return None if row is None else Link(**dict(row))


def save_link(db: sqlite3.Connection, link: Link) -> None:
    """Insert or replace the account's link (a relink starts a new one)."""
    db.execute(
        "DELETE FROM qianbao_links WHERE account_id = ? OR subject = ?",
        (link.account_id, link.subject),
    )
    db.execute(
        "INSERT INTO qianbao_links (account_id, subject, refresh_token, verified_name,"
        " nationality, route, trust_framework, linked_at, checked_at, ended_at, end_reason)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            link.account_id,
            link.subject,
            link.refresh_token,
            link.verified_name,
            link.nationality,
            link.route,
            link.trust_framework,
            link.linked_at,
            link.checked_at,
            link.ended_at,
            link.end_reason,
        ),
    )


# --- orders ---


def insert_order(
    db: sqlite3.Connection,
    account_id: int,
    product_id: str,
    quantity: int,
    total_fen: int,
    now: int,
) -> int:
    cursor = db.execute(
        "INSERT INTO orders (account_id, product_id, quantity, total_fen, created_at)"
        " VALUES (?, ?, ?, ?, ?)",
        (account_id, product_id, quantity, total_fen, now),
    )
    assert cursor.lastrowid is not None
    return cursor.lastrowid


ORDER_COLUMNS: Final = (
    "id, account_id, product_id, quantity, total_fen, created_at, out_trade_no, trade_no,"
    " trade_status, qr_code, paid_at, refunded_fen"
)


def orders_of(db: sqlite3.Connection, account_id: int) -> list[Order]:
    rows = db.execute(
        f"SELECT {ORDER_COLUMNS} FROM orders WHERE account_id = ? ORDER BY id DESC",  # noqa: S608
        (account_id,),
    ).fetchall()
    return [Order(**dict(row)) for row in rows]


def order_by_id(db: sqlite3.Connection, order_id: int) -> Order | None:
    row = db.execute(
        f"SELECT {ORDER_COLUMNS} FROM orders WHERE id = ?",  # noqa: S608
        (order_id,),
    ).fetchone()
    return None if row is None else Order(**dict(row))


def order_by_trade(db: sqlite3.Connection, out_trade_no: str) -> Order | None:
    row = db.execute(
        f"SELECT {ORDER_COLUMNS} FROM orders WHERE out_trade_no = ?",  # noqa: S608
        (out_trade_no,),
    ).fetchone()
    return None if row is None else Order(**dict(row))


def start_payment(db: sqlite3.Connection, order_id: int, out_trade_no: str) -> None:
    """The order's number at Qianbao, given once (kept for every later attempt)."""
    db.execute(
        "UPDATE orders SET out_trade_no = ?, trade_status = 'WAIT_BUYER_PAY'"
        " WHERE id = ? AND out_trade_no IS NULL",
        (out_trade_no, order_id),
    )


def save_qr_code(db: sqlite3.Connection, order_id: int, qr_code: str) -> None:
    db.execute("UPDATE orders SET qr_code = ? WHERE id = ?", (qr_code, order_id))


def save_trade(
    db: sqlite3.Connection, order_id: int, trade_no: str, trade_status: str, now: int
) -> None:
    """Qianbao's word on the trade; paid_at is set the first time it is paid."""
    paid = trade_status in ("TRADE_SUCCESS", "TRADE_FINISHED")
    db.execute(
        "UPDATE orders SET trade_no = ?, trade_status = ?,"
        " paid_at = CASE WHEN paid_at IS NULL AND ? THEN ? ELSE paid_at END WHERE id = ?",
        (trade_no, trade_status, paid, now, order_id),
    )


def refund_by_request(db: sqlite3.Connection, out_request_no: str) -> OrderRefund | None:
    row = db.execute(
        "SELECT out_request_no, amount_fen, fund_change, created_at FROM order_refunds"
        " WHERE out_request_no = ?",
        (out_request_no,),
    ).fetchone()
    return None if row is None else OrderRefund(**{**dict(row), "fund_change": bool(row[2])})


def refunds_of(db: sqlite3.Connection, order_id: int) -> list[OrderRefund]:
    rows = db.execute(
        "SELECT out_request_no, amount_fen, fund_change, created_at FROM order_refunds"
        " WHERE order_id = ? ORDER BY id",
        (order_id,),
    ).fetchall()
    return [OrderRefund(**{**dict(row), "fund_change": bool(row[2])}) for row in rows]


def save_refund(
    db: sqlite3.Connection,
    order_id: int,
    refund: OrderRefund,
    refunded_fen: int,
) -> None:
    db.execute(
        "INSERT OR IGNORE INTO order_refunds (order_id, out_request_no, amount_fen,"
        " fund_change, created_at) VALUES (?, ?, ?, ?, ?)",
        (order_id, refund.out_request_no, refund.amount_fen, refund.fund_change, refund.created_at),
    )
    db.execute("UPDATE orders SET refunded_fen = ? WHERE id = ?", (refunded_fen, order_id))


def raise_refunded(db: sqlite3.Connection, order_id: int, refunded_fen: int) -> None:
    """What Qianbao says was refunded in all (it only grows)."""
    db.execute(
        "UPDATE orders SET refunded_fen = MAX(refunded_fen, ?) WHERE id = ?",
        (refunded_fen, order_id),
    )


def save_notification(
    db: sqlite3.Connection, order_id: int, notification: PaymentNotification
) -> None:
    db.execute(
        "INSERT INTO payment_notifications (order_id, notify_id, trade_status, received_at)"
        " VALUES (?, ?, ?, ?)",
        (order_id, notification.notify_id, notification.trade_status, notification.received_at),
    )


def notifications_of(db: sqlite3.Connection, order_id: int) -> list[PaymentNotification]:
    rows = db.execute(
        "SELECT notify_id, trade_status, received_at FROM payment_notifications"
        " WHERE order_id = ? ORDER BY id",
        (order_id,),
    ).fetchall()
    return [PaymentNotification(**dict(row)) for row in rows]
