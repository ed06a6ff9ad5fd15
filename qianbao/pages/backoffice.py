"""The back office: staff sign in, and each role does its own work.

Who may open each page is qianbao/access.py's table, enforced by the gate before these
handlers run (reviewers: verification cases; risk officers: restrictions, freezes and
their appeals; support: a person's read-only lookup; administrators: staff). Staff
sessions use their own cookie, sent only to /admin, never the customer one. Case images
are opened (decrypted) only here, one request per image, and are never cached.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Final

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response

from qianbao import access, audit, deps
from qianbao.access import Role
from qianbao.backoffice import service as lookup
from qianbao.db import Database
from qianbao.errors import QianbaoError
from qianbao.gate import signed_in_staff
from qianbao.identity import staff
from qianbao.identity.phone import parse_mobile
from qianbao.identity.staff import Staff
from qianbao.risk import restrictions
from qianbao.verification import service as verification
from qianbao.web.pages import CsrfField, DbDep
from qianbao.web.render import check_csrf, page, redirect
from qianbao.web.sign_in_pages import SignInPages

router = APIRouter(prefix="/admin", include_in_schema=False)
STAFF_COOKIE: Final = deps.STAFF_COOKIE
Text = Annotated[str, Form()]
StaffDep = Annotated[Staff, Depends(signed_in_staff)]
_SIGN_IN: Final = SignInPages(
    cookie=STAFF_COOKIE,
    path="/admin",
    template="admin_login.html",
    login_field="username",
    home="/admin",
    sign_in=lambda db, username, password: staff.sign_in(db, username, password)[0],
    sign_out=staff.sign_out,
)


@router.get("")
def admin_home(request: Request, member: StaffDep) -> Response:
    """Each role's own first page."""
    return redirect(request, access.STAFF_HOME[Role(member.role)])


@router.get("/login")
def login_page(request: Request) -> Response:
    return _SIGN_IN.form(request)


@router.post("/login")
def login(
    request: Request, db: DbDep, csrf: CsrfField = "", username: Text = "", password: Text = ""
) -> Response:
    return _SIGN_IN.submit(request, db, csrf, username, password)


@router.post("/logout")
def logout(request: Request, db: DbDep, csrf: CsrfField = "") -> Response:
    return _SIGN_IN.leave(request, db, csrf)


@router.get("/reviews")
def review_queue(request: Request, db: DbDep, member: StaffDep) -> Response:
    cases = db.run(verification.review_queue)
    return page(
        request,
        "admin_queue.html",
        staff=member,
        cases=cases,
        review_reasons=verification.REVIEW_REASONS,
    )


@router.get("/reviews/{case_id}")
def review_case(request: Request, db: DbDep, member: StaffDep, case_id: uuid.UUID) -> Response:
    return _case_page(request, db, member, case_id)


def _case_page(
    request: Request,
    db: Database,
    member: Staff,
    case_id: uuid.UUID,
    error: QianbaoError | None = None,
) -> Response:
    case = db.run(lambda tx: verification.review_case(tx, case_id))
    return page(
        request,
        "admin_case.html",
        status=error.status if error else 200,
        staff=member,
        case=case,
        error=error,
        review_reasons=verification.REVIEW_REASONS,
        approve_reasons=verification.APPROVE_REASONS,
        reject_reasons=verification.REJECT_REASONS,
    )


@router.get("/reviews/{case_id}/images/{image_id}")
def case_image(db: DbDep, member: StaffDep, case_id: uuid.UUID, image_id: uuid.UUID) -> Response:
    data = db.run(lambda tx: verification.case_image(tx, case_id, image_id))
    return Response(
        data,
        media_type="image/jpeg",
        headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"},
    )


@router.post("/reviews/{case_id}/decision")
def decide(
    request: Request,
    db: DbDep,
    member: StaffDep,
    case_id: uuid.UUID,
    csrf: CsrfField = "",
    decision: Text = "",
    reason: Text = "",
    note: Text = "",
) -> Response:
    check_csrf(request, csrf)
    try:
        db.run(lambda tx: verification.decide(tx, member.id, case_id, decision, reason, note))
    except QianbaoError as error:
        return _case_page(request, db, member, case_id, error)
    return redirect(request, f"/admin/reviews/{case_id}")


# --- restrictions and appeals --------------------------------------------------------------


@router.get("/appeals")
def appeals_queue(request: Request, db: DbDep, member: StaffDep) -> Response:
    appeals = db.run(restrictions.pending_appeals)
    return page(
        request, "admin_appeals.html", staff=member, appeals=appeals, reasons=restrictions.REASONS
    )


@router.get("/appeals/{appeal_id}")
def appeal_page(request: Request, db: DbDep, member: StaffDep, appeal_id: uuid.UUID) -> Response:
    return _appeal(request, db, member, appeal_id)


def _appeal(
    request: Request,
    db: Database,
    member: Staff,
    appeal_id: uuid.UUID,
    error: QianbaoError | None = None,
) -> Response:
    found = db.run(lambda tx: restrictions.get_appeal(tx, appeal_id))
    return page(
        request,
        "admin_appeal.html",
        status=error.status if error else 200,
        staff=member,
        appeal=found,
        reasons=restrictions.REASONS,
        error=error,
    )


@router.get("/appeals/{appeal_id}/documents/{document_id}")
def appeal_document(
    db: DbDep, member: StaffDep, appeal_id: uuid.UUID, document_id: uuid.UUID
) -> Response:
    data = db.run(lambda tx: restrictions.appeal_document(tx, appeal_id, document_id))
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "no-store"})


