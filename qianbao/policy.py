"""THE table of what each verification level may do, and its limits.

Every other module asks here; nothing else decides. A person's *tier* follows from how
they are verified:

- ``unverified``: no real-name verification. Pays merchants by foreign card within a
  yearly cap; cannot pay from balance, send or receive transfers; money that reaches the
  balance (a refund) is held, visible, and released on verification.
- ``class_ii``: one way of verifying: passport and face, passport chip and face, or a
  mainland bank card alone.
- ``class_iii``: a passport (either way) plus a mainland bank card.

Sources (shared/reference/alipay_rules.md):

- PBOC Announcement [2015] No. 43, *Administrative Measures for Online Payment Business
  of Non-bank Payment Institutions* (in force 1 Jul 2016), Art. 11: Class I accounts
  CNY 1,000 in total since opening; Class II CNY 100,000 a year; Class III CNY 200,000
  a year (and only Class III may buy investment products). Art. 24: with two factors but
  no digital certificate, at most CNY 5,000 a day.
- Alipay since 1 Jul 2016: without real-name verification no transfers, no receiving or
  saving money, no paying with balance; the balance is kept and usable after
  verification.
- Alipay for foreign cards since March 2024: without ID, USD 2,000 a year; verified,
  USD 5,000 a payment and USD 50,000 a year.
- Alipay's notice of December 2016 (People's Daily, 2 Dec 2016): at most 100 transfers a
  day; to another Alipay account, verified accounts CNY 20,000 a transfer and CNY 20,000
  a day. Transfers come from the balance, so ``balance_per_day`` and ``balance_per_year``
  count them with payments (PBOC No. 43 caps "consumption and transfer" together).

Operators override any number or switch with ``QIANBAO_POLICY_OVERRIDES``, a JSON object
``{"class_ii": {"balance_per_year": "150000 CNY", "send_transfers": false}}``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from qianbao.i18n import N_, translate
from qianbao.money import Money
from qianbao.settings import Settings

Tier = Literal["unverified", "class_ii", "class_iii"]
TIERS: Final[tuple[Tier, ...]] = ("unverified", "class_ii", "class_iii")
PASSPORT_LEVELS: Final = frozenset({"passport_face", "passport_chip"})


@dataclass(frozen=True)
class Rights:
    use_balance: bool  # pay merchants from the balance
    send_transfers: bool
    receive_transfers: bool
    hold_incoming: bool  # money that arrives is held until verification
    wealth_products: bool
    # May open a Tour Pass (prepaid, topped up by foreign card); a passport is needed
    # too, which the tier alone does not say: ask ``may_open_tour_pass``.
    tour_pass: bool
    card_per_payment: Money | None  # foreign card, per payment (None: only the year cap)
    card_per_year: Money  # foreign card payments in a calendar year
    balance_per_year: Money | None  # payments and transfers from the balance, a year
    balance_per_day: Money | None  # the same, a day
    transfer_per_payment: Money | None  # one transfer to another person
    transfer_per_day: Money | None  # transfers to other people, a calendar day in Beijing
    transfers_per_day: int | None  # how many transfers, a day


DEFAULT_RIGHTS: Final[dict[Tier, Rights]] = {
    "unverified": Rights(
        use_balance=False,
        send_transfers=False,
        receive_transfers=False,
        hold_incoming=True,
        wealth_products=False,
        tour_pass=False,
        card_per_payment=None,
        card_per_year=Money.of("USD", 2_000),
        balance_per_year=None,
        balance_per_day=None,
        transfer_per_payment=None,
        transfer_per_day=None,
        transfers_per_day=None,
    ),
    "class_ii": Rights(
        use_balance=True,
        send_transfers=True,
        receive_transfers=True,
        hold_incoming=False,
        wealth_products=False,
        tour_pass=True,
        card_per_payment=Money.of("USD", 5_000),
        card_per_year=Money.of("USD", 50_000),
        balance_per_year=Money.of("CNY", 100_000),
        balance_per_day=Money.of("CNY", 5_000),
        transfer_per_payment=Money.of("CNY", 20_000),
        transfer_per_day=Money.of("CNY", 20_000),
        transfers_per_day=100,
    ),
    "class_iii": Rights(
        use_balance=True,
        send_transfers=True,
        receive_transfers=True,
        hold_incoming=False,
        wealth_products=True,
        tour_pass=True,
        card_per_payment=Money.of("USD", 5_000),
        card_per_year=Money.of("USD", 50_000),
        balance_per_year=Money.of("CNY", 200_000),
        balance_per_day=Money.of("CNY", 5_000),
        transfer_per_payment=Money.of("CNY", 20_000),
        transfer_per_day=Money.of("CNY", 20_000),
        transfers_per_day=100,
    ),
}

TIER_LABELS: Final[dict[Tier, str]] = {
    "unverified": N_("Unverified account"),
    "class_ii": N_("Class II account"),
    "class_iii": N_("Class III account"),
}
SWITCH_LABELS: Final = {
    "use_balance": N_("Pay from balance"),
    "send_transfers": N_("Send transfers"),
    "receive_transfers": N_("Receive transfers"),
    "wealth_products": N_("Wealth products"),
    "tour_pass": N_("Tour Pass (with a verified passport)"),
}
LIMIT_LABELS: Final = {
    "card_per_payment": N_("Foreign card, per payment"),
    "card_per_year": N_("Foreign card, per year"),
    "balance_per_year": N_("From balance, per year"),
    "balance_per_day": N_("From balance, per day"),
    "transfer_per_payment": N_("Transfers, per transfer"),
    "transfer_per_day": N_("Transfers, per day"),
    "transfers_per_day": N_("Transfers, how many a day"),
}


def tier_for(level: str, has_bank_card: bool) -> Tier:
    """The tier a verification level (and a bound mainland bank card) gives."""
    passport = level in PASSPORT_LEVELS
    if passport and has_bank_card:
        return "class_iii"
    if passport or has_bank_card or level == "bank_card":
        return "class_ii"
    return "unverified"


def may_open_tour_pass(level: str, rights: Rights) -> bool:
    """Whether a person may open and top up a Tour Pass. The 2019 Tour Pass was for
    natural persons with a foreign passport (alipay_rules.md section 4, "Who"), so the
    tier's right is not enough: a Class II person verified by a mainland bank card alone
    has no passport on file and may not."""
    return rights.tour_pass and level in PASSPORT_LEVELS


def rights_for(tier: Tier, settings: Settings) -> Rights:
    """The tier's rights, with the operator's overrides applied."""
    rights = DEFAULT_RIGHTS[tier]
    overrides = settings.policy_overrides.get(tier, {})
    if not overrides:
        return rights
    return dataclasses.replace(rights, **{k: _parse(k, v) for k, v in overrides.items()})


def next_tier(tier: Tier) -> Tier | None:
    index = TIERS.index(tier)
    return TIERS[index + 1] if index + 1 < len(TIERS) else None


def how_to_reach(tier: Tier) -> str:
    """What a person does to reach ``tier``, in the current language."""
    ways = {
        "unverified": N_("Sign up."),
        "class_ii": N_("Verify your real name: passport and face, or a mainland bank card."),
        "class_iii": N_("Verify by passport and add a mainland China bank card."),
    }
    return translate(ways[tier])


@dataclass(frozen=True)
class Line:
    key: str
    label: str
    value: str
    allowed: bool
    used: str | None = None  # how much of a limit is used, when known


def describe(rights: Rights, used: Mapping[str, Money | int] | None = None) -> list[Line]:
    """The rights as lines for a page, in the current language; ``used`` (by limit key,
    in the limit's currency) adds how much of each limit is spent."""
    lines = [
        Line(
            key,
            translate(label),
            translate(N_("Yes") if getattr(rights, key) else N_("No")),
            bool(getattr(rights, key)),
        )
        for key, label in SWITCH_LABELS.items()
    ]
    for key, label in LIMIT_LABELS.items():
        limit: Money | int | None = getattr(rights, key)
        spent = (used or {}).get(key)
        if (key.startswith("balance") and not rights.use_balance) or (
            key.startswith("transfer") and not rights.send_transfers
        ):
            value, allowed, spent = translate(N_("Not available")), False, None
        elif limit is None:
            value, allowed = translate(N_("Within the yearly limit")), True
        else:
            value, allowed = _shown(limit), True
        shown = translate(N_("{used} used"), {"used": _shown(spent)}) if spent else None
        lines.append(Line(key, translate(label), value, allowed, shown))
    return lines


Action = Literal["scan", "pay", "receive", "transfer", "tour_pass", "topup_code"]
ACTIONS: Final[tuple[Action, ...]] = (
    "scan",
    "pay",
    "receive",
    "transfer",
    "tour_pass",
    "topup_code",
)


_PAY_NEEDS_VERIFYING: Final = N_(
    "A payment code pays from your balance: verify your real name first."
)
_RECEIVE_NEEDS_VERIFYING: Final = N_("Verify your real name to receive money from other people.")
_SEND_NEEDS_VERIFYING: Final = N_("Verify your real name to send money.")
_TOP_UP_NEEDS_VERIFYING: Final = N_("Verify your real name to add money to your balance.")
_LEVEL_DOES_NOT_ALLOW: Final = N_("Your account level does not allow this (Me > Account level).")


def action_refusal(action: Action, level: str, rights: Rights) -> str | None:
    """Why the person may not take one of Home's actions (a message to translate), or
    None when they may. Scan is always open: what is scanned decides (a shop's QR may be
    paid by foreign card), and the payment that follows asks here again."""
    if action == "tour_pass":
        allowed = may_open_tour_pass(level, rights)
        return None if allowed else N_("The Tour Pass is for people verified by passport.")
    needed = {
        "pay": (rights.use_balance, _PAY_NEEDS_VERIFYING),
        "receive": (rights.receive_transfers, _RECEIVE_NEEDS_VERIFYING),
        "transfer": (rights.send_transfers, _SEND_NEEDS_VERIFYING),
        "topup_code": (rights.use_balance, _TOP_UP_NEEDS_VERIFYING),
    }
    if action not in needed or needed[action][0]:
        return None
    # A verified person refused by an operator's override is not told to verify again.
    return needed[action][1] if level == "unverified" else _LEVEL_DOES_NOT_ALLOW


def _shown(amount: Money | int) -> str:
    return amount.format() if isinstance(amount, Money) else str(amount)


def gains(current: Rights, better: Rights) -> list[Line]:
    """What moving from ``current`` to ``better`` adds."""
    before = {line.key: line for line in describe(current)}
    return [line for line in describe(better) if line.value != before[line.key].value]


def _parse(key: str, value: Any) -> Any:
    field_types = {field.name: field.type for field in dataclasses.fields(Rights)}
    if key not in field_types:
        raise ValueError(f"QIANBAO_POLICY_OVERRIDES: unknown right {key!r}")
    if "bool" in str(field_types[key]):
        if not isinstance(value, bool):
            raise ValueError(f"QIANBAO_POLICY_OVERRIDES: {key} must be true or false")
        return value
    if value is None:
        return None
    if str(field_types[key]).startswith("int"):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"QIANBAO_POLICY_OVERRIDES: {key} must be a whole number")
        return value
    amount, _, currency = str(value).partition(" ")
    return Money.of(currency.strip().upper(), amount)
