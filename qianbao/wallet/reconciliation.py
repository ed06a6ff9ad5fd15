"""The outside books against the wallet's: the sandbox card network's and the sandbox
bank's records, order by order, against what the ledger kept.

The ledger's own audit (``wallet/ledger/audit.py``) proves that no money was made or lost inside
the wallet. This proves that the wallet and the outside parties agree to the fen about
the money that crossed between them (DESIGN.md, "Money"):

* an order paid by a foreign card: what the network captured for the order's payment,
  less what it gave back, equals what the wallet kept of it: the order and its fee less
  the refunds to the card whose rows succeeded (``amount + fee_refunded``); each such
  refund is on the network under its key with that amount, and a failed one is not;
* an order paid by a mainland bank card: what the bank debited less what it gave back
  equals the order less the succeeded refunds to the bank card, each found under its key;
* every other card capture or bank debit made for an order (an attempt given up: the
  person paid another way, or the process died before recording it) was sent back in
  full, and no approval for an order is left open on a card;
* each order's ``refunded`` and ``refund_pending`` equal its refund rows, and never
  exceed the order.

Anything else is a finding, as is a refund still pending or an attempt not yet sent
back: after the worker has finished its work, none should be left. Only the sandboxes
keep books that can be read back this way; a real network's settlement file would be
read into the same comparison. Tour Pass top-ups (keyed ``tour:``) are the Tour Pass's
own reconciliation and are counted here only as "other".
"""

from __future__ import annotations

import re
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import or_, select

from qianbao.db import Database, Tx
from qianbao.funding import card_network, connectors
from qianbao.funding import service as funding
from qianbao.funding.bank import BankConnector, BookedDebit
from qianbao.funding.sandbox.bank import SandboxBank
from qianbao.funding.sandbox.card_network import SandboxCardNetwork
from qianbao.money import Money
from qianbao.settings import Settings
from qianbao.wallet.payments.models import OrderRefund, PaymentAttemptReversal, PaymentOrder

# The keys payments.py gives the outside parties for an order's payment attempts.
_CARD_ATTEMPT = re.compile(r"^order:([0-9a-f-]{36}):card:")
_BANK_ATTEMPT = re.compile(r"^order:([0-9a-f-]{36}):bank:")


@dataclass(frozen=True)
class Finding:
    """One disagreement: a stable code, the order, the outside key, and the numbers."""

    code: str
    order_id: uuid.UUID | None
    key: str
    detail: str

    def __str__(self) -> str:
        return f"{self.code} order {self.order_id} [{self.key}]: {self.detail}"


@dataclass
class Reconciliation:
    card_orders: int = 0  # orders paid by a foreign card, compared
    bank_orders: int = 0  # orders paid by a mainland bank card, compared
    attempts_sent_back: int = 0  # captures and debits never recorded, found sent back
    refunds_checked: int = 0  # refund rows to a card or a bank card, each found outside
    other_outside: int = 0  # outside records that are not an order's (Tour Pass, checks)
    findings: list[Finding] = field(default_factory=list)

    @property
    def sound(self) -> bool:
        return not self.findings

    def report(self) -> list[str]:
        lines = [
            f"card orders reconciled with the card network: {self.card_orders}",
            f"bank card orders reconciled with the bank: {self.bank_orders}",
            f"refunds found under their keys: {self.refunds_checked}",
            f"attempts never recorded, found sent back: {self.attempts_sent_back}",
            f"findings: {len(self.findings)}",
            *(f"  {finding}" for finding in self.findings),
        ]
        return [*lines, "outside books agree" if self.sound else "OUTSIDE BOOKS DISAGREE"]


@dataclass(frozen=True)
class _Order:
    id: uuid.UUID
    amount: int
    fee: int
    refunded: int
    refund_pending: int
    source: str | None
    capture_id: str | None
    debit_id: str | None
    attempt_key: str | None


@dataclass(frozen=True)
class _Refund:
    order_id: uuid.UUID
    request_no: str
    status: str
    destination: str
    amount: int
    fee_refunded: int
    key: str | None


@dataclass(frozen=True)
class _Ledger:
    orders: dict[uuid.UUID, _Order]
    refunds: dict[uuid.UUID, list[_Refund]]
    reversals: set[str]


def uses_sandboxes(settings: Settings) -> bool:
    """Whether the card network or the bank is a sandbox, whose books can be read."""
    return settings.card_network == "sandbox" or settings.bank_connector == "sandbox"


def reconcile(db: Database) -> Reconciliation:
    """Compare the sandbox card network's and the sandbox bank's books with the wallet's
    (see the module docstring). Reads only; run it when the worker has finished."""
    found = Reconciliation()
    # The outside books first: a payment finishing meanwhile is then outside and not yet
    # in the wallet, never the other way round (run it when the worker has finished).
    card_books = _card_books(db) if db.settings.card_network == "sandbox" else None
    bank_books = _bank_books(db) if db.settings.bank_connector == "sandbox" else None
    wallet = db.run(_read_wallet, isolation="read committed")
    _check_orders(wallet, found)
    if card_books is not None:
        _check_cards(db, wallet, card_books, found)
    if bank_books is not None:
        _check_banks(db, wallet, bank_books, found)
    return found


