"""The back office's merchant actions in the staff API (``/api/v1/staff/...``, an
administrator's bearer token): shops' applications, approved or rejected, and new portal
users. The same use cases as ``/admin/merchants``, with the same audit events."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query

from qianbao import deps
from qianbao.backoffice.api import StaffDep
from qianbao.db import Database
from qianbao.openplatform.merchants import accounts
from qianbao.openplatform.merchants.accounts import ApplicationView, NewUser
from qianbao.openplatform.portal import schemas

router = APIRouter(prefix="/api/v1/staff", tags=["staff"])
DbDep = Annotated[Database, Depends(deps.database)]


def _application_out(application: ApplicationView) -> schemas.ApplicationOut:
    return schemas.ApplicationOut(**application.__dict__)


def _made_out(made: NewUser) -> schemas.MerchantUserMadeOut:
    return schemas.MerchantUserMadeOut(
        merchant=made.user.merchant, login=made.user.login, first_password=made.password
    )


@router.get("/merchant-applications", response_model=list[schemas.ApplicationOut])
def merchant_applications(
    member: StaffDep,
    db: DbDep,
    status: Annotated[Literal["pending", "approved", "rejected"], Query()] = "pending",
) -> list[schemas.ApplicationOut]:
    """Shops' applications for a merchant account, newest first."""
    return [_application_out(a) for a in db.run(lambda tx: accounts.applications(tx, status))]


@router.post(
    "/merchant-applications/{application_id}/approve",
    response_model=schemas.MerchantUserMadeOut,
    status_code=201,
)
def approve_application(
    member: StaffDep, db: DbDep, application_id: uuid.UUID
) -> schemas.MerchantUserMadeOut:
    """The merchant and its first portal user (the applicant's email); the first
    password is in this answer only."""
    return _made_out(accounts.approve(db, member.id, application_id))


@router.post(
    "/merchant-applications/{application_id}/reject", response_model=schemas.ApplicationOut
)
def reject_application(
    member: StaffDep, db: DbDep, application_id: uuid.UUID
) -> schemas.ApplicationOut:
    return _application_out(db.run(lambda tx: accounts.reject(tx, member.id, application_id)))


@router.post(
    "/merchant-users",
    response_model=schemas.MerchantUserMadeOut,
    status_code=201,
    responses={404: {"description": "No merchant of that name (`merchant.not_found`)."}},
)
def create_merchant_user(
    member: StaffDep, db: DbDep, body: schemas.MerchantUserIn
) -> schemas.MerchantUserMadeOut:
    """A new portal user of a merchant; the first password is in this answer only."""
    return _made_out(accounts.create_user(db, body.merchant, body.login, created_by=member.id))
