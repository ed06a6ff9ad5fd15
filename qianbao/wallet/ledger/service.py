"""The double-entry ledger: every movement of money, once, balanced, and for good.

Model (TigerBeetle's, in SQL):

- An **account** holds one currency. ``balance`` is posted credits minus posted debits;
  ``pending_debits`` / ``pending_credits`` are what unresolved two-phase transfers
  reserve. ``available = balance - pending_debits`` may not go under the account's
  ``floor`` (0 for user and merchant money; NULL, no floor, for clearing, income and
  issuance accounts, which stand for money outside the wallet and go negative).
- A **transfer** moves a positive amount from a debit account to a credit account of
  the same currency. Kinds: ``posted``; ``pending`` (reserves, with an expiry);
  ``post_pending`` (moves up to the pending amount, releases the rest) and
  ``void_pending`` (releases it all), each naming its pending transfer, at most once.
- An **operation** is one business action (a payment and its fee): one or more
  transfers committed together or not at all, under a unique idempotency key, with
  the hash of the request and the result given back. A retry with the same key and
  the same request gets the stored result and moves nothing; the same key with another
  request is refused (``idempotency.mismatch``), as with a payment provider's
  idempotency keys or TigerBeetle's transfer ids. A refused operation (insufficient
  funds) stores nothing, so the key may be used again.

Guarantees in the database itself (migration 0007), whatever code writes to it: amount
> 0, one currency per transfer and its accounts, unique idempotency keys, a pending
transfer resolved at most once, append-only transfers and operations, balances kept by
a trigger on INSERT into transfers (so each balance equals its history on every path),
balance columns that nothing else may change, and the floor as a CHECK on the row.
Python checks the same things first only to give a clear error instead of a database
exception; the database is what makes them true.

Concurrency. An operation plans its transfers in Python, then locks every account row
it touches with one ``SELECT ... ORDER BY id FOR UPDATE`` (one fixed order for everyone:
no deadlocks), re-checks balances on the locked rows, and inserts. Run it with
``db.run(..., isolation="read committed")`` on PostgreSQL: the row locks make it exact,
and contenders for a row wait instead of failing (SERIALIZABLE is also correct, with
retries; ``bench/ledger.py`` measures both). No advisory locks, so it carries over to
CockroachDB. SQLite runs one writer at a time, which is serializable by construction.
The fixed order holds within one ``execute``/``execute_many`` call: a use case that makes
a second call which locks rows other than those the first locked may deadlock with
another; PostgreSQL detects it after ``deadlock_timeout`` (1 s) and ``Database.run``
retries, so it stays correct but is slow. Put the whole batch in one ``execute_many``.

Hot accounts. An account opened with ``shards=N`` is a head row plus N-1 shard rows
(``shard_of`` = head); its balance is the sum over them. A credit goes to one of the N
rows at random, so 16 payers of one merchant queue on N rows, not one. A debit (payout,
refund, hold) locks all N rows and, when the head alone does not cover it, first sweeps
shards into the head with internal transfers in the same operation.

Batching: ``execute_many`` runs many independent operations, each with its own key and
its own outcome, in one database transaction (one lock statement, one commit).
"""

from __future__ import annotations

import copy
import hashlib
import json
import random
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Final, Literal, NamedTuple, cast

from sqlalchemy import Table, insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from qianbao.db import Tx, new_id
from qianbao.errors import Conflict, InvalidInput, NotFound, QianbaoError
from qianbao.i18n import N_
from qianbao.money import Money
from qianbao.observability import metrics
from qianbao.wallet.ledger.models import (
    ACCOUNT_KINDS,
    LedgerAccount,
    LedgerOperation,
    LedgerTransfer,
)

