"""The bank test's clients: what they saw (the journal), an HTTP client that asks again
with the same keys until it is answered, and the random operations (payments, refunds,
transfers, top-up codes, pay-for-me). See bank_run.py."""

from __future__ import annotations

import random
import secrets
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx

from tests.wallet.bank_setup import ANSWER_WITHIN_S, EXPECTED_REFUSALS, PIN, Person

# --- what the clients saw -----------------------------------------------------------------


@dataclass
class Journal:
    """Every answer the clients got, written by many threads under one lock."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    acked: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)  # "kind code"
    unexpected: list[str] = field(default_factory=list)
    server_errors: list[tuple[float, int, str, str]] = field(default_factory=list)
    transport_retries: int = 0
    retries_503: int = 0
    unanswered: list[str] = field(default_factory=list)
    kill_windows: list[tuple[float, float]] = field(default_factory=list)
    kills: Counter[str] = field(default_factory=Counter)
    # The acknowledged operations, to find in the books.
    payments: dict[uuid.UUID, tuple[int, int, uuid.UUID, str]] = field(default_factory=dict)
    # order id -> (amount minor, buyer index, payer id, source)
    pay_for_me: dict[uuid.UUID, tuple[uuid.UUID, uuid.UUID]] = field(default_factory=dict)
    refunds: dict[tuple[uuid.UUID, str], tuple[int, uuid.UUID]] = field(default_factory=dict)
    refused_refunds: list[tuple[uuid.UUID, str]] = field(default_factory=list)
    refused_payments: list[tuple[uuid.UUID, uuid.UUID]] = field(default_factory=list)
    transfers: dict[tuple[uuid.UUID, str], tuple[int, uuid.UUID, uuid.UUID]] = field(
        default_factory=dict
    )
    reused_keys: list[str] = field(default_factory=list)  # what each reuse was answered
    codes: dict[str, uuid.UUID] = field(default_factory=dict)  # code -> redeemer

    def refusal(self, kind: str, status: int, body: dict[str, Any]) -> str:
        code = str(body.get("code", f"http.{status}"))
        with self.lock:
            self.refused[f"{kind} {code}"] += 1
            if code not in EXPECTED_REFUSALS.get(kind, set()):
                self.unexpected.append(f"{kind}: {status} {code} {body.get('message', '')}")
        return code


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


class Unanswered(Exception):
    pass


def _minor(value: str) -> int:
    return int((Decimal(value) * 100).to_integral_value())


def _major(minor: int) -> str:
    return f"{minor // 100}.{minor % 100:02d}"


class Client:
    """One client thread's HTTP client: asks again on timeouts, closed connections and
    503s, with the same body and headers (so the same keys), until it is answered."""

    def __init__(self, base_url: str, journal: Journal, rng: random.Random) -> None:
        self.base_url = base_url
        self.journal = journal
        self.rng = rng
        self.http = httpx.Client(timeout=httpx.Timeout(10.0, connect=2.0))

    def once(
        self,
        method: str,
        path: str,
        *,
        json_body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> Answer | None:
        """One try: the answer, or None when there was none (to be asked again)."""
        try:
            kwargs: dict[str, Any] = {"json": json_body, "headers": headers}
            if timeout is not None:
                kwargs["timeout"] = httpx.Timeout(timeout, connect=2.0)
            response = self.http.request(method, self.base_url + path, **kwargs)
        except httpx.TransportError:
            with self.journal.lock:
                self.journal.transport_retries += 1
            return None
        body: dict[str, Any]
        try:
            parsed = response.json()
            body = parsed if isinstance(parsed, dict) else {"items": parsed}
        except ValueError:
            body = {"text": response.text[:200]}
        if response.status_code >= 500:
            with self.journal.lock:
                self.journal.server_errors.append(
                    (time.monotonic(), response.status_code, path, str(body.get("code", "")))
                )
                if response.status_code == 503:
                    self.journal.retries_503 += 1
            if response.status_code == 503:
                return None
        return Answer(response.status_code, body)

    def call(
        self,
        method: str,
        path: str,
        *,
        json_body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        give_up = time.monotonic() + ANSWER_WITHIN_S
        while True:
            answer = self.once(method, path, json_body=json_body, headers=headers)
            if answer is not None:
                return answer
            if time.monotonic() > give_up:
                with self.journal.lock:
                    self.journal.unanswered.append(f"{method} {path}")
                raise Unanswered(path)
            time.sleep(0.1 + self.rng.random() * 0.3)


# --- the operations -----------------------------------------------------------------------


@dataclass
class World:
    """What the clients share: the people, the orders paid, the refunds and keys done."""

    people: list[Person]
    codes: list[str]
    lock: threading.Lock = field(default_factory=threading.Lock)
    paid: list[tuple[uuid.UUID, int]] = field(default_factory=list)  # order id, amount
    refunded: dict[uuid.UUID, int] = field(default_factory=dict)  # acknowledged, per order
    refund_requests: list[tuple[uuid.UUID, str, int, str]] = field(default_factory=list)
    transfer_keys: list[tuple[int, str, dict[str, Any]]] = field(default_factory=list)
    redeemed: list[tuple[str, int]] = field(default_factory=list)


class Actor:
    def __init__(self, index: int, world: World, client: Client, journal: Journal) -> None:
        self.me = world.people[index % len(world.people)]
        self.world, self.client, self.journal = world, client, journal
        self.rng = client.rng

    # helpers

    def other(self) -> Person:
        others = [p for p in self.world.people if p.index != self.me.index]
        return self.rng.choice(others)

    def new_order(self, amount: int) -> uuid.UUID:
        made = self.client.call(
            "POST",
            "/api/v1/demo/shop/orders",
            json_body={"subject": "bank test", "amount": _major(amount)},
        )
        assert made.status == 201, made
        return uuid.UUID(made.body["id"])

    def ack_payment(self, order: dict[str, Any], buyer: Person, payer: Person) -> None:
        order_id = uuid.UUID(order["id"])
        amount = _minor(order["amount"]["value"])
        with self.journal.lock:
            self.journal.acked[f"pay:{order['source']}"] += 1
            if order_id in self.journal.payments:  # each order is paid by one request
                self.journal.unexpected.append(f"order {order_id} acknowledged as paid twice")
            self.journal.payments[order_id] = (amount, buyer.index, payer.id, order["source"])
        with self.world.lock:
            self.world.paid.append((order_id, amount))

    # payments

    def pay(self) -> None:
        source = self.rng.choice(["balance", "foreign_card", "foreign_card", "bank_card"])
        amount = self.rng.randint(1, 400_00 if source == "foreign_card" else 200_00)
        order_id = self.new_order(amount)
        path = f"/api/v1/orders/{order_id}/pay"
        answer: Answer | None = None
        if source != "balance" and self.rng.random() < 0.25:
            # An impatient client: it gives up waiting, then pays another way; the first
            # attempt goes on in the server and must be sent back, not kept.
            answer = self.client.once(
                "POST",
                path,
                json_body=self.body(source),
                headers=self.me.auth,
                timeout=self.rng.uniform(0.01, 0.4),
            )
            if answer is None:
                source = "balance" if source != "balance" else "foreign_card"
        if answer is None:
            answer = self.client.call(
                "POST", path, json_body=self.body(source), headers=self.me.auth
            )
        if answer.ok:
            assert answer.body["order"]["status"] == "TRADE_SUCCESS", answer
            self.ack_payment(answer.body["order"], self.me, self.me)
        else:
            self.journal.refusal("pay", answer.status, answer.body)
            with self.journal.lock:
                self.journal.refused_payments.append((order_id, self.me.id))

    def body(self, source: str, payer: Person | None = None) -> dict[str, Any]:
        payer = payer or self.me
        card = {"foreign_card": payer.card_id, "bank_card": payer.bank_card_id}.get(source)
        body: dict[str, Any] = {"source": source, "payment_password": PIN}
        if card is not None:
            body["card_id"] = str(card)
        return body

    def pay_for_me(self) -> None:
        """I ask a friend (or two at once) to pay my order through a link."""
        order_id = self.new_order(self.rng.randint(1, 300_00))
        link = self.client.call(
            "POST", f"/api/v1/orders/{order_id}/pay-for-me", headers=self.me.auth
        )
        assert link.status == 201, link
        token = str(link.body["url"]).rstrip("/").rsplit("/", 1)[1]
        others = [p for p in self.world.people if p.index != self.me.index]
        friends = self.rng.sample(others, 2 if self.rng.random() < 0.3 else 1)

        def friend_pays(friend: Person) -> None:
            source = self.rng.choice(["balance", "foreign_card", "bank_card"])
            answer = self.client_for_helper().call(
                "POST",
                f"/api/v1/pay-for-me/{token}/pay",
                json_body=self.body(source, friend),
                headers=friend.auth,
            )
            if answer.ok:
                order = answer.body["link"]["order"]
                with self.journal.lock:
                    self.journal.pay_for_me[order_id] = (self.me.id, friend.id)
                self.ack_payment(order, self.me, friend)
            else:
                self.journal.refusal("pay_for_me", answer.status, answer.body)

        self.together([lambda f=f: friend_pays(f) for f in friends])  # type: ignore[misc]

    def client_for_helper(self) -> Client:
        return Client(self.client.base_url, self.journal, random.Random(self.rng.random()))

    def together(self, work: list[Callable[[], None]]) -> None:
        if len(work) == 1:
            work[0]()
            return
        errors: list[BaseException] = []

        def run(step: Callable[[], None]) -> None:
            try:
                step()
            except BaseException as error:  # re-raised in this thread
                errors.append(error)

        threads = [threading.Thread(target=run, args=(step,)) for step in work]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]

    # refunds (by the demo shop)

    def refund(self) -> None:
        with self.world.lock:
            if not self.world.paid:
                return
            order_id, amount = self.rng.choice(self.world.paid)
            done = self.world.refunded.get(order_id, 0)
            earlier = [r for r in self.world.refund_requests if r[0] == order_id]
        roll = self.rng.random()
        if earlier and roll < 0.2:
            self.refund_reuse(self.rng.choice(earlier))
            return
        left = amount - done
        if roll < 0.45 and left > 1:
            # Two refunds raced on one order, each for more than half of what is left.
            share = left // 2 + 1
            self.together([lambda: self.one_refund(order_id, share) for _ in range(2)])
            return
        # The rest (or more, once all is refunded: refused), or a part of it.
        whole = roll < 0.7 or left <= 0
        self.one_refund(order_id, max(left, 1) if whole else self.rng.randint(1, max(1, left // 2)))

    def one_refund(self, order_id: uuid.UUID, amount: int) -> None:
        request_no = f"R{secrets.token_hex(6)}"
        destination = "balance" if self.rng.random() < 0.15 else "original"
        body = {"out_request_no": request_no, "amount": _major(amount), "destination": destination}
        answer = self.client.call(
            "POST", f"/api/v1/demo/shop/orders/{order_id}/refunds", json_body=body
        )
        if answer.ok:
            assert _minor(answer.body["amount"]["value"]) == amount, answer
            with self.journal.lock:
                self.journal.acked[f"refund:{answer.body['destination']}"] += 1
                self.journal.refunds[(order_id, request_no)] = (
                    amount,
                    uuid.UUID(answer.body["id"]),
                )
            with self.world.lock:
                self.world.refunded[order_id] = self.world.refunded.get(order_id, 0) + amount
                self.world.refund_requests.append((order_id, request_no, amount, destination))
        else:
            self.journal.refusal("refund", answer.status, answer.body)
            with self.journal.lock:
                self.journal.refused_refunds.append((order_id, request_no))

    def refund_reuse(self, earlier: tuple[uuid.UUID, str, int, str]) -> None:
        """A request number asked again: the same refund is answered again; another
        amount under it is refused."""
        order_id, request_no, amount, destination = earlier
        same = self.rng.random() < 0.4
        asked = amount if same else amount + self.rng.choice([-1, 1]) * self.rng.randint(1, 99)
        if asked <= 0:
            asked = amount + 1
        body = {"out_request_no": request_no, "amount": _major(asked), "destination": destination}
        answer = self.client.call(
            "POST", f"/api/v1/demo/shop/orders/{order_id}/refunds", json_body=body
        )
        if same:
            if not answer.ok or _minor(answer.body["amount"]["value"]) != amount:
                with self.journal.lock:
                    self.journal.unexpected.append(f"refund replay {request_no}: {answer}")
            with self.journal.lock:
                self.journal.acked["refund:replay"] += 1
            return
        code = self.journal.refusal("refund_reuse", answer.status, answer.body)
        with self.journal.lock:
            self.journal.reused_keys.append(f"{answer.status} {code}")

    # transfers between people

    def transfer(self) -> None:
        with self.world.lock:
            mine = [k for k in self.world.transfer_keys if k[0] == self.me.index]
        if mine and self.rng.random() < 0.15:
            self.transfer_reuse(self.rng.choice(mine))
            return
        to = self.other()
        key = f"bank-{uuid.UUID(int=self.rng.getrandbits(128)).hex}"
        body = {
            "to": to.phone,
            "amount": _major(self.rng.randint(1, 100_00)),
            "note": "bank test",
            "payment_password": PIN,
        }
        answer = self.client.call(
            "POST",
            "/api/v1/wallet/transfers",
            json_body=body,
            headers={**self.me.auth, "Idempotency-Key": key},
        )
        if answer.ok:
            with self.journal.lock:
                self.journal.acked["transfer"] += 1
                self.journal.transfers[(self.me.id, key)] = (
                    _minor(body["amount"]),
                    to.id,
                    uuid.UUID(answer.body["id"]),
                )
            with self.world.lock:
                self.world.transfer_keys.append((self.me.index, key, body))
        else:
            self.journal.refusal("transfer", answer.status, answer.body)

    def transfer_reuse(self, earlier: tuple[int, str, dict[str, Any]]) -> None:
        _, key, body = earlier
        same = self.rng.random() < 0.4
        asked = dict(body)
        if not same:
            asked["amount"] = _major(_minor(body["amount"]) + self.rng.randint(1, 500))
        answer = self.client.call(
            "POST",
            "/api/v1/wallet/transfers",
            json_body=asked,
            headers={**self.me.auth, "Idempotency-Key": key},
        )
        if same:
            if answer.status != 200 or not answer.body.get("replayed"):
                with self.journal.lock:
                    self.journal.unexpected.append(f"transfer replay {key}: {answer}")
            with self.journal.lock:
                self.journal.acked["transfer:replay"] += 1
            return
        code = self.journal.refusal("transfer_reuse", answer.status, answer.body)
        with self.journal.lock:
            self.journal.reused_keys.append(f"{answer.status} {code}")

    # store top-up codes

    def topup(self) -> None:
        with self.world.lock:
            roll = self.rng.random()
            taken = self.world.redeemed
            if taken and roll < 0.15:
                code, owner = self.rng.choice(taken)  # someone's (maybe my own) code again
            elif self.world.codes:
                code, owner = self.world.codes.pop(), -1
            else:
                return
        answer = self.client.call(
            "POST",
            "/api/v1/wallet/topup-codes/redemptions",
            json_body={"code": code},
            headers=self.me.auth,
        )
        if answer.ok:
            with self.journal.lock:
                self.journal.acked["topup:replay" if answer.body["replayed"] else "topup"] += 1
                earlier = self.journal.codes.setdefault(code, self.me.id)
                if earlier != self.me.id:
                    self.journal.unexpected.append(f"code {code} redeemed by two people")
            if owner == -1:
                with self.world.lock:
                    self.world.redeemed.append((code, self.me.index))
        else:
            self.journal.refusal("topup", answer.status, answer.body)
            if owner in (-1, self.me.index):
                with self.journal.lock:
                    self.journal.unexpected.append(f"my own code {code} refused: {answer}")

    OPERATIONS: tuple[tuple[str, int], ...] = (
        ("pay", 6),
        ("refund", 5),
        ("transfer", 3),
        ("topup", 1),
        ("pay_for_me", 1),
    )

    def step(self) -> None:
        names = [name for name, _ in self.OPERATIONS]
        weights = [weight for _, weight in self.OPERATIONS]
        getattr(self, self.rng.choices(names, weights)[0])()