def _card_books(db: Database) -> list[card_network.BookedAuthorization]:
    if not (Path(db.settings.var_dir) / connectors.SANDBOX_NETWORK_FILE).exists():
        return []  # the network was never used from this var directory
    network = connectors.network_for(db)
    assert isinstance(network, SandboxCardNetwork)
    return network.books()


def _bank_books(db: Database) -> list[BookedDebit]:
    if not (Path(db.settings.var_dir) / funding.SANDBOX_BANK_FILE).exists():
        return []
    bank = funding.connector(db)
    assert isinstance(bank, SandboxBank)
    return bank.statement()


def _read_wallet(tx: Tx) -> _Ledger:
    orders = {
        row.id: _Order(
            row.id,
            row.amount,
            row.fee,
            row.refunded,
            row.refund_pending,
            row.source,
            row.card_capture_id,
            row.bank_debit_id,
            row.card_attempt_key,
        )
        for row in tx.session.scalars(
            select(PaymentOrder).where(
                or_(
                    PaymentOrder.paid_at.is_not(None),
                    PaymentOrder.card_attempt_key.is_not(None),
                    PaymentOrder.card_id.is_not(None),
                    PaymentOrder.refunded > 0,
                )
            )
        )
    }
    refunds: dict[uuid.UUID, list[_Refund]] = defaultdict(list)
    for row in tx.session.scalars(select(OrderRefund)):
        refunds[row.order_id].append(
            _Refund(
                row.order_id,
                row.out_request_no,
                row.status,
                row.destination,
                row.amount,
                row.fee_refunded,
                row.outside_key,
            )
        )
    reversals = set(tx.session.scalars(select(PaymentAttemptReversal.key)))
    return _Ledger(orders, dict(refunds), reversals)


def _check_orders(wallet: _Ledger, found: Reconciliation) -> None:
    """Each order's refund counters equal its refund rows and stay within the order."""
    for order in wallet.orders.values():
        rows = wallet.refunds.get(order.id, [])
        succeeded = sum(r.amount for r in rows if r.status == "succeeded")
        pending = sum(r.amount for r in rows if r.status == "pending")
        if order.refunded + order.refund_pending > order.amount:
            found.findings.append(
                Finding(
                    "order.refunded_too_much",
                    order.id,
                    "",
                    f"amount {order.amount}, refunded {order.refunded},"
                    f" pending {order.refund_pending}",
                )
            )
        if (succeeded, pending) != (order.refunded, order.refund_pending):
            found.findings.append(
                Finding(
                    "order.refunds_differ",
                    order.id,
                    "",
                    f"order says refunded {order.refunded} pending {order.refund_pending};"
                    f" its rows: succeeded {succeeded} pending {pending}",
                )
            )
        for row in rows:
            if row.status == "pending":
                found.findings.append(
                    Finding(
                        "refund.pending",
                        order.id,
                        row.key or row.request_no,
                        f"{row.destination} refund of {row.amount} (+ fee {row.fee_refunded})"
                        " still pending",
                    )
                )


def _order_of(pattern: re.Pattern[str], key: str) -> uuid.UUID | None:
    match = pattern.match(key)
    return uuid.UUID(match.group(1)) if match else None


def _check_cards(
    db: Database,
    wallet: _Ledger,
    books: list[card_network.BookedAuthorization],
    found: Reconciliation,
) -> None:
    by_capture = {line.capture_id: line for line in books if line.capture_id is not None}
    network = connectors.network_for(db) if books else None
    for order in wallet.orders.values():
        if order.capture_id is None:
            continue
        found.card_orders += 1
        line = by_capture.get(order.capture_id)
        if line is None:
            found.findings.append(
                Finding("card.capture_unknown", order.id, order.capture_id, "not on the network")
            )
            continue
        back = [
            r
            for r in wallet.refunds.get(order.id, [])
            if r.destination == "foreign_card" and r.key is not None
        ]
        kept = order.amount + order.fee
        kept -= sum(r.amount + r.fee_refunded for r in back if r.status == "succeeded")
        on_network = line.captured.minor - line.refunded.minor
        if on_network != kept:
            found.findings.append(
                Finding(
                    "card.kept_differs",
                    order.id,
                    line.key,
                    f"network captured {line.captured.minor} refunded {line.refunded.minor}"
                    f" (keeps {on_network}); the wallet keeps {kept} of amount {order.amount}"
                    f" + fee {order.fee}",
                )
            )
        assert network is not None
        for refund in back:
            _check_card_refund(network, order, refund, found)
    for line in books:
        order_id = _order_of(_CARD_ATTEMPT, line.key)
        if order_id is None:
            found.other_outside += 1
            continue
        paid = wallet.orders.get(order_id)
        if paid is not None and line.capture_id is not None and line.capture_id == paid.capture_id:
            continue  # the payment itself, compared above
        _check_attempt_card(wallet, order_id, paid, line, found)


