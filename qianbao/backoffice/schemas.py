"""Request and response shapes of the staff API (``/api/v1/staff/...``). Amounts are
strings in major units with their currency, as everywhere in the API; passport numbers
are whole only in a case a reviewer opens (the page shows them so too)."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from qianbao.access import Role
from qianbao.verification import service as verification
from qianbao.verification.schemas import CaseOut
from qianbao.wallet.schemas import AmountOut, OrderOut
from qianbao.wallet.transfers.schemas import TransferOut

Note = Field(default="", max_length=2000, description="why, for the audit log")


class StaffSignInIn(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"username": "rita", "password": "a long passphrase"}]}
    )

    username: str = Field(max_length=64)
    password: str = Field(max_length=256)


class StaffOut(BaseModel):
    id: uuid.UUID
    username: str
    display_name: str
    role: Role
    disabled: bool


class StaffSignedInOut(BaseModel):
    token: str = Field(description="Send as `Authorization: Bearer <token>` to /api/v1/staff.")
    expires_at: datetime = Field(description="At the latest; unused for a while, it ends sooner.")
    staff: StaffOut


# --- reviewer: verification cases -----------------------------------------------------------


class ReviewItemOut(BaseModel):
    id: uuid.UUID
    reason: str  # why it waits for a person: face.borderline, document.in_use
    reason_text: str  # the same, in the request's language
    nationality: str | None
    document_number: str | None  # masked
    waiting_since: datetime


class ReviewDocumentOut(BaseModel):
    surname: str
    given_names: str
    document_number: str  # whole: the reviewer compares it with the image
    issuing_state: str
    nationality: str
    birth_date: date
    expiry_date: date
    sex: str


class CaseImageOut(BaseModel):
    id: uuid.UUID
    kind: str  # page | portrait | selfie
    position: int
    path: str = Field(description="GET it with the same token: image/jpeg, never cached.")


class DecisionOut(BaseModel):
    reviewer: str
    decision: str  # approve | reject
    reason: str
    note: str
    decided_at: datetime


class ReviewCaseOut(BaseModel):
    id: uuid.UUID
    status: str
    reason: str | None
    document: ReviewDocumentOut | None
    face_distance: float | None
    match_at_or_below: float
    no_match_above: float
    liveness: dict[str, Any] | None
    images: list[CaseImageOut]
    decisions: list[DecisionOut]


class ReasonOut(BaseModel):
    code: str
    text: str


class ReviewReasonsOut(BaseModel):
    approve: list[ReasonOut]
    reject: list[ReasonOut]


class DecisionIn(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"decision": "approve", "reason": "face_matches"}]}
    )

    decision: Literal["approve", "reject"]
    reason: str = Field(
        max_length=64,
        description="one of the decision's reasons: approve "
        + ", ".join(verification.APPROVE_REASONS)
        + "; reject "
        + ", ".join(verification.REJECT_REASONS),
    )
    note: str = Note


# --- risk officer: restrictions, freezes, appeals ------------------------------------------


class RestrictionRowOut(BaseModel):
    id: uuid.UUID
    user_id: uuid.UUID
    phone: str
    kind: str  # restricted | frozen
    reason: str
    reason_text: str
    imposed_by: str
    note: str
    created_at: datetime
    lifted_at: datetime | None
    held: AmountOut | None = Field(description="what the account holds (balance and held)")
    needs_two: bool = Field(description="releasing it takes two different risk officers")
    release_approved_by: uuid.UUID | None = Field(description="the first of the two, if any")


class ImposeIn(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"phone": "+44 7911 123456", "kind": "frozen", "note": "card fraud"}]
        }
    )

    phone: str = Field(max_length=32, description="the account's mobile number")
    country: str = Field(
        default="CN", min_length=2, max_length=2, description="for a number without +"
    )
    kind: Literal["restricted", "frozen"]
    note: str = Note


class ReleaseIn(BaseModel):
    note: str = Note


class ReleasedOut(BaseModel):
    lifted: bool = Field(
        description="false: a freeze above the threshold took the first of its two approvals"
    )
    restriction: RestrictionRowOut


class AppealDocumentOut(BaseModel):
    id: uuid.UUID
    kind: str
    path: str = Field(description="GET it with the same token: image/jpeg, never cached.")


class AppealOut(BaseModel):
    id: uuid.UUID
    phone: str
    kind: str
    reason: str
    message: str
    status: str  # pending | lifted | kept
    created_at: datetime
    documents: list[AppealDocumentOut]
    restriction_id: uuid.UUID
    release_approved_by: uuid.UUID | None


class AppealDecisionIn(BaseModel):
    decision: Literal["lift", "keep"]
    note: str = Note


# --- support: a person, read-only -----------------------------------------------------------


class PersonOut(BaseModel):
    id: uuid.UUID
    phone: str
    language: str
    created_at: datetime
    level: str
    level_text: str
    case: CaseOut | None
    balance: AmountOut
    held: AmountOut
    restrictions: list[RestrictionRowOut]
    payments: list[OrderOut]  # newest first, the latest 50
    transfers: list[TransferOut]  # newest first, the latest 50


# --- admin: staff and the audit log ---------------------------------------------------------


class StaffIn(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "username": "nia",
                    "display_name": "Nia",
                    "password": "a long staff passphrase",
                    "role": "support",
                }
            ]
        }
    )

    username: str = Field(max_length=64)
    display_name: str = Field(default="", max_length=128)
    password: str = Field(max_length=256)
    role: Role


class RoleIn(BaseModel):
    role: Role


class AuditEventOut(BaseModel):
    at: datetime
    actor: str  # staff:<id>, rule:<name>, cli
    action: str  # a stable code: freeze.release_approved, staff.role_changed
    subject: str  # restriction:<id>, staff:<id>, appeal:<id>
    note: str
    details: dict[str, Any]
