"""The JSON API of transfers between people: quote (who and what is left), send (with the
payment password and an ``Idempotency-Key`` header), history, and a request-money link."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from qianbao.deps import IdempotencyKey
from qianbao.identity.api import DbDep, SessionDep
from qianbao.wallet import history as wallet_history
from qianbao.wallet.api import Cursor, FiltersDep, Limit
from qianbao.wallet.schemas import AmountOut
from qianbao.wallet.transfers import receive_codes, schemas
from qianbao.wallet.transfers import service as transfers

router = APIRouter(prefix="/api/v1/wallet/transfers", tags=["transfers"])


def allowance_out(found: transfers.Allowance) -> schemas.AllowanceOut:
    return schemas.AllowanceOut(
        balance=AmountOut.of(found.balance),
        may_send=found.may_send,
        per_transfer=AmountOut.of(found.per_transfer) if found.per_transfer else None,
        most_now=AmountOut.of(found.most()),
        remaining=[
            schemas.RemainingOut(
                key=line.key, label=line.label(), limit=line.limit_text(), left=line.left_text()
            )
            for line in found.remaining
        ],
    )


def transfer_out(view: transfers.TransferView) -> schemas.TransferOut:
    return schemas.TransferOut(
        id=view.id,
        direction=view.direction,
        counterparty=schemas.RecipientOut(
            name=view.counterparty_name, phone=view.counterparty_phone, shown=view.counterparty()
        ),
        amount=AmountOut.of(view.amount),
        note=view.note,
        created_at=view.created_at,
        replayed=view.replayed,
    )


@router.get("/allowance", response_model=schemas.AllowanceOut)
def get_allowance(session: SessionDep, db: DbDep) -> schemas.AllowanceOut:
    """The balance and what is left of each limit on transfers (policy.py)."""
    return allowance_out(db.run(lambda tx: transfers.allowance(tx, session.account.id)))


@router.post("/quote", response_model=schemas.TransferQuoteOut)
def quote(
    body: schemas.TransferQuoteIn, session: SessionDep, db: DbDep
) -> schemas.TransferQuoteOut:
    """Check a transfer without making it: the recipient's masked verified name, and any
    refusal (level, restriction, limit, balance) before the payment password is asked."""
    found = db.run(
        lambda tx: transfers.quote(tx, session.account.id, body.to, body.amount, body.note)
    )
    return schemas.TransferQuoteOut(
        recipient=schemas.RecipientOut(
            name=found.recipient.name,
            phone=found.recipient.phone,
            shown=found.recipient.shown(),
            id=found.recipient.id,
        ),
        amount=AmountOut.of(found.amount),
        note=found.note,
        allowance=allowance_out(found.allowance),
    )


@router.post(
    "",
    response_model=schemas.TransferOut,
    status_code=status.HTTP_201_CREATED,
    responses={200: {"description": "a retry: the first answer, nothing moved again"}},
)
def send(
    body: schemas.TransferIn,
    session: SessionDep,
    db: DbDep,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> schemas.TransferOut:
    """Send money to another person, confirmed by the payment password. The same key
    with another body is refused (``idempotency.mismatch``)."""
    view = transfers.send(
        db,
        session.account.id,
        body.to,
        body.amount,
        body.note,
        body.payment_password,
        idempotency_key,
        expected_recipient=body.recipient_id,
    )
    if view.replayed:
        response.status_code = status.HTTP_200_OK
        response.headers["Idempotent-Replayed"] = "true"
    return transfer_out(view)


@router.get("", response_model=list[schemas.TransferOut])
def history(
    session: SessionDep, db: DbDep, limit: Annotated[int, Query(ge=1, le=500)] = 100
) -> list[schemas.TransferOut]:
    """Transfers sent and received, newest first."""
    rows = db.run(lambda tx: transfers.user_transfers(tx, session.account.id, limit))
    return [transfer_out(row) for row in rows]


@router.get("/history", response_model=schemas.TransfersPageOut)
def history_page(
    session: SessionDep, db: DbDep, filters: FiltersDep, cursor: Cursor = None, limit: Limit = 20
) -> schemas.TransfersPageOut:
    """Transfers sent and received, newest first, a page at a time, with the payment
    history's filters (a card source or an order status leaves none)."""
    found = db.run(
        lambda tx: wallet_history.transfers_page(tx, session.account.id, filters, cursor, limit)
    )
    return schemas.TransfersPageOut(
        items=[transfer_out(view) for view in found.items], next_cursor=found.next_cursor
    )


@router.get("/request-link", response_model=schemas.RequestLinkOut)
def request_link(
    session: SessionDep,
    db: DbDep,
    amount: Annotated[str, Query(max_length=32)] = "",
    note: Annotated[str, Query(max_length=400)] = "",
    by_email: bool = False,
) -> schemas.RequestLinkOut:
    """A link that opens the transfer form prefilled to pay this person."""
    path = db.run(
        lambda tx: transfers.request_link(tx, session.account.id, amount, note, by_email=by_email)
    )
    return schemas.RequestLinkOut(path=path)


@router.get("/receive-code", response_model=schemas.ReceiveCodeOut)
def receive_code(
    session: SessionDep,
    db: DbDep,
    amount: Annotated[str, Query(max_length=32)] = "",
    note: Annotated[str, Query(max_length=400)] = "",
) -> schemas.ReceiveCodeOut:
    """The person's receive code (收款码): the URL to show as a QR code, with the amount
    and note they chose (optional). It carries a random token, not the phone number."""
    path = db.run(lambda tx: transfers.receive_code_path(tx, session.account.id, amount, note))
    return schemas.ReceiveCodeOut(url=db.settings.public_base_url.rstrip("/") + path, path=path)


@router.post("/receive-code/reset", response_model=schemas.ReceiveCodeOut)
def reset_receive_code(session: SessionDep, db: DbDep) -> schemas.ReceiveCodeOut:
    """A new receive code; the old one names nobody any more."""
    path = db.run(lambda tx: receive_codes.path(receive_codes.reset(tx, session.account.id)))
    return schemas.ReceiveCodeOut(url=db.settings.public_base_url.rstrip("/") + path, path=path)


@router.get("/{transfer_id}", response_model=schemas.TransferOut)
def detail(transfer_id: uuid.UUID, session: SessionDep, db: DbDep) -> schemas.TransferOut:
    """One transfer, for its sender or its recipient."""
    return transfer_out(
        db.run(lambda tx: transfers.user_transfer(tx, session.account.id, transfer_id))
    )
