"""The sandbox bank: a mainland bank with a documented table of test cards
(``SANDBOX_CARDS``, listed in docs/sandbox_bank.md), each with its holder, passport
number, phone and outcome; it texts real codes through the outbox, takes quick payments
from its test accounts and gives them back, and keeps its books in a store every process
shares. It implements ``funding.bank.BankConnector``."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, ClassVar

from qianbao.clock import Clock, SystemClock
from qianbao.errors import QianbaoError
from qianbao.funding.bank import (
    DEFAULT_CODE_TTL_SECONDS,
    DEFAULT_MAX_CODE_TRIES,
    SMS_CODE_DIGITS,
    BankChallenge,
    BankCreditExceeds,
    BankInputRefused,
    BankInsufficientFunds,
    BankMovement,
    BankStateRefused,
    BankTimeout,
    BankVerificationResult,
    BookedDebit,
    CardFrozen,
    ChallengeUnknown,
    CodeExpired,
    CodeWrong,
    IdMismatch,
    IdType,
    NameMismatch,
    PhoneMismatch,
    SandboxUnknownCard,
    SendSms,
    TooManyTries,
    id_key,
    mask_phone,
    phone_key,
    require_passport,
    same_name,
    without_spaces,
)
from qianbao.funding.cards import normalize_card_number, unionpay_card
from qianbao.funding.sandbox.state import (
    MemoryStore,
    SandboxState,
    SandboxStore,
    money_from_record,
    money_record,
)
from qianbao.money import Money


class SandboxOutcome(StrEnum):
    MATCH = "match"
    NAME_MISMATCH = "name_mismatch"
    ID_MISMATCH = "id_mismatch"
    PHONE_MISMATCH = "phone_mismatch"
    CARD_FROZEN = "card_frozen"
    BANK_TIMEOUT = "bank_timeout"


@dataclass(frozen=True)
class SandboxCard:
    number: str
    holder_name: str
    passport_number: str
    reserved_phone: str
    outcome: SandboxOutcome
    # For a BIN that funding.cards does not list; otherwise the name comes from there.
    bank_name_en: str | None = None
    bank_name_zh: str | None = None


_O = SandboxOutcome

# Every number passes the Luhn check and has a real UnionPay debit BIN (623456, of the
# third, is outside the BIN table). Names and passport numbers are made up. docs/sandbox_bank.md
# lists the same table; tests/funding/test_bank.py checks that the two agree.
SANDBOX_CARDS: tuple[SandboxCard, ...] = (
    SandboxCard("6222020000000000018", "JOHN SMITH", "912345678", "+447911000001", _O.MATCH),
    SandboxCard("6225880000000027", "MARIA GARCIA", "PAA000001", "+8613800138000", _O.MATCH),
    SandboxCard(
        "6234560000000000092",
        "NGUYEN VAN AN",
        "C0000009",
        "+6591234567",
        _O.MATCH,
        bank_name_en="Sandbox Rural Commercial Bank",
        bank_name_zh="沙箱农村商业银行",
    ),
    SandboxCard(
        "6217000000000000038", "EMMA BROWN", "533000003", "+447700900003", _O.NAME_MISMATCH
    ),
    SandboxCard(
        "6228480000000000042", "LUCAS MARTIN", "15AA00004", "+447700900004", _O.ID_MISMATCH
    ),
    SandboxCard(
        "6216610000000000057", "SOFIA ROSSI", "YA0000005", "+447700900005", _O.PHONE_MISMATCH
    ),
    SandboxCard(
        "6222620000000000061", "KENJI TANAKA", "TZ0000006", "+447700900006", _O.CARD_FROZEN
    ),
    SandboxCard(
        "6210980000000000078", "ANNA MUELLER", "C00000007", "+447700900007", _O.BANK_TIMEOUT
    ),
)


@dataclass
class _Challenge:
    card: SandboxCard
    code: str
    expires_at: datetime
    wrong_tries: int = 0
    locked: bool = False


@dataclass
class SandboxBank:
    """A bank with documented test cards; see the module docstring and docs/sandbox_bank.md.

    Its codes, accounts and movements live in ``store`` (:mod:`qianbao.funding.sandbox.state`):
    memory by default, or a file every process shares, so that a code sent by one web
    worker is checked by another and a debit made before a crash is found after it."""

    send_sms: SendSms
    clock: Clock = field(default_factory=SystemClock)
    code_ttl_seconds: int = DEFAULT_CODE_TTL_SECONDS
    max_code_tries: int = DEFAULT_MAX_CODE_TRIES
    cards: tuple[SandboxCard, ...] = SANDBOX_CARDS
    store: SandboxStore = field(default_factory=MemoryStore, repr=False)

    def start_verification(
        self,
        card_number: str,
        holder_name: str,
        id_type: IdType,
        id_number: str,
        reserved_phone_e164: str,
    ) -> BankChallenge:
        require_passport(id_type)
        unionpay_card(card_number)  # a malformed or credit card is refused before the bank
        card = self._card(normalize_card_number(card_number))
        self._check_four_elements(card, holder_name, id_number, reserved_phone_e164)
        code = f"{secrets.randbelow(10**SMS_CODE_DIGITS):0{SMS_CODE_DIGITS}d}"
        reference = "sbx_" + secrets.token_urlsafe(16)
        expires_at = self.clock.now() + timedelta(seconds=self.code_ttl_seconds)
        with self.store.transaction() as state:
            self._save_challenge(state, reference, _Challenge(card, code, expires_at))
        # The bank texts its reserved number, not the number typed (they match here).
        self.send_sms(card.reserved_phone, code)
        return BankChallenge(reference, mask_phone(card.reserved_phone), expires_at)

    def confirm(self, reference: str, sms_code: str) -> BankVerificationResult:
        refusal: QianbaoError | None = None
        with self.store.transaction() as state:
            challenge = self._challenge(state, reference)
            if challenge is None:
                raise ChallengeUnknown()
            if challenge.locked:
                raise TooManyTries()
            expired = self.clock.now() >= challenge.expires_at
            right = hmac.compare_digest(without_spaces(sms_code).encode(), challenge.code.encode())
            if expired:
                refusal = CodeExpired()
            elif not right:
                refusal = self._count_wrong_try(challenge)
            # A code works once, and an expired one is forgotten; a wrong try is counted.
            self._save_challenge(state, reference, challenge, used=expired or right)
        if refusal is not None:
            raise refusal  # after the commit: the wrong try stays counted
        return _sandbox_result(challenge.card)

    # Each test card's account starts with this much (CNY): enough to try payments.
    SANDBOX_ACCOUNT_OPENING: ClassVar[Money] = Money.of("CNY", 50_000)

    def debit(self, card_token: str, amount: Money, *, idempotency_key: str) -> BankMovement:
        with self.store.transaction() as state:
            done = state.get("movement", idempotency_key)
            if done is not None:
                return _movement(done)
            card = self._card_of_token(card_token)
            if card.outcome is SandboxOutcome.CARD_FROZEN:
                raise CardFrozen()
            balance = self._balance(state, card_token)
            if amount.minor <= 0 or balance.minor < amount.minor:
                raise BankInsufficientFunds()
            state.put("account", card_token, money_record(balance - amount))
            movement = BankMovement("dbt_sbx_" + secrets.token_hex(8), amount)
            state.put("movement", idempotency_key, _movement_json(movement))
            state.put(
                "debit",
                movement.id,
                {"token": card_token, "taken": money_record(amount), "given_back": 0},
            )
            return movement

    def credit(self, debit_id: str, amount: Money, *, idempotency_key: str) -> BankMovement:
        with self.store.transaction() as state:
            done = state.get("movement", idempotency_key)
            if done is not None:
                return _movement(done)
            debit = state.get("debit", debit_id)
            if debit is None:
                raise ChallengeUnknown()
            taken, given_back = money_from_record(debit["taken"]), int(debit["given_back"])
            if amount.minor <= 0 or given_back + amount.minor > taken.minor:
                raise BankCreditExceeds()
            state.put("debit", debit_id, {**debit, "given_back": given_back + amount.minor})
            token = str(debit["token"])
            state.put("account", token, money_record(self._balance(state, token) + amount))
            movement = BankMovement("crd_sbx_" + secrets.token_hex(8), amount)
            state.put("movement", idempotency_key, _movement_json(movement))
            return movement

    def statement(self) -> list[BookedDebit]:
        """Every debit, with its key and what was given back: the sandbox's statement,
        for reconciliation."""
        with self.store.transaction() as state:
            booked: list[BookedDebit] = []
            for key, movement in state.items("movement"):
                debit = state.get("debit", str(movement["id"]))
                if debit is None:
                    continue  # a credit: counted in its debit's given_back
                taken = money_from_record(debit["taken"])
                given_back = Money(taken.currency, int(debit["given_back"]))
                booked.append(BookedDebit(key, str(movement["id"]), taken, given_back))
        return booked

    def find_debit(self, idempotency_key: str) -> BankMovement | None:
        """The movement made under a key, if any (asks without making one)."""
        with self.store.transaction() as state:
            done = state.get("movement", idempotency_key)
        return None if done is None else _movement(done)

    def _balance(self, state: SandboxState, card_token: str) -> Money:
        found = state.get("account", card_token)
        return self.SANDBOX_ACCOUNT_OPENING if found is None else money_from_record(found)

    def _challenge(self, state: SandboxState, reference: str) -> _Challenge | None:
        found = state.get("challenge", reference)
        if found is None or found.get("used"):
            return None
        return _Challenge(
            self._card(str(found["card"])),
            str(found["code"]),
            datetime.fromisoformat(found["expires_at"]),
            int(found["wrong_tries"]),
            bool(found["locked"]),
        )

    @staticmethod
    def _save_challenge(
        state: SandboxState, reference: str, challenge: _Challenge, *, used: bool = False
    ) -> None:
        state.put(
            "challenge",
            reference,
            {
                "card": challenge.card.number,
                "code": challenge.code,
                "expires_at": challenge.expires_at.isoformat(),
                "wrong_tries": challenge.wrong_tries,
                "locked": challenge.locked,
                "used": used,
            },
        )

    def _card_of_token(self, card_token: str) -> SandboxCard:
        for card in self.cards:
            if _sandbox_result(card).card_token_from_bank == card_token:
                return card
        raise SandboxUnknownCard()

    def _card(self, number: str) -> SandboxCard:
        for card in self.cards:
            if card.number == number:
                return card
        raise SandboxUnknownCard()

    @staticmethod
    def _check_four_elements(
        card: SandboxCard, holder_name: str, id_number: str, phone: str
    ) -> None:
        # In the order a bank answers: the card's state first, then each element.
        if card.outcome is SandboxOutcome.CARD_FROZEN:
            raise CardFrozen()
        if card.outcome is SandboxOutcome.BANK_TIMEOUT:
            raise BankTimeout()
        if card.outcome is SandboxOutcome.NAME_MISMATCH or not same_name(
            holder_name, card.holder_name
        ):
            raise NameMismatch()
        if card.outcome is SandboxOutcome.ID_MISMATCH or id_key(id_number) != id_key(
            card.passport_number
        ):
            raise IdMismatch()
        if card.outcome is SandboxOutcome.PHONE_MISMATCH or phone_key(phone) != phone_key(
            card.reserved_phone
        ):
            raise PhoneMismatch()

    def _count_wrong_try(self, challenge: _Challenge) -> BankInputRefused | BankStateRefused:
        challenge.wrong_tries += 1
        tries_left = self.max_code_tries - challenge.wrong_tries
        if tries_left <= 0:
            # Locked rather than forgotten: the right code must not work after this either.
            challenge.locked = True
            return TooManyTries()
        return CodeWrong({"tries_left": tries_left})


def _movement_json(movement: BankMovement) -> dict[str, Any]:
    return {"id": movement.id, "amount": money_record(movement.amount)}


def _movement(value: dict[str, Any]) -> BankMovement:
    return BankMovement(str(value["id"]), money_from_record(value["amount"]))


def _sandbox_result(card: SandboxCard) -> BankVerificationResult:
    known = unionpay_card(card.number)
    # Like a bank's agreement number for the card: stable per card, not the number.
    token = "sbx_" + hashlib.sha256(b"sandbox-card:" + card.number.encode()).hexdigest()[:24]
    return BankVerificationResult(
        bank_name=card.bank_name_en or known.bank_name_en,
        last4=known.last4,
        card_token_from_bank=token,
        bank_name_zh=card.bank_name_zh or known.bank_name_zh,
    )
