"""The staff JSON API: every back-office action, for scripts and tools, under
``/api/v1/staff``. Thin, like the pages: it calls the same service functions
(verification's review, risk's restrictions and appeals, support's lookup, identity's
staff), so the same rules, refusals and audit events apply whichever door is used.

A staff member signs in with ``POST /api/v1/staff/sessions`` and sends the token as
``Authorization: Bearer``. The gate (qianbao/gate.py) checks it, and the role, against
qianbao/access.py's line before a handler runs; a person's token opens none of these.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, Query, Request, Response, Security, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from qianbao import audit, deps, gate
from qianbao.access import Role
from qianbao.backoffice import schemas
from qianbao.backoffice import service as lookup
from qianbao.db import Database, Tx
from qianbao.i18n import translate
from qianbao.identity import staff
from qianbao.identity.phone import parse_mobile
from qianbao.identity.staff import Staff
from qianbao.risk import restrictions
from qianbao.verification import service as verification
from qianbao.verification.api import case_out
from qianbao.wallet.api import order_out
from qianbao.wallet.schemas import AmountOut
from qianbao.wallet.transfers.api import transfer_out

router = APIRouter(prefix="/api/v1/staff", tags=["staff"])
DbDep = Annotated[Database, Depends(deps.database)]
# The staff security scheme of the OpenAPI document: every operation that depends on
# current_staff lists it, apart from the person's ``bearer``. Not auto_error: the gate
# answers a missing or wrong token with its own 401 problem body.
STAFF_BEARER: Final = HTTPBearer(
    scheme_name="staffBearer",
    bearerFormat="opaque staff token",
    description="The `token` from POST /api/v1/staff/sessions (a staff member's username "
    "and password). A person's token is not one.",
    auto_error=False,
)
IMAGE: Final[dict[int | str, dict[str, Any]]] = {
    200: {"content": {"image/jpeg": {}}, "description": "the image, decrypted for this request"}
}
NO_STORE: Final = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}


def current_staff(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(STAFF_BEARER)] = None,
) -> Staff:
    """The staff member the gate admitted with this token (and whose role it checked)."""
    return gate.signed_in_staff(request)


StaffDep = Annotated[Staff, Depends(current_staff)]


def staff_out(member: Staff) -> schemas.StaffOut:
    return schemas.StaffOut(
        id=member.id,
        username=member.username,
        display_name=member.display_name,
        role=Role(member.role),
        disabled=member.disabled,
    )


# --- signing in and out ------------------------------------------------------------------


@router.post(
    "/sessions",
    response_model=schemas.StaffSignedInOut,
    status_code=201,
    responses={401: {"description": "Wrong username or password (`staff.login_failed`)."}},
)
def sign_in(body: schemas.StaffSignInIn, db: DbDep) -> schemas.StaffSignedInOut:
    """A staff token for a right username and password: the back office's login, with its
    throttle (wrong passwords slow further tries for the name down, doubling each time)."""
    signed = staff.open_session(db, body.username, body.password, "api")
    return schemas.StaffSignedInOut(
        token=signed.token, expires_at=signed.expires_at, staff=staff_out(signed.member)
    )


@router.delete("/session", status_code=status.HTTP_204_NO_CONTENT)
def sign_out(request: Request, member: StaffDep, db: DbDep) -> Response:
    """End this token."""
    token = gate.bearer_token(request)
    db.run(lambda tx: staff.sign_out(tx, token, "api"))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/me", response_model=schemas.StaffOut)
def me(member: StaffDep) -> schemas.StaffOut:
    """Who this token is, and their role."""
    return staff_out(member)


# --- reviewer: verification cases --------------------------------------------------------


@router.get("/reviews", response_model=list[schemas.ReviewItemOut])
def review_queue(member: StaffDep, db: DbDep) -> list[schemas.ReviewItemOut]:
    """The cases waiting for a reviewer, oldest first."""
    return [
        schemas.ReviewItemOut(
            id=item.id,
            reason=item.reason,
            reason_text=translate(verification.REVIEW_REASONS.get(item.reason, item.reason)),
            nationality=item.nationality,
            document_number=item.document_masked,
            waiting_since=item.waiting_since,
        )
        for item in db.run(verification.review_queue)
    ]


@router.get("/reviews/{case_id}", response_model=schemas.ReviewCaseOut)
def review_case(case_id: uuid.UUID, member: StaffDep, db: DbDep) -> schemas.ReviewCaseOut:
    """A case as the reviewer sees it: the document, the face distance against the
    thresholds, the liveness report, the images and every decision so far."""
    return review_case_out(db.run(lambda tx: verification.review_case(tx, case_id)))


@router.get("/reviews/{case_id}/images/{image_id}", response_class=Response, responses=IMAGE)
def case_image(case_id: uuid.UUID, image_id: uuid.UUID, member: StaffDep, db: DbDep) -> Response:
    """One image of a case (the photo page, the portrait, a selfie frame), never cached."""
    data = db.run(lambda tx: verification.case_image(tx, case_id, image_id))
    return Response(data, media_type="image/jpeg", headers=NO_STORE)


@router.post("/reviews/{case_id}/decision", response_model=schemas.ReviewCaseOut)
def decide(
    case_id: uuid.UUID, body: schemas.DecisionIn, member: StaffDep, db: DbDep
) -> schemas.ReviewCaseOut:
    """Approve or reject a case in review, with one of the decision's reasons (and a note,
    which ``other`` needs). The person is told; the decision is recorded with its reviewer."""
    decision, reason, note = body.decision, body.reason, body.note
    decided = db.run(lambda tx: verification.decide(tx, member.id, case_id, decision, reason, note))
    return review_case_out(decided)


def review_case_out(case: verification.ReviewCase) -> schemas.ReviewCaseOut:
    document = case.document
    return schemas.ReviewCaseOut(
        id=case.id,
        status=case.status,
        reason=case.reason,
        document=None
        if document is None
        else schemas.ReviewDocumentOut(
            surname=document.surname,
            given_names=document.given_names,
            document_number=document.document_number,
            issuing_state=document.issuing_state,
            nationality=document.nationality,
            birth_date=document.birth_date,
            expiry_date=document.expiry_date,
            sex=document.sex,
        ),
        face_distance=case.face_distance,
        match_at_or_below=case.match_threshold - case.review_margin,
        no_match_above=case.match_threshold + case.review_margin,
        liveness=case.liveness,
        images=[
            schemas.CaseImageOut(
                id=image_id,
                kind=kind,
                position=position,
                path=f"{router.prefix}/reviews/{case.id}/images/{image_id}",
            )
            for image_id, kind, position in case.images
        ],
        decisions=[
            schemas.DecisionOut(
                reviewer=d.reviewer,
                decision=d.decision,
                reason=d.reason,
                note=d.note,
                decided_at=d.decided_at,
            )
            for d in case.decisions
        ],
    )


# --- risk officer: restrictions, freezes and appeals --------------------------------------


@router.get("/restrictions", response_model=list[schemas.RestrictionRowOut])
def restrictions_in_force(member: StaffDep, db: DbDep) -> list[schemas.RestrictionRowOut]:
    """Every restriction and freeze in force, oldest first, with what each account holds
    and whether its release takes two risk officers."""
    return [restriction_out(row) for row in db.run(restrictions.in_force)]


@router.post("/restrictions", response_model=schemas.RestrictionRowOut, status_code=201)
def impose(body: schemas.ImposeIn, member: StaffDep, db: DbDep) -> schemas.RestrictionRowOut:
    """Restrict or freeze an account by its mobile number, saying why (the note is
    required). The person is told by SMS; the same kind in force is not imposed twice."""
    number = parse_mobile(body.phone, body.country)

    def do(tx: Tx) -> restrictions.RestrictionRow:
        made = restrictions.impose_by_officer(tx, member.id, number, body.kind, body.note)
        return restrictions.restriction(tx, made)

    return restriction_out(db.run(do))


@router.post("/restrictions/{restriction_id}/release", response_model=schemas.ReleasedOut)
def release(
    restriction_id: uuid.UUID, body: schemas.ReleaseIn, member: StaffDep, db: DbDep
) -> schemas.ReleasedOut:
    """Lift a restriction or freeze, saying why. A freeze holding more than
    ``QIANBAO_FREEZE_TWO_PERSON_RELEASE_ABOVE`` takes two different risk officers: the
    first call approves (``lifted: false``), a second officer's call lifts it."""

    def do(tx: Tx) -> tuple[bool, restrictions.RestrictionRow]:
        lifted = restrictions.release(tx, restriction_id, member.id, body.note)
        return lifted, restrictions.restriction(tx, restriction_id)

    lifted, row = db.run(do)
    return schemas.ReleasedOut(lifted=lifted, restriction=restriction_out(row))