AccountKind = Literal[
    "user_balance",
    "user_held",
    "merchant_settlement",
    "card_clearing",
    "bank_clearing",
    "fee_income",
    "fx",
    "issuance",
    "tour_pass",
]
# Money that belongs to a person or a merchant may not go negative; the others stand for
# money outside the wallet (a card network, a bank, the fees earned) and may.
DEFAULT_FLOORS: Final[Mapping[str, int | None]] = {
    "user_balance": 0,
    "user_held": 0,
    "merchant_settlement": 0,
    "card_clearing": None,
    "bank_clearing": None,
    "fee_income": None,
    "fx": None,
    "issuance": None,
    "tour_pass": 0,
}
MAX_SHARDS: Final = 64

_accounts = cast(Table, LedgerAccount.__table__)
_operations = cast(Table, LedgerOperation.__table__)
_transfers = cast(Table, LedgerTransfer.__table__)


# --- errors -----------------------------------------------------------------------------


def insufficient_funds(account_id: uuid.UUID) -> Conflict:
    return Conflict(
        "ledger.insufficient_funds",
        N_("There is not enough money in the account for this."),
        details={"account_id": str(account_id)},
    )


def idempotency_mismatch(key: str) -> Conflict:
    return Conflict(
        "idempotency.mismatch",
        N_("This request repeats an earlier one's key with different contents."),
        details={"idempotency_key": key},
    )


def account_not_found(account_id: uuid.UUID) -> NotFound:
    return NotFound(
        "ledger.account_not_found",
        N_("There is no such account."),
        details={"account_id": str(account_id)},
    )


def _invalid(code: str, message: str, **details: str) -> InvalidInput:
    return InvalidInput(code, message, details=details)


# --- values -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Balance:
    """An account's money (summed over its shards), in minor units of ``currency``."""

    currency: str
    posted: int
    pending_debits: int
    pending_credits: int
    floor: int | None

    @property
    def available(self) -> int:
        """What may still be spent or held: pending debits count against it."""
        return self.posted - self.pending_debits


@dataclass(frozen=True)
class Receipt:
    """What an operation gave back. ``replayed``: this was a retry of a done operation."""

    operation_id: uuid.UUID
    transfer_ids: tuple[uuid.UUID, ...]
    result: dict[str, Any]
    replayed: bool


@dataclass(frozen=True)
class _Intent:
    kind: Literal["posted", "pending", "post_pending", "void_pending"]
    transfer_id: uuid.UUID
    debit: uuid.UUID | None = None
    credit: uuid.UUID | None = None
    amount: Money | None = None
    pending_id: uuid.UUID | None = None
    expires_at: datetime | None = None


class Booking:
    """What ``build`` gets: it records the movements of one operation. Nothing reaches
    the database until ``build`` returns; each method returns the new transfer's id."""

    def __init__(self) -> None:
        self.intents: list[_Intent] = []

    def transfer(self, debit: uuid.UUID, credit: uuid.UUID, amount: Money) -> uuid.UUID:
        return self._add(_Intent("posted", new_id(), debit, credit, amount))

    def hold(
        self, debit: uuid.UUID, credit: uuid.UUID, amount: Money, *, expires_at: datetime
    ) -> uuid.UUID:
        """Reserve ``amount`` (it counts against the debit account's floor at once)."""
        return self._add(_Intent("pending", new_id(), debit, credit, amount, None, expires_at))

    def post(self, pending_id: uuid.UUID, amount: Money | None = None) -> uuid.UUID:
        """Move ``amount`` of a hold (all of it when None) and release the rest."""
        return self._add(_Intent("post_pending", new_id(), amount=amount, pending_id=pending_id))

    def void(self, pending_id: uuid.UUID) -> uuid.UUID:
        return self._add(_Intent("void_pending", new_id(), pending_id=pending_id))

    def _add(self, intent: _Intent) -> uuid.UUID:
        self.intents.append(intent)
        return intent.transfer_id


Build = Callable[[Booking], Mapping[str, Any] | None]


class Operation(NamedTuple):
    """One operation for ``execute_many``."""

    key: str
    request: Mapping[str, Any]
    build: Build


