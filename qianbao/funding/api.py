"""The JSON API of mainland bank cards: start the bank's four-element check, confirm it
with the code the bank texted, list the bound cards."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, status

from qianbao.funding import schemas, service
from qianbao.identity.api import DbDep, SessionDep
from qianbao.verification import service as verification

router = APIRouter(prefix="/api/v1/funding", tags=["funding"])


@router.post(
    "/bank-cards/checks", response_model=schemas.BankCheckOut, status_code=status.HTTP_201_CREATED
)
def start_check(body: schemas.BankCheckIn, session: SessionDep, db: DbDep) -> schemas.BankCheckOut:
    """Ask the bank to check card, name, passport number and reserved phone; it texts a
    code to the reserved phone. Test cards of the sandbox bank: docs/sandbox_bank.md."""
    user_id = session.account.id
    verified = db.run(lambda tx: verification.verified_holder(tx, user_id))
    started = service.start_check(
        db,
        user_id,
        service.CardHolder(
            body.card_number, body.holder_name, body.passport_number, body.reserved_phone
        ),
        verified,
    )
    return schemas.BankCheckOut(**started.__dict__)


@router.post("/bank-cards/checks/{check_id}/confirm", response_model=schemas.BankCardOut)
def confirm_check(
    check_id: uuid.UUID, body: schemas.BankCodeIn, session: SessionDep, db: DbDep
) -> schemas.BankCardOut:
    """The code from the bank's SMS: the card is bound and the account's level follows."""
    card = service.confirm_check(db, session.account.id, check_id, body.code)
    return schemas.BankCardOut(**card.__dict__)


@router.get("/bank-cards", response_model=list[schemas.BankCardOut])
def list_cards(session: SessionDep, db: DbDep) -> list[schemas.BankCardOut]:
    cards = db.run(lambda tx: service.bank_cards(tx, session.account.id))
    return [schemas.BankCardOut(**card.__dict__) for card in cards]