def restriction_out(row: restrictions.RestrictionRow) -> schemas.RestrictionRowOut:
    return schemas.RestrictionRowOut(
        id=row.id,
        user_id=row.user_id,
        phone=row.user_phone,
        kind=row.kind,
        reason=row.reason,
        reason_text=translate(restrictions.REASONS.get(row.reason, row.reason)),
        imposed_by=row.imposed_by,
        note=row.note,
        created_at=row.created_at,
        lifted_at=row.lifted_at,
        held=AmountOut.of(row.held) if row.held is not None else None,
        needs_two=row.needs_two,
        release_approved_by=row.release_approved_by,
    )


@router.get("/appeals", response_model=list[schemas.AppealOut])
def appeals(member: StaffDep, db: DbDep) -> list[schemas.AppealOut]:
    """The appeals waiting for a decision, oldest first."""
    return [appeal_out(found) for found in db.run(restrictions.pending_appeals)]


@router.get("/appeals/{appeal_id}", response_model=schemas.AppealOut)
def appeal(appeal_id: uuid.UUID, member: StaffDep, db: DbDep) -> schemas.AppealOut:
    return appeal_out(db.run(lambda tx: restrictions.get_appeal(tx, appeal_id)))


@router.get(
    "/appeals/{appeal_id}/documents/{document_id}", response_class=Response, responses=IMAGE
)
def appeal_document(
    appeal_id: uuid.UUID, document_id: uuid.UUID, member: StaffDep, db: DbDep
) -> Response:
    """One document of an appeal, never cached."""
    data = db.run(lambda tx: restrictions.appeal_document(tx, appeal_id, document_id))
    return Response(data, media_type="image/jpeg", headers=NO_STORE)