# --- accounts ---------------------------------------------------------------------------


def open_account(
    tx: Tx,
    *,
    kind: AccountKind,
    currency: str,
    owner_id: uuid.UUID | None = None,
    floor: int | Literal["default"] | None = "default",
    shards: int = 1,
) -> uuid.UUID:
    """Open an empty account (``shards`` > 1 for a hot one, see the module docstring)."""
    if kind not in ACCOUNT_KINDS:
        raise _invalid("ledger.account_kind", N_("This kind of account does not exist."))
    Money(currency, 0)  # refuses a currency we do not know
    if not 1 <= shards <= MAX_SHARDS:
        raise _invalid("ledger.shards", N_("An account has between 1 and 64 shards."))
    chosen_floor = DEFAULT_FLOORS[kind] if floor == "default" else floor
    head = new_id()
    rows = [
        {
            "id": account_id,
            "kind": kind,
            "owner_id": owner_id,
            "currency": currency,
            "floor": chosen_floor,
            "balance": 0,
            "pending_debits": 0,
            "pending_credits": 0,
            "shard_of": None if account_id == head else head,
            "created_at": tx.now(),
        }
        for account_id in [head, *(new_id() for _ in range(shards - 1))]
    ]
    # The head first: the shards' foreign key points at it.
    tx.session.execute(insert(_accounts), rows[:1])
    if len(rows) > 1:
        tx.session.execute(insert(_accounts), rows[1:])
    return head


def balance(tx: Tx, account_id: uuid.UUID) -> Balance:
    """The account's balance, summed over its shards."""
    rows = tx.session.execute(
        select(
            _accounts.c.currency,
            _accounts.c.floor,
            _accounts.c.balance,
            _accounts.c.pending_debits,
            _accounts.c.pending_credits,
        ).where((_accounts.c.id == account_id) | (_accounts.c.shard_of == account_id))
    ).all()
    if not rows:
        raise account_not_found(account_id)
    return Balance(
        currency=rows[0].currency,
        posted=sum(row.balance for row in rows),
        pending_debits=sum(row.pending_debits for row in rows),
        pending_credits=sum(row.pending_credits for row in rows),
        floor=rows[0].floor,
    )


# --- operations -------------------------------------------------------------------------


def transfer(tx: Tx, key: str, debit: uuid.UUID, credit: uuid.UUID, amount: Money) -> Receipt:
    """Move ``amount`` now."""
    request = {"op": "transfer", "debit": debit, "credit": credit, "amount": amount}
    return execute(tx, key, request, lambda booking: _just(booking.transfer(debit, credit, amount)))


def hold(
    tx: Tx, key: str, debit: uuid.UUID, credit: uuid.UUID, amount: Money, *, expires_at: datetime
) -> Receipt:
    """Reserve ``amount`` until it is posted, voided, or expires (``expire_pending``)."""
    request = {
        "op": "hold",
        "debit": debit,
        "credit": credit,
        "amount": amount,
        "expires_at": expires_at,
    }
    return execute(
        tx,
        key,
        request,
        lambda booking: _just(booking.hold(debit, credit, amount, expires_at=expires_at)),
    )


def post_pending(tx: Tx, key: str, pending_id: uuid.UUID, amount: Money | None = None) -> Receipt:
    request = {"op": "post", "pending_id": pending_id, "amount": amount}
    return execute(tx, key, request, lambda booking: _just(booking.post(pending_id, amount)))


def void_pending(tx: Tx, key: str, pending_id: uuid.UUID) -> Receipt:
    request = {"op": "void", "pending_id": pending_id}
    return execute(tx, key, request, lambda booking: _just(booking.void(pending_id)))


def _just(_transfer_id: uuid.UUID) -> None:
    return None


def _voider(pending_id: uuid.UUID) -> Build:
    return lambda booking: _just(booking.void(pending_id))


