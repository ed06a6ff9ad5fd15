"""The sandbox card network: a network that knows only the documented test cards
(``SANDBOX_CARDS``, listed in docs/sandbox_card_network.md), each with a fixed outcome,
and keeps its tokens, authorizations, captures and refunds in a store every process
shares. It implements ``funding.card_network.CardNetwork``."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any
from urllib.parse import urlencode

from qianbao.clock import Clock
from qianbao.errors import QianbaoError
from qianbao.funding.card_network import (
    AUTHORIZATION_TTL,
    CHALLENGE_TTL,
    SANDBOX_CHALLENGE_ANSWER,
    WALLET_CURRENCY,
    Authorization,
    AuthorizationExpired,
    AuthorizationStatus,
    AuthorizationUnknown,
    BookedAuthorization,
    Brand,
    Capture,
    CaptureExceedsAuthorization,
    CaptureUnknown,
    CardDeclined,
    CardExpired,
    CardExpiredAtIssuer,
    CardToken,
    ChallengeExpired,
    ChallengeFailed,
    ChallengeNotOpen,
    Expiry,
    HolderNameMissing,
    IdempotencyKeyReused,
    InsufficientFunds,
    IssuerRefusedLink,
    NotCapturable,
    NotVoidable,
    Refund,
    RefundExceedsCapture,
    SandboxUnknownCard,
    TokenUnknown,
    check_card,
    to_card_currency,
)
from qianbao.funding.sandbox.state import (
    MemoryStore,
    SandboxState,
    SandboxStore,
    money_from_record,
    money_record,
)
from qianbao.money import MINOR_DIGITS, Money


class SandboxOutcome(StrEnum):
    APPROVE = "approve"
    DECLINE = "decline"
    INSUFFICIENT_FUNDS = "insufficient_funds"
    EXPIRED_AT_ISSUER = "expired_at_issuer"
    CHALLENGE = "challenge"
    ISSUER_REFUSES_LINK = "issuer_refuses_link"


@dataclass(frozen=True)
class SandboxCard:
    number: str
    brand: Brand
    issuer_country: str
    currency: str
    outcome: SandboxOutcome


_O = SandboxOutcome

# Luhn-valid numbers made up for the sandbox: after the brand prefix come the issuer
# country's ISO 3166 numeric code (840 US, 276 DE, 410 KR, 826 GB, 392 JP, 344 HK) and
# the outcome (1 approve, 2 decline, 3 insufficient funds, 4 expired, 5 challenge,
# 6 refused link), then the check digit. docs/sandbox_card_network.md lists the same
# table; tests/funding/test_card_network.py checks that they agree.
SANDBOX_CARDS: tuple[SandboxCard, ...] = (
    SandboxCard("4000000000840019", Brand.VISA, "US", "USD", _O.APPROVE),
    SandboxCard("5555550000276016", Brand.MASTERCARD, "DE", "EUR", _O.APPROVE),
    SandboxCard("2221000000410018", Brand.MASTERCARD, "KR", "KRW", _O.APPROVE),
    SandboxCard("370000000826018", Brand.AMEX, "GB", "GBP", _O.APPROVE),
    SandboxCard("3530000000392012", Brand.JCB, "JP", "JPY", _O.APPROVE),
    SandboxCard("36000000344018", Brand.DINERS, "HK", "HKD", _O.APPROVE),
    SandboxCard("6011000000840011", Brand.DISCOVER, "US", "USD", _O.APPROVE),
    SandboxCard("4000000000840027", Brand.VISA, "US", "USD", _O.DECLINE),
    SandboxCard("5200000000826039", Brand.MASTERCARD, "GB", "GBP", _O.INSUFFICIENT_FUNDS),
    SandboxCard("4000000000840043", Brand.VISA, "US", "USD", _O.EXPIRED_AT_ISSUER),
    SandboxCard("5400000000276050", Brand.MASTERCARD, "DE", "EUR", _O.CHALLENGE),
    SandboxCard("4000000000840068", Brand.VISA, "US", "USD", _O.ISSUER_REFUSES_LINK),
)

# CFETS central parity rates of 1 September 2025 (Xinhua: "central parity rates of the
# Chinese currency renminbi ... against 25 major currencies"), CNY per unit. A stand-in
# for a network's daily rate, good enough for a sandbox and a demo; settings override it.
DEFAULT_SANDBOX_RATES: Mapping[str, Decimal] = {
    "USD": Decimal("7.1072"),
    "EUR": Decimal("8.3129"),
    "GBP": Decimal("9.6061"),
    "JPY": Decimal("0.04834"),
    "HKD": Decimal("0.91174"),
    "KRW": Decimal("0.0051201"),  # published as 19,531 KRW per 100 CNY
}

_TOKEN = re.compile(r"tok_sbx_([0-9a-f]{16})_([0-9]{4})([0-9]{2})")


def _card_key(number: str) -> str:
    # The numbers are public test data; the hash only keeps them out of tokens and logs.
    return hashlib.sha256(b"qianbao.sandbox-card:" + number.encode()).hexdigest()[:16]


@dataclass
class _AuthorizationRecord:
    snapshot: Authorization
    card: SandboxCard
    expires_at: datetime  # of the challenge while one is open, else of the approval


@dataclass
class _CaptureRecord:
    snapshot: Capture
    currency: str
    refunded: Money


# What an idempotency key stands for: the card and the amount. The 3-D Secure return URL
# is not part of it: asking again after the check (to learn the outcome) sends none.
_Request = tuple[str, Money]


class SandboxCardNetwork:
    """A card network that knows only the documented test cards; see the module docstring.

    ``rates`` maps each card currency to CNY per unit (from settings). ``set_rates``
    changes them from a given day on; every conversion uses the table of its day (the
    UTC date of the clock). ``store`` keeps the network's records
    (:mod:`qianbao.funding.sandbox.state`): in memory by default, or in a file that every
    process on the machine shares.
    """

    def __init__(
        self,
        clock: Clock,
        rates: Mapping[str, Decimal] = DEFAULT_SANDBOX_RATES,
        *,
        cards: tuple[SandboxCard, ...] = SANDBOX_CARDS,
        challenge_base_url: str = "/sandbox/3ds",
        store: SandboxStore | None = None,
    ) -> None:
        self._clock = clock
        self._cards = {_card_key(card.number): card for card in cards}
        self._challenge_base_url = challenge_base_url.rstrip("/")
        self._store: SandboxStore = store if store is not None else MemoryStore()
        self._rates_lock = threading.Lock()
        # (first day, table), in order of first day; the first one covers all the past.
        self._rate_tables: list[tuple[date, dict[str, Decimal]]] = [
            (date.min, self._checked_rates(rates))
        ]

    # --- rates ---

    def set_rates(self, rates: Mapping[str, Decimal], *, effective: date | None = None) -> None:
        """Use ``rates`` from ``effective`` (default: today) on, as a network's next table."""
        table = self._checked_rates(rates)
        first_day = effective or self._today()
        with self._rates_lock:
            kept = [(day, old) for day, old in self._rate_tables if day < first_day]
            self._rate_tables = [*kept, (first_day, table)]

    def rate_on(self, currency: str, day: date) -> Decimal:
        """CNY per unit of ``currency`` on ``day``; there is no rate for a future day."""
        if day > self._today():
            raise ValueError(f"no exchange rate is known yet for {day.isoformat()}")
        return self._table_on(day)[currency]

    def _checked_rates(self, rates: Mapping[str, Decimal]) -> dict[str, Decimal]:
        table = {currency: Decimal(str(rate)) for currency, rate in rates.items()}
        needed = {card.currency for card in self._cards.values()}
        missing = sorted(needed - table.keys())
        if missing:
            raise ValueError(f"the sandbox card network needs a CNY rate for {missing}")
        if any(rate <= 0 or not rate.is_finite() for rate in table.values()):
            raise ValueError("exchange rates are positive numbers")
        unknown = sorted(set(table) - set(MINOR_DIGITS))
        if unknown:
            raise ValueError(f"unsupported currencies in the rate table: {unknown}")
        return table

    def _table_on(self, day: date) -> dict[str, Decimal]:
        with self._rates_lock:  # the first table starts at date.min, so one always matches
            return next(table for first, table in reversed(self._rate_tables) if first <= day)

    def _today(self) -> date:
        return self._clock.now().date()

    # --- linking a card ---

    def tokenize(
        self, number: str, expiry_month: int, expiry_year: int, cvv: str, holder_name: str
    ) -> CardToken:
        checked = check_card(number, expiry_month, expiry_year, cvv, today=self._today())
        if not holder_name.strip():
            raise HolderNameMissing()
        card = self._cards.get(_card_key(checked.digits))
        if card is None:
            raise SandboxUnknownCard()
        if card.outcome is SandboxOutcome.ISSUER_REFUSES_LINK:
            raise IssuerRefusedLink()
        expiry = checked.expiry
        # Stateless: the token names the card and the expiry, so it outlives the process.
        token = f"tok_sbx_{_card_key(card.number)}_{expiry.year:04d}{expiry.month:02d}"
        return CardToken(
            token, card.brand, checked.last4, expiry, card.issuer_country, card.currency
        )

    def _card_of_token(self, token: str) -> tuple[SandboxCard, Expiry]:
        found = _TOKEN.fullmatch(token)
        card = self._cards.get(found.group(1)) if found else None
        if found is None or card is None:
            raise TokenUnknown()
        return card, Expiry(int(found.group(2)), int(found.group(3)))

    # --- authorizing ---

    def authorize(
        self,
        token: str,
        amount: Money,
        *,
        idempotency_key: str,
        three_ds_return_url: str | None = None,
    ) -> Authorization:
        if amount.currency != WALLET_CURRENCY or amount.minor <= 0:
            raise ValueError("authorize a positive amount in CNY")
        if not idempotency_key:
            raise ValueError("authorize needs an idempotency key")
        return self._keyed(
            idempotency_key,
            (token, amount),
            lambda: self._new_authorization(token, amount, three_ds_return_url),
        )

    def verify_card(
        self, token: str, *, idempotency_key: str, three_ds_return_url: str | None = None
    ) -> Authorization:
        if not idempotency_key:
            raise ValueError("verify_card needs an idempotency key")
        return self._keyed(
            idempotency_key,
            (token, Money(WALLET_CURRENCY, 0)),
            lambda: self._new_verification(token, three_ds_return_url),
        )

    def find_authorization(self, idempotency_key: str) -> Authorization | None:
        with self._store.transaction() as state:
            records = _Records(state, self)
            earlier = records.keyed(idempotency_key)
            if earlier is None or isinstance(earlier[1], QianbaoError):
                return None
            return records.current(records.authorization(earlier[1])).snapshot

    def find_refund(self, idempotency_key: str) -> Refund | None:
        with self._store.transaction() as state:
            return _Records(state, self).refund_by_key(idempotency_key)

    def _keyed(
        self, key: str, request: _Request, make: Callable[[], _AuthorizationRecord]
    ) -> Authorization:
        """The authorization a key stands for: the first answer again (a refusal too, as
        a real network remembers it, instead of a second attempt on the card), or a new
        one made by ``make``."""
        with self._store.transaction() as state:
            records = _Records(state, self)
            earlier = records.keyed(key)
            if earlier is not None:
                if earlier[0] != request:
                    raise IdempotencyKeyReused()
                if isinstance(earlier[1], QianbaoError):
                    raise earlier[1]
                return records.current(records.authorization(earlier[1])).snapshot
            try:
                record = make()
            except QianbaoError as refusal:
                records.remember(key, request, refusal)
                outcome: Authorization | QianbaoError = refusal
            else:
                records.remember(key, request, record.snapshot.id)
                records.save_authorization(record)
                outcome = record.snapshot
        if isinstance(outcome, QianbaoError):
            raise outcome  # after the commit: the refusal is remembered
        return outcome

    def _new_verification(
        self, token: str, three_ds_return_url: str | None
    ) -> _AuthorizationRecord:
        card, expiry = self._card_of_token(token)
        now = self._clock.now()
        if expiry.has_passed(now.date()):
            raise CardExpired({"expiry": str(expiry)})
        # Declines, funds and issuer-side expiry concern payments: the test cards for
        # them link, so that each outcome can be met at the cashier.
        rate = self._table_on(now.date())[card.currency]
        verification = Authorization(
            id="auth_sbx_" + secrets.token_urlsafe(12),
            status=AuthorizationStatus.APPROVED,
            amount=Money(WALLET_CURRENCY, 0),
            amount_in_card_currency=Money(card.currency, 0),
            rate=rate,
            rate_date=now.date(),
        )
        return self._challenged(verification, card, three_ds_return_url)

    def _new_authorization(
        self, token: str, amount: Money, three_ds_return_url: str | None
    ) -> _AuthorizationRecord:
        card, expiry = self._card_of_token(token)
        now = self._clock.now()
        if expiry.has_passed(now.date()):
            raise CardExpired({"expiry": str(expiry)})
        _refuse_by_outcome(card.outcome)
        rate_date = now.date()
        rate = self._table_on(rate_date)[card.currency]
        authorization = Authorization(
            id="auth_sbx_" + secrets.token_urlsafe(12),
            status=AuthorizationStatus.APPROVED,
            amount=amount,
            amount_in_card_currency=to_card_currency(amount, card.currency, rate),
            rate=rate,
            rate_date=rate_date,
        )
        return self._challenged(authorization, card, three_ds_return_url)

    def _challenged(
        self, authorization: Authorization, card: SandboxCard, return_url: str | None
    ) -> _AuthorizationRecord:
        """The record: waiting for 3-D Secure for the challenge card, else approved."""
        now = self._clock.now()
        if card.outcome is not SandboxOutcome.CHALLENGE:
            return _AuthorizationRecord(authorization, card, now + AUTHORIZATION_TTL)
        url = f"{self._challenge_base_url}/{authorization.id}"
        if return_url:
            url = f"{url}?{urlencode({'return_to': return_url})}"
        waiting = replace(
            authorization, status=AuthorizationStatus.CHALLENGE_REQUIRED, challenge_url=url
        )
        return _AuthorizationRecord(waiting, card, now + CHALLENGE_TTL)

    # --- 3-D Secure ---

    def complete_challenge(self, authorization_id: str, answer: str) -> Authorization:
        with self._store.transaction() as state:
            records = _Records(state, self)
            record = records.current(records.authorization(authorization_id))
            if record.snapshot.status is not AuthorizationStatus.CHALLENGE_REQUIRED:
                raise ChallengeNotOpen()
            now = self._clock.now()
            typed = unicodedata.normalize("NFKC", answer).strip()
            failure: QianbaoError | None = None
            if now >= record.expires_at:
                failure = ChallengeExpired()
            elif not hmac.compare_digest(typed.encode(), SANDBOX_CHALLENGE_ANSWER.encode()):
                # One answer only, as an issuer's one-time code: a failed payment starts over.
                failure = ChallengeFailed()
            if failure is not None:
                _set_status(record, AuthorizationStatus.FAILED)
            else:
                record.expires_at = now + AUTHORIZATION_TTL
                _set_status(record, AuthorizationStatus.APPROVED, challenge_url=None)
            records.save_authorization(record)
        if failure is not None:
            raise failure  # after the commit: the failed check stays failed
        return record.snapshot

    # --- capture, void, refund ---

    def capture(self, authorization_id: str, amount: Money | None = None) -> Capture:
        with self._store.transaction() as state:
            records = _Records(state, self)
            record = records.current(records.authorization(authorization_id))
            status = record.snapshot.status
            if status is AuthorizationStatus.CAPTURED:
                return _repeated_capture(records.capture_of(authorization_id), amount)
            if status is AuthorizationStatus.EXPIRED:
                raise AuthorizationExpired()
            if status is not AuthorizationStatus.APPROVED or not record.snapshot.amount.minor:
                raise NotCapturable()  # (a card verification has nothing to capture)
            authorized = record.snapshot.amount
            taken = authorized if amount is None else amount
            if taken.currency != WALLET_CURRENCY or taken.minor <= 0:
                raise ValueError("capture a positive amount in CNY")
            if taken > authorized:
                raise CaptureExceedsAuthorization({"authorized": authorized.format()})
            rate = record.snapshot.rate
            capture = Capture(
                id="cap_sbx_" + secrets.token_urlsafe(12),
                authorization_id=authorization_id,
                amount=taken,
                amount_in_card_currency=to_card_currency(taken, record.card.currency, rate),
                rate=rate,
            )
            records.save_capture(
                _CaptureRecord(capture, record.card.currency, Money(WALLET_CURRENCY, 0))
            )
            _set_status(record, AuthorizationStatus.CAPTURED)
            records.save_authorization(record)
            return capture

    def void(self, authorization_id: str) -> Authorization:
        with self._store.transaction() as state:
            records = _Records(state, self)
            record = records.current(records.authorization(authorization_id))
            voidable = (AuthorizationStatus.APPROVED, AuthorizationStatus.CHALLENGE_REQUIRED)
            if record.snapshot.status not in voidable:
                raise NotVoidable()
            _set_status(record, AuthorizationStatus.VOIDED, challenge_url=None)
            records.save_authorization(record)
            return record.snapshot

    def refund(
        self,
        capture_id: str,
        amount: Money,
        *,
        rate_date: date,
        idempotency_key: str | None = None,
    ) -> Refund:
        if amount.currency != WALLET_CURRENCY or amount.minor <= 0:
            raise ValueError("refund a positive amount in CNY")
        if rate_date > self._today():
            raise ValueError(f"no exchange rate is known yet for {rate_date.isoformat()}")
        with self._store.transaction() as state:
            records = _Records(state, self)
            if idempotency_key is not None:
                earlier = records.refund_by_key(idempotency_key)
                if earlier is not None:
                    if (earlier.capture_id, earlier.amount) != (capture_id, amount):
                        raise IdempotencyKeyReused()
                    return earlier
            refund = self._new_refund(records, capture_id, amount, rate_date)
            if idempotency_key is not None:
                records.save_refund_by_key(idempotency_key, refund)
            return refund

    def books(self) -> list[BookedAuthorization]:
        """Every authorization made under a key (refusals left out), with its capture
        and what went back: the sandbox's settlement report, for reconciliation."""
        booked: list[BookedAuthorization] = []
        with self._store.transaction() as state:
            records = _Records(state, self)
            for key, found in state.items("request"):
                if "authorization" not in found:
                    continue  # a refusal: nothing was authorized
                record = records.current(records.authorization(str(found["authorization"])))
                capture = records.capture_of(record.snapshot.id)
                nothing = Money(WALLET_CURRENCY, 0)
                booked.append(
                    BookedAuthorization(
                        key=key,
                        authorization=record.snapshot,
                        capture_id=None if capture is None else capture.snapshot.id,
                        captured=nothing if capture is None else capture.snapshot.amount,
                        refunded=nothing if capture is None else capture.refunded,
                    )
                )
        return booked

    def refunded(self, capture_id: str) -> Money:
        """How much of a capture has gone back to the card (the network's own count, as a
        settlement report gives it: for reconciliation and tests)."""
        with self._store.transaction() as state:
            captured = _Records(state, self).capture(capture_id)
        if captured is None:
            raise CaptureUnknown()
        return captured.refunded

    def _new_refund(
        self, records: _Records, capture_id: str, amount: Money, rate_date: date
    ) -> Refund:
        captured = records.capture(capture_id)
        if captured is None:
            raise CaptureUnknown()
        remaining = captured.snapshot.amount - captured.refunded
        if amount > remaining:
            raise RefundExceedsCapture({"remaining": remaining.format()})
        rate = self._table_on(rate_date)[captured.currency]
        captured.refunded += amount
        records.save_capture(captured)
        return Refund(
            id="rf_sbx_" + secrets.token_urlsafe(12),
            capture_id=capture_id,
            amount=amount,
            amount_in_card_currency=to_card_currency(amount, captured.currency, rate),
            rate=rate,
            rate_date=rate_date,
        )


