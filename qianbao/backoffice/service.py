"""Support's lookup of a person: their account, verification, money and restrictions.

Reads only: nothing here opens an account, releases money or touches a session. It spans
identity, verification, the wallet and risk, so it sits above all of them; the
back-office page (/admin/people) and the staff API (GET /api/v1/staff/people) both call
``person_lookup``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from qianbao.db import Tx
from qianbao.identity import service as identity
from qianbao.identity.phone import PhoneNumber
from qianbao.money import Money
from qianbao.risk import restrictions
from qianbao.verification import service as verification
from qianbao.wallet import history
from qianbao.wallet.payments import service as payments
from qianbao.wallet.transfers.service import TransferView

# How many of the newest payments and transfers the lookup shows.
LOOKUP_ROWS: Final = 50


@dataclass(frozen=True)
class PersonLookup:
    account: identity.Account
    level: str  # the level's name, in the current language
    case: verification.CaseView | None
    balance: Money
    held: Money
    restrictions: list[restrictions.RestrictionRow]
    payments: list[payments.OrderView]
    transfers: list[TransferView]


def person_lookup(tx: Tx, number: PhoneNumber) -> PersonLookup:
    """A person by mobile number; 404 ``account.not_found`` when nobody has it."""
    account = identity.account_by_phone(tx, number)
    balance, held = payments.money_of(tx, account.id)
    return PersonLookup(
        account=account,
        level=identity.verification_label(account.verification_level),
        case=verification.current_case(tx, account.id),
        balance=balance,
        held=held,
        restrictions=restrictions.of_person(tx, account.id),
        payments=history.payments_page(tx, account.id, {}, None, LOOKUP_ROWS).items,
        transfers=history.transfers_page(tx, account.id, {}, None, LOOKUP_ROWS).items,
    )