def execute(tx: Tx, key: str, request: Mapping[str, Any], build: Build) -> Receipt:
    """Run one operation under an idempotency key; see the module docstring.

    ``request`` must describe the whole operation (it is hashed to recognise a retry);
    ``build(booking)`` records the transfers and may return a JSON-able result, which is
    stored and returned to every retry. Raises the operation's refusal.
    """
    (outcome,) = execute_many(tx, [Operation(key, request, build)])
    if isinstance(outcome, QianbaoError):
        raise outcome
    return outcome


def execute_many(tx: Tx, operations: Sequence[Operation]) -> list[Receipt | QianbaoError]:
    """Run independent operations in the caller's transaction, each with its own key and
    outcome: a refused one is left out (its error is in its place), the rest are written.

    All the account rows of the batch are locked at once, in id order.
    """
    outcomes: list[Receipt | QianbaoError | None] = [None] * len(operations)
    hashes = [request_hash(operation.request) for operation in operations]
    first_position: dict[str, int] = {}
    for position, operation in enumerate(operations):
        if len(operation.key) == 0 or len(operation.key) > 128:
            outcomes[position] = _invalid(
                "ledger.idempotency_key", N_("An idempotency key has 1 to 128 characters.")
            )
        first_position.setdefault(operation.key, position)

    # One operation alone skips this look-up: a retry is recognised when it claims its
    # key (or when it is refused). A batch looks first, so that a retry inside it does
    # not count against the balances seen by the operations after it.
    stored = _stored_operations(tx, first_position) if len(operations) > 1 else {}
    planned: list[_Planned] = []
    for position, operation in enumerate(operations):
        if outcomes[position] is not None:
            continue
        earlier = stored.get(operation.key)
        if earlier is not None:
            outcomes[position] = _replay(earlier, hashes[position], operation.key)
        elif first_position[operation.key] != position:
            continue  # a repeat inside this batch: answered from the first one below
        else:
            try:
                intents, result = _intents(operation)
            except QianbaoError as error:
                outcomes[position] = error
                continue
            planned.append(_Planned(position, operation, hashes[position], intents, result))

    accepted = _plan_and_lock(tx, planned, outcomes)
    _write(tx, accepted, outcomes)

    for position, operation in enumerate(operations):
        if outcomes[position] is None:
            first = outcomes[first_position[operation.key]]
            if isinstance(first, Receipt):
                outcomes[position] = (
                    _replay_receipt(first)
                    if hashes[position] == hashes[first_position[operation.key]]
                    else idempotency_mismatch(operation.key)
                )
            else:
                outcomes[position] = first
    done = [outcome for outcome in outcomes if outcome is not None]
    metrics.ledger_operations(((op.key, op.request) for op in operations), done)
    return done


def expire_pending(tx: Tx, *, limit: int = 500) -> int:
    """Void holds whose expiry has passed (the sweep a worker runs); returns how many.

    Each void is an operation with the key ``expire:<pending id>``, so two sweepers at
    once, or a sweep racing a post, resolve each hold exactly once.
    """
    resolution = _transfers.alias("resolution")
    expired = tx.session.scalars(
        select(_transfers.c.id)
        .where(
            _transfers.c.kind == "pending",
            _transfers.c.expires_at <= tx.now(),
            ~select(resolution.c.id).where(resolution.c.pending_id == _transfers.c.id).exists(),
        )
        .order_by(_transfers.c.expires_at)
        .limit(limit)
    ).all()
    operations = [
        Operation(
            f"expire:{pending_id}",
            {"op": "expire", "pending_id": pending_id},
            _voider(pending_id),
        )
        for pending_id in expired
    ]
    outcomes = execute_many(tx, operations)
    return sum(1 for outcome in outcomes if isinstance(outcome, Receipt) and not outcome.replayed)


# --- idempotency ------------------------------------------------------------------------