def _set_status(record: _AuthorizationRecord, status: AuthorizationStatus, **changes: Any) -> None:
    record.snapshot = replace(record.snapshot, status=status, **changes)


def _repeated_capture(found: _CaptureRecord | None, amount: Money | None) -> Capture:
    """Asking again for what was captured returns that capture; another amount is not."""
    if found is None or (amount is not None and amount != found.snapshot.amount):
        raise NotCapturable()
    return found.snapshot


class _Records:
    """The sandbox's records in one store transaction, as JSON and back."""

    def __init__(self, state: SandboxState, network: SandboxCardNetwork) -> None:
        self._state = state
        self._network = network

    # idempotency keys: the request and its outcome (an authorization id or a refusal)

    def keyed(self, key: str) -> tuple[_Request, str | QianbaoError] | None:
        found = self._state.get("request", key)
        if found is None:
            return None
        request = (str(found["token"]), money_from_record(found["amount"]))
        if "refusal" in found:
            refusal_class, params = _REFUSALS[found["refusal"]], found.get("params")
            return request, refusal_class(params) if params else refusal_class()
        return request, str(found["authorization"])

    def remember(self, key: str, request: _Request, outcome: str | QianbaoError) -> None:
        value: dict[str, Any] = {"token": request[0], "amount": money_record(request[1])}
        if isinstance(outcome, QianbaoError):
            value |= {"refusal": type(outcome).__name__, "params": outcome.params}
        else:
            value["authorization"] = outcome
        self._state.put("request", key, value)

    # authorizations

    def authorization(self, authorization_id: str) -> _AuthorizationRecord:
        found = self._state.get("authorization", authorization_id)
        if found is None:
            raise AuthorizationUnknown()
        snapshot = Authorization(
            id=authorization_id,
            status=AuthorizationStatus(found["status"]),
            amount=money_from_record(found["amount"]),
            amount_in_card_currency=money_from_record(found["amount_in_card_currency"]),
            rate=Decimal(found["rate"]),
            rate_date=date.fromisoformat(found["rate_date"]),
            challenge_url=found.get("challenge_url"),
        )
        card = self._network._cards[found["card"]]
        return _AuthorizationRecord(snapshot, card, datetime.fromisoformat(found["expires_at"]))

    def save_authorization(self, record: _AuthorizationRecord) -> None:
        snapshot = record.snapshot
        self._state.put(
            "authorization",
            snapshot.id,
            {
                "status": snapshot.status.value,
                "amount": money_record(snapshot.amount),
                "amount_in_card_currency": money_record(snapshot.amount_in_card_currency),
                "rate": str(snapshot.rate),
                "rate_date": snapshot.rate_date.isoformat(),
                "challenge_url": snapshot.challenge_url,
                "card": _card_key(record.card.number),
                "expires_at": record.expires_at.isoformat(),
            },
        )

    def current(self, record: _AuthorizationRecord) -> _AuthorizationRecord:
        """The record, with an approval past its time marked expired."""
        if (
            record.snapshot.status is AuthorizationStatus.APPROVED
            and self._network._clock.now() >= record.expires_at
        ):
            _set_status(record, AuthorizationStatus.EXPIRED)
            self.save_authorization(record)
        return record

    # captures

    def capture(self, capture_id: str) -> _CaptureRecord | None:
        found = self._state.get("capture", capture_id)
        if found is None:
            return None
        snapshot = Capture(
            id=capture_id,
            authorization_id=found["authorization_id"],
            amount=money_from_record(found["amount"]),
            amount_in_card_currency=money_from_record(found["amount_in_card_currency"]),
            rate=Decimal(found["rate"]),
        )
        return _CaptureRecord(snapshot, found["currency"], money_from_record(found["refunded"]))

    def capture_of(self, authorization_id: str) -> _CaptureRecord | None:
        found = self._state.get("capture_of", authorization_id)
        return None if found is None else self.capture(found["capture"])

    def save_capture(self, record: _CaptureRecord) -> None:
        snapshot = record.snapshot
        self._state.put(
            "capture",
            snapshot.id,
            {
                "authorization_id": snapshot.authorization_id,
                "amount": money_record(snapshot.amount),
                "amount_in_card_currency": money_record(snapshot.amount_in_card_currency),
                "rate": str(snapshot.rate),
                "currency": record.currency,
                "refunded": money_record(record.refunded),
            },
        )
        self._state.put("capture_of", snapshot.authorization_id, {"capture": snapshot.id})

    # refunds asked with an idempotency key

    def refund_by_key(self, key: str) -> Refund | None:
        found = self._state.get("refund", key)
        if found is None:
            return None
        return Refund(
            id=found["id"],
            capture_id=found["capture_id"],
            amount=money_from_record(found["amount"]),
            amount_in_card_currency=money_from_record(found["amount_in_card_currency"]),
            rate=Decimal(found["rate"]),
            rate_date=date.fromisoformat(found["rate_date"]),
        )

    def save_refund_by_key(self, key: str, refund: Refund) -> None:
        self._state.put(
            "refund",
            key,
            {
                "id": refund.id,
                "capture_id": refund.capture_id,
                "amount": money_record(refund.amount),
                "amount_in_card_currency": money_record(refund.amount_in_card_currency),
                "rate": str(refund.rate),
                "rate_date": refund.rate_date.isoformat(),
            },
        )


def _refuse_by_outcome(outcome: SandboxOutcome) -> None:
    if outcome is SandboxOutcome.DECLINE:
        raise CardDeclined()
    if outcome is SandboxOutcome.INSUFFICIENT_FUNDS:
        raise InsufficientFunds()
    if outcome is SandboxOutcome.EXPIRED_AT_ISSUER:
        raise CardExpiredAtIssuer()


# The refusals a remembered idempotency key can replay, by class name.
_REFUSALS: dict[str, Callable[..., QianbaoError]] = {
    refusal.__name__: refusal
    for refusal in (
        CardDeclined,
        InsufficientFunds,
        CardExpiredAtIssuer,
        CardExpired,
        TokenUnknown,
    )
}