@router.post("/appeals/{appeal_id}/decision")
def decide_appeal(
    request: Request,
    db: DbDep,
    member: StaffDep,
    appeal_id: uuid.UUID,
    csrf: CsrfField = "",
    decision: Text = "",
    note: Text = "",
) -> Response:
    check_csrf(request, csrf)
    lift = decision == "lift"
    try:
        db.run(lambda tx: restrictions.decide_appeal(tx, appeal_id, member.id, lift, note))
    except QianbaoError as error:
        return _appeal(request, db, member, appeal_id, error)
    return redirect(request, f"/admin/appeals/{appeal_id}")


@router.get("/restrictions")
def restrictions_page(
    request: Request, db: DbDep, member: StaffDep, done: str | None = None
) -> Response:
    return _restrictions(request, db, member, done=done)


def _restrictions(
    request: Request,
    db: Database,
    member: Staff,
    error: QianbaoError | None = None,
    done: str | None = None,
) -> Response:
    rows = db.run(restrictions.in_force)
    return page(
        request,
        "admin_restrictions.html",
        status=error.status if error else 200,
        staff=member,
        rows=rows,
        reasons=restrictions.REASONS,
        error=error,
        done=done if done in ("imposed", "released", "approved") else None,
    )


@router.post("/restrictions")
def impose_restriction(
    request: Request,
    db: DbDep,
    member: StaffDep,
    csrf: CsrfField = "",
    phone: Text = "",
    kind: Text = "restricted",
    note: Text = "",
) -> Response:
    """A risk officer restricts or freezes an account by its mobile number, saying why."""
    check_csrf(request, csrf)
    try:
        number = parse_mobile(phone, "CN")
        db.run(lambda tx: restrictions.impose_by_officer(tx, member.id, number, kind, note))
    except QianbaoError as error:
        return _restrictions(request, db, member, error)
    return redirect(request, "/admin/restrictions?done=imposed")


@router.post("/restrictions/{restriction_id}/release")
def release_restriction(
    request: Request,
    db: DbDep,
    member: StaffDep,
    restriction_id: uuid.UUID,
    csrf: CsrfField = "",
    note: Text = "",
) -> Response:
    """Lift a restriction or freeze; above the threshold, the first of two approvals."""
    check_csrf(request, csrf)
    try:
        lifted = db.run(lambda tx: restrictions.release(tx, restriction_id, member.id, note))
    except QianbaoError as error:
        return _restrictions(request, db, member, error)
    return redirect(request, f"/admin/restrictions?done={'released' if lifted else 'approved'}")


# --- support: a person, read-only ---------------------------------------------------------


@router.get("/people")
def person_lookup(request: Request, db: DbDep, member: StaffDep, phone: str = "") -> Response:
    """A person by mobile number: their account, verification, money and restrictions.
    Reads only: nothing here opens an account, releases money or touches a session."""
    if not phone.strip():
        return page(request, "admin_person.html", staff=member, phone="", found=None)
    try:
        found = db.run(lambda tx: lookup.person_lookup(tx, parse_mobile(phone, "CN")))
    except QianbaoError as error:
        return page(
            request,
            "admin_person.html",
            status=error.status,
            staff=member,
            phone=phone,
            found=None,
            error=error,
        )
    return page(request, "admin_person.html", staff=member, phone=phone, found=found)


# --- administrators: staff ---------------------------------------------------------------


@router.get("/staff")
def staff_page(request: Request, db: DbDep, member: StaffDep) -> Response:
    return _staff_page(request, db, member)


def _staff_page(
    request: Request, db: Database, member: Staff, error: QianbaoError | None = None
) -> Response:
    return page(
        request,
        "admin_staff.html",
        status=error.status if error else 200,
        staff=member,
        members=db.run(staff.all_staff),
        roles=access.ROLES,
        events=db.run(lambda tx: audit.events(tx, limit=50)),
        error=error,
    )


@router.post("/staff")
def create_staff(
    request: Request,
    db: DbDep,
    member: StaffDep,
    csrf: CsrfField = "",
    username: Text = "",
    display_name: Text = "",
    password: Text = "",
    role: Text = "",
) -> Response:
    check_csrf(request, csrf)
    try:
        staff.create_staff(db, username, display_name, password, role, created_by=member.id)
    except QianbaoError as error:
        return _staff_page(request, db, member, error)
    return redirect(request, "/admin/staff")


@router.post("/staff/{staff_id}/role")
def change_role(
    request: Request,
    db: DbDep,
    member: StaffDep,
    staff_id: uuid.UUID,
    csrf: CsrfField = "",
    role: Text = "",
) -> Response:
    check_csrf(request, csrf)
    try:
        db.run(lambda tx: staff.set_role(tx, member.id, staff_id, role))
    except QianbaoError as error:
        return _staff_page(request, db, member, error)
    return redirect(request, "/admin/staff")


@router.post("/staff/{staff_id}/disable")
def disable_staff(
    request: Request, db: DbDep, member: StaffDep, staff_id: uuid.UUID, csrf: CsrfField = ""
) -> Response:
    check_csrf(request, csrf)
    try:
        db.run(lambda tx: staff.disable(tx, member.id, staff_id))
    except QianbaoError as error:
        return _staff_page(request, db, member, error)
    return redirect(request, "/admin/staff")