def _json_default(value: object) -> object:
    if isinstance(value, Money):
        return {"currency": value.currency, "minor": value.minor}
    if isinstance(value, uuid.UUID | Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not part of a ledger request")


def _canonical_json(value: object) -> str:
    return json.dumps(value, default=_json_default, sort_keys=True, separators=(",", ":"))


def request_hash(request: Mapping[str, Any]) -> str:
    return hashlib.sha256(_canonical_json(request).encode()).hexdigest()


def _stored_operations(tx: Tx, keys: Iterable[str]) -> dict[str, Any]:
    wanted = list(keys)
    if not wanted:
        return {}
    rows = tx.session.execute(
        select(
            _operations.c.id,
            _operations.c.idempotency_key,
            _operations.c.request_hash,
            _operations.c.result,
        ).where(_operations.c.idempotency_key.in_(wanted))
    ).all()
    return {str(row.idempotency_key): row for row in rows}


def _replay(stored: Any, hash_: str, key: str) -> Receipt | QianbaoError:
    if stored.request_hash != hash_:
        return idempotency_mismatch(key)
    body = json.loads(stored.result)
    return Receipt(
        operation_id=stored.id,
        transfer_ids=tuple(uuid.UUID(value) for value in body["transfers"]),
        result=body["result"],
        replayed=True,
    )


def _replay_receipt(receipt: Receipt) -> Receipt:
    return Receipt(receipt.operation_id, receipt.transfer_ids, receipt.result, replayed=True)


# --- planning ---------------------------------------------------------------------------


@dataclass
class _Planned:
    position: int
    operation: Operation
    hash: str
    intents: list[_Intent]
    result: dict[str, Any]
    operation_id: uuid.UUID = field(default_factory=new_id)
    rows: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class _AccountState:
    """A locked account row, updated as the batch's transfers are planned."""

    id: uuid.UUID
    currency: str
    floor: int | None
    balance: int
    pending_debits: int
    pending_credits: int

    def can_reserve(self, amount: int) -> bool:
        return self.floor is None or self.balance - self.pending_debits - amount >= self.floor


def _intents(operation: Operation) -> tuple[list[_Intent], dict[str, Any]]:
    booking = Booking()
    result = operation.build(booking)
    if not booking.intents:
        raise _invalid("ledger.empty_operation", N_("An operation moves some money."))
    # Through JSON now, so that the first answer and every replay are equal.
    return booking.intents, json.loads(_canonical_json(dict(result or {})))


@dataclass(frozen=True)
class _Pending:
    id: uuid.UUID
    kind: str
    debit_account_id: uuid.UUID
    credit_account_id: uuid.UUID
    amount: int
    currency: str
    expires_at: datetime | None


@dataclass(frozen=True)
class _Group:
    """A logical account: its head row and its shards (the head alone when unsharded)."""

    head: uuid.UUID
    currency: str
    shards: tuple[uuid.UUID, ...]  # the rows other than the head


def _plan_and_lock(
    tx: Tx, planned: list[_Planned], outcomes: list[Receipt | QianbaoError | None]
) -> list[_Planned]:
    """Lock every row the batch touches (one statement, id order), then plan each
    operation's transfer rows against the locked balances. Returns the accepted ones."""
    if not planned:
        return []
    pending_ids = {i.pending_id for p in planned for i in p.intents if i.pending_id is not None}
    pendings = _pendings(tx, pending_ids)
    named = {a for p in planned for i in p.intents for a in (i.debit, i.credit) if a is not None}
    named |= {a for p in pendings.values() for a in (p.debit_account_id, p.credit_account_id)}
    groups = _groups(tx, named)

    # Which rows each operation touches: a credit lands on one row of its group, chosen at
    # random (the point of shards); a debit from a sharded account may sweep all of them.
    refused: list[_Planned] = []
    lock_ids: set[uuid.UUID] = set()
    credit_rows: dict[uuid.UUID, uuid.UUID] = {}
    survivors: list[_Planned] = []
    for plan in planned:
        try:
            for intent in plan.intents:
                if intent.kind in ("posted", "pending"):
                    assert intent.debit is not None
                    assert intent.credit is not None
                    debit, credit = _group(groups, intent.debit), _group(groups, intent.credit)
                    lock_ids.update((debit.head, *debit.shards))
                    credit_rows[intent.transfer_id] = random.choice(  # noqa: S311 - spreading
                        (credit.head, *credit.shards)
                    )
                    lock_ids.add(credit_rows[intent.transfer_id])
                else:
                    assert intent.pending_id is not None
                    pending = _pending(pendings, intent.pending_id)
                    lock_ids.update((pending.debit_account_id, pending.credit_account_id))
        except QianbaoError as error:
            outcomes[plan.position] = error
            refused.append(plan)
            continue
        survivors.append(plan)

    states = {
        row.id: _AccountState(
            row.id, row.currency, row.floor, row.balance, row.pending_debits, row.pending_credits
        )
        for row in tx.session.execute(
            select(
                _accounts.c.id,
                _accounts.c.currency,
                _accounts.c.floor,
                _accounts.c.balance,
                _accounts.c.pending_debits,
                _accounts.c.pending_credits,
            )
            .where(_accounts.c.id.in_(sorted(lock_ids)))
            .order_by(_accounts.c.id)
            .with_for_update()
        )
    }
    # Read after the locks: whoever resolved one of these holds held the same rows.
    resolved: set[uuid.UUID] = set(
        tx.session.scalars(
            select(_transfers.c.pending_id).where(_transfers.c.pending_id.in_(pending_ids))
        )
        if pending_ids
        else []
    )

    accepted: list[_Planned] = []
    now = tx.now()
    for plan in survivors:
        touched = {row_id: copy.copy(state) for row_id, state in states.items()}
        try:
            plan.rows = _plan_rows(plan, groups, pendings, resolved, credit_rows, touched, now)
        except QianbaoError as error:
            outcomes[plan.position] = error
            refused.append(plan)
            continue
        states = touched
        resolved |= {row["pending_id"] for row in plan.rows if row["pending_id"] is not None}
        accepted.append(plan)

    # A refusal may be a retry whose first try committed while we waited for the locks
    # (its hold is now resolved, its money spent): then the answer is the first result.
    stored = _stored_operations(tx, (plan.operation.key for plan in refused))
    for plan in refused:
        if plan.operation.key in stored:
            outcomes[plan.position] = _replay(
                stored[plan.operation.key], plan.hash, plan.operation.key
            )
    return accepted


def _pendings(tx: Tx, pending_ids: set[uuid.UUID]) -> dict[uuid.UUID, _Pending]:
    if not pending_ids:
        return {}
    rows = tx.session.execute(
        select(
            _transfers.c.id,
            _transfers.c.kind,
            _transfers.c.debit_account_id,
            _transfers.c.credit_account_id,
            _transfers.c.amount,
            _transfers.c.currency,
            _transfers.c.expires_at,
        ).where(_transfers.c.id.in_(pending_ids))
    ).all()
    return {row.id: _Pending(*row) for row in rows}


def _pending(pendings: Mapping[uuid.UUID, _Pending], pending_id: uuid.UUID) -> _Pending:
    pending = pendings.get(pending_id)
    if pending is None or pending.kind != "pending":
        raise NotFound(
            "ledger.pending_not_found",
            N_("There is no such hold."),
            details={"pending_id": str(pending_id)},
        )
    return pending


def _groups(tx: Tx, named: set[uuid.UUID]) -> dict[uuid.UUID, _Group]:
    """The named accounts with their shards (account rows never change currency or
    shard, so this needs no lock)."""
    groups = {account: _GROUPS[account] for account in named if account in _GROUPS}
    missing = named - groups.keys()
    if not missing:
        return groups
    rows = tx.session.execute(
        select(_accounts.c.id, _accounts.c.shard_of, _accounts.c.currency).where(
            _accounts.c.id.in_(missing) | _accounts.c.shard_of.in_(missing)
        )
    ).all()
    shards: dict[uuid.UUID, list[uuid.UUID]] = {}
    for row in rows:
        if row.shard_of is not None:
            shards.setdefault(row.shard_of, []).append(row.id)
    found = {
        row.id: _Group(row.id, row.currency, tuple(sorted(shards.get(row.id, []))))
        for row in rows
        if row.id in missing
    }
    if len(_GROUPS) > 100_000:
        _GROUPS.clear()
    _GROUPS.update(found)
    return groups | found


# Currency and shards of an account never change (the database refuses it) and shards are
# made only with their account, so they are remembered per process: one query less per
# operation. (An account opened in a transaction that rolled back may linger here; using
# its id then fails on the foreign key instead of with ``ledger.account_not_found``.)
_GROUPS: dict[uuid.UUID, _Group] = {}


def _group(groups: Mapping[uuid.UUID, _Group], account_id: uuid.UUID) -> _Group:
    group = groups.get(account_id)
    if group is None:
        raise account_not_found(account_id)
    return group


def _plan_rows(
    plan: _Planned,
    groups: Mapping[uuid.UUID, _Group],
    pendings: Mapping[uuid.UUID, _Pending],
    resolved: set[uuid.UUID],
    credit_rows: Mapping[uuid.UUID, uuid.UUID],
    states: dict[uuid.UUID, _AccountState],
    now: datetime,
) -> list[dict[str, Any]]:
    """The transfer rows of one operation, applied to ``states`` (raises if refused)."""
    rows: list[dict[str, Any]] = []

    def add(
        transfer_id: uuid.UUID,
        kind: str,
        debit: uuid.UUID,
        credit: uuid.UUID,
        amount: int,
        currency: str,
        pending: _Pending | None = None,
        expires_at: datetime | None = None,
    ) -> None:
        released = pending.amount if pending is not None else 0
        moved = amount if kind in ("posted", "post_pending") else 0
        reserved = amount if kind == "pending" else 0
        states[debit].balance -= moved
        states[debit].pending_debits += reserved - released
        states[credit].balance += moved
        states[credit].pending_credits += reserved - released
        rows.append(
            {
                "id": transfer_id,
                "operation_id": plan.operation_id,
                "position": len(rows),
                "debit_account_id": debit,
                "credit_account_id": credit,
                "amount": amount,
                "currency": currency,
                "kind": kind,
                "pending_id": pending.id if pending is not None else None,
                "expires_at": expires_at,
                "created_at": now,
            }
        )

    resolving: set[uuid.UUID] = set()
    for intent in plan.intents:
        if intent.kind in ("posted", "pending"):
            assert intent.debit is not None
            assert intent.credit is not None
            assert intent.amount is not None
            debit, credit = groups[intent.debit], groups[intent.credit]
            amount = _amount(intent.amount, debit.currency, credit.currency)
            if debit.head == credit.head:
                raise _invalid(
                    "ledger.same_account", N_("Money cannot move from an account to itself.")
                )
            if intent.kind == "pending" and (intent.expires_at is None or intent.expires_at <= now):
                raise _invalid("ledger.hold_expiry", N_("A hold needs an expiry in the future."))
            _sweep_shards(debit, amount, states, add, debit.currency)
            if not states[debit.head].can_reserve(amount):
                raise insufficient_funds(intent.debit)
            add(
                intent.transfer_id,
                intent.kind,
                debit.head,
                credit_rows[intent.transfer_id],
                amount,
                debit.currency,
                expires_at=intent.expires_at,
            )
            continue
        assert intent.pending_id is not None
        pending = pendings[intent.pending_id]
        if pending.id in resolved or pending.id in resolving:
            raise Conflict(
                "ledger.pending_resolved",
                N_("This hold has already been settled or released."),
                details={"pending_id": str(pending.id)},
            )
        resolving.add(pending.id)
        amount = pending.amount
        if intent.kind == "post_pending":
            if pending.expires_at is not None and pending.expires_at <= now:
                raise Conflict(
                    "ledger.pending_expired",
                    N_("This hold has expired; its money is released."),
                    details={"pending_id": str(pending.id)},
                )
            if intent.amount is not None:
                amount = _amount(intent.amount, pending.currency, pending.currency)
                if amount > pending.amount:
                    raise _invalid(
                        "ledger.post_exceeds_hold",
                        N_("A hold can be settled for at most the amount it holds."),
                    )
        add(
            intent.transfer_id,
            intent.kind,
            pending.debit_account_id,
            pending.credit_account_id,
            amount,
            pending.currency,
            pending=pending,
        )
    return rows


def _amount(amount: Money, debit_currency: str, credit_currency: str) -> int:
    if amount.currency != debit_currency or amount.currency != credit_currency:
        raise _invalid(
            "ledger.currency_mismatch",
            N_("Money moves only between accounts of its own currency."),
        )
    if amount.minor <= 0:
        raise _invalid("ledger.invalid_amount", N_("An amount must be more than zero."))
    return amount.minor


def _sweep_shards(
    group: _Group,
    amount: int,
    states: dict[uuid.UUID, _AccountState],
    add: Callable[..., None],
    currency: str,
) -> None:
    """Before a debit from a sharded account, move what the head lacks from its shards
    (in id order) into the head, as transfers of the same operation."""
    head = states[group.head]
    for shard_id in group.shards:
        if head.can_reserve(amount):
            return
        shard = states[shard_id]
        assert head.floor is not None  # can_reserve is always true without a floor
        missing = head.floor - (head.balance - head.pending_debits - amount)
        spare = shard.balance - shard.pending_debits - (shard.floor or 0)
        if spare > 0:
            add(new_id(), "posted", shard_id, group.head, min(missing, spare), currency)


def _write(tx: Tx, accepted: list[_Planned], outcomes: list[Receipt | QianbaoError | None]) -> None:
    """Claim each key (a concurrent first try may have taken it), then insert transfers."""
    if not accepted:
        return
    insert_operation = (
        pg_insert if tx.session.get_bind().dialect.name == "postgresql" else sqlite_insert
    )
    # One statement whatever the batch's size: parameters passed apart (SQLAlchemy's
    # "insertmanyvalues" batches them) keep its compiled form cached, where a .values()
    # list made a new statement to compile on every call.
    statement = (
        insert_operation(_operations)
        .on_conflict_do_nothing(index_elements=[_operations.c.idempotency_key])
        .returning(_operations.c.idempotency_key)
    )
    now = tx.now()
    rows_to_claim = [
        {
            "id": plan.operation_id,
            "idempotency_key": plan.operation.key,
            "request_hash": plan.hash,
            "result": _canonical_json(
                {"transfers": [i.transfer_id for i in plan.intents], "result": plan.result}
            ),
            "created_at": now,
        }
        for plan in accepted
    ]
    claimed: set[str] = set(tx.session.scalars(statement, rows_to_claim))
    lost = [plan for plan in accepted if plan.operation.key not in claimed]
    stored = _stored_operations(tx, (plan.operation.key for plan in lost))
    for plan in lost:
        outcomes[plan.position] = _replay(stored[plan.operation.key], plan.hash, plan.operation.key)
    written = [plan for plan in accepted if plan.operation.key in claimed]
    rows = [row for plan in written for row in plan.rows]
    if rows:
        tx.session.execute(insert(_transfers), rows)
    for plan in written:
        outcomes[plan.position] = Receipt(
            plan.operation_id,
            tuple(intent.transfer_id for intent in plan.intents),
            plan.result,
            replayed=False,
        )