@router.post("/appeals/{appeal_id}/decision", response_model=schemas.AppealOut)
def decide_appeal(
    appeal_id: uuid.UUID, body: schemas.AppealDecisionIn, member: StaffDep, db: DbDep
) -> schemas.AppealOut:
    """Lift the restriction or keep it, saying why; the person is told. Lifting a freeze
    above the threshold is the first of two approvals: the appeal stays pending."""
    lift = body.decision == "lift"
    decided = db.run(
        lambda tx: restrictions.decide_appeal(tx, appeal_id, member.id, lift, body.note)
    )
    return appeal_out(decided)


def appeal_out(found: restrictions.AppealView) -> schemas.AppealOut:
    return schemas.AppealOut(
        id=found.id,
        phone=found.user_phone,
        kind=found.kind,
        reason=found.reason,
        message=found.message,
        status=found.status,
        created_at=found.created_at,
        documents=[
            schemas.AppealDocumentOut(
                id=document_id,
                kind=kind,
                path=f"{router.prefix}/appeals/{found.id}/documents/{document_id}",
            )
            for document_id, kind in found.documents
        ],
        restriction_id=found.restriction_id,
        release_approved_by=found.release_approved_by,
    )


# --- support: a person, read-only ----------------------------------------------------------


@router.get("/people", response_model=schemas.PersonOut)
def person(
    member: StaffDep,
    db: DbDep,
    phone: Annotated[str, Query(min_length=1, max_length=32, examples=["+44 7911 123456"])],
    country: Annotated[str, Query(min_length=2, max_length=2)] = "CN",
) -> schemas.PersonOut:
    """A person by mobile number: account, verification, balance, restrictions and their
    latest payments and transfers. Reads only."""
    number = parse_mobile(phone, country)
    found = db.run(lambda tx: lookup.person_lookup(tx, number))
    account = found.account
    return schemas.PersonOut(
        id=account.id,
        phone=account.phone.international(),
        language=account.language,
        created_at=account.created_at,
        level=account.verification_level,
        level_text=found.level,
        case=case_out(found.case) if found.case else None,
        balance=AmountOut.of(found.balance),
        held=AmountOut.of(found.held),
        restrictions=[restriction_out(row) for row in found.restrictions],
        payments=[order_out(order) for order in found.payments],
        transfers=[transfer_out(move) for move in found.transfers],
    )


# --- admin: staff and the audit log ---------------------------------------------------------


@router.get("/members", response_model=list[schemas.StaffOut])
def members(member: StaffDep, db: DbDep) -> list[schemas.StaffOut]:
    """Every staff account, disabled ones too."""
    return [staff_out(each) for each in db.run(staff.all_staff)]


@router.post("/members", response_model=schemas.StaffOut, status_code=201)
def create_member(body: schemas.StaffIn, member: StaffDep, db: DbDep) -> schemas.StaffOut:
    """A new staff account with its role (the password follows the login-password rules)."""
    made = staff.create_staff(
        db, body.username, body.display_name, body.password, body.role.value, created_by=member.id
    )
    return staff_out(made)


@router.put("/members/{staff_id}/role", response_model=schemas.StaffOut)
def change_role(
    staff_id: uuid.UUID, body: schemas.RoleIn, member: StaffDep, db: DbDep
) -> schemas.StaffOut:
    """Another role for another staff member (never one's own), from their next request."""
    return staff_out(db.run(lambda tx: staff.set_role(tx, member.id, staff_id, body.role.value)))


@router.post("/members/{staff_id}/disable", response_model=schemas.StaffOut)
def disable_member(staff_id: uuid.UUID, member: StaffDep, db: DbDep) -> schemas.StaffOut:
    """End another staff account: its sessions and tokens stop at once."""
    return staff_out(db.run(lambda tx: staff.disable(tx, member.id, staff_id)))


@router.get("/audit-events", response_model=list[schemas.AuditEventOut])
def audit_events(
    member: StaffDep,
    db: DbDep,
    subject: Annotated[str | None, Query(max_length=80)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> list[schemas.AuditEventOut]:
    """The audit log, newest first: of one subject (``restriction:<id>``,
    ``staff:<id>``) or of everything."""
    return [
        schemas.AuditEventOut(
            at=event.at,
            actor=event.actor,
            action=event.action,
            subject=event.subject,
            note=event.note,
            details=event.details,
        )
        for event in db.run(lambda tx: audit.events(tx, subject, limit))
    ]