def _check_card_refund(
    network: card_network.CardNetwork, order: _Order, refund: _Refund, found: Reconciliation
) -> None:
    assert refund.key is not None
    outside = network.find_refund(refund.key)
    if refund.status == "succeeded":
        found.refunds_checked += 1
        want = refund.amount + refund.fee_refunded
        if (
            outside is None
            or outside.amount.minor != want
            or outside.capture_id != order.capture_id
        ):
            got = "none" if outside is None else str(outside.amount.minor)
            found.findings.append(
                Finding(
                    "card.refund_differs",
                    order.id,
                    refund.key,
                    f"refund {refund.request_no} succeeded for {want}; the network has {got}",
                )
            )
    elif refund.status == "failed" and outside is not None:
        found.findings.append(
            Finding(
                "card.refund_failed_but_made",
                order.id,
                refund.key,
                f"refund {refund.request_no} failed in the wallet; the network gave back"
                f" {outside.amount.minor}",
            )
        )


def _check_attempt_card(
    wallet: _Ledger,
    order_id: uuid.UUID,
    order: _Order | None,
    line: card_network.BookedAuthorization,
    found: Reconciliation,
) -> None:
    """A card attempt that is not the order's payment: whatever it took went back."""
    live = order is not None and order.attempt_key == line.key
    kept = line.captured.minor - line.refunded.minor
    status = line.authorization.status
    open_approval = status in ("approved", "challenge_required")
    if kept == 0 and not open_approval:
        if line.capture_id is not None:
            found.attempts_sent_back += 1
        return
    why = (
        "its reversal is still queued"
        if line.key in wallet.reversals
        else "it is still the order's live attempt"
        if live
        else "nothing will send it back"
    )
    if kept:
        code, what = (
            "card.attempt_kept",
            f"captured {line.captured.minor}, refunded {line.refunded.minor}",
        )
    else:
        code, what = (
            "card.approval_open",
            f"authorization {status} for {line.authorization.amount.minor}",
        )
    found.findings.append(Finding(code, order_id, line.key, f"{what}: {why}"))


def _check_banks(
    db: Database,
    wallet: _Ledger,
    books: list[BookedDebit],
    found: Reconciliation,
) -> None:
    by_id = {line.id: line for line in books}
    bank = funding.connector(db) if books else None
    for order in wallet.orders.values():
        if order.debit_id is None:
            continue
        found.bank_orders += 1
        line = by_id.get(order.debit_id)
        if line is None:
            found.findings.append(
                Finding("bank.debit_unknown", order.id, order.debit_id, "not at the bank")
            )
            continue
        back = [
            r
            for r in wallet.refunds.get(order.id, [])
            if r.destination == "bank_card" and r.key is not None
        ]
        given_back = sum(r.amount for r in back if r.status == "succeeded")
        if line.taken.minor != order.amount or line.given_back.minor != given_back:
            found.findings.append(
                Finding(
                    "bank.kept_differs",
                    order.id,
                    line.key,
                    f"bank took {line.taken.minor} gave back {line.given_back.minor}; the"
                    f" wallet took {order.amount} and refunded {given_back}",
                )
            )
        assert bank is not None
        for refund in back:
            _check_bank_refund(bank, order, refund, found)
    for line in books:
        order_id = _order_of(_BANK_ATTEMPT, line.key)
        if order_id is None:
            found.other_outside += 1
            continue
        paid = wallet.orders.get(order_id)
        if paid is not None and paid.debit_id == line.id:
            continue
        if line.given_back == line.taken:
            found.attempts_sent_back += 1
            continue
        why = (
            "its reversal is still queued"
            if line.key in wallet.reversals
            else "it is still the order's live attempt"
            if paid is not None and paid.attempt_key == line.key
            else "nothing will send it back"
        )
        found.findings.append(
            Finding(
                "bank.attempt_kept",
                order_id,
                line.key,
                f"debited {line.taken.minor}, given back {line.given_back.minor}: {why}",
            )
        )


def _check_bank_refund(
    bank: BankConnector, order: _Order, refund: _Refund, found: Reconciliation
) -> None:
    assert refund.key is not None
    outside = bank.find_debit(refund.key)  # any movement under the key: here the credit
    if refund.status == "succeeded":
        found.refunds_checked += 1
        if outside is None or outside.amount != Money("CNY", refund.amount):
            got = "none" if outside is None else str(outside.amount.minor)
            found.findings.append(
                Finding(
                    "bank.refund_differs",
                    order.id,
                    refund.key,
                    f"refund {refund.request_no} succeeded for {refund.amount}; the bank has {got}",
                )
            )
    elif refund.status == "failed" and outside is not None:
        found.findings.append(
            Finding(
                "bank.refund_failed_but_made",
                order.id,
                refund.key,
                f"refund {refund.request_no} failed in the wallet; the bank gave back"
                f" {outside.amount.minor}",
            )
        )
