"""The back office: reviewers sign in and decide verification cases.

Staff sessions use their own cookie, sent only to /admin, never the customer one. Case
images are opened (decrypted) only here, one request per image, and are never cached.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Final

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from qianbao.db import Database
from qianbao.errors import NotFound, QianbaoError
from qianbao.i18n import N_
from qianbao.identity import service as identity
from qianbao.identity import staff
from qianbao.identity.phone import parse_mobile
from qianbao.identity.staff import Staff
from qianbao.risk import restrictions
from qianbao.verification import service as verification
from qianbao.web.pages import CsrfField, DbDep
from qianbao.web.render import check_csrf, page, redirect, secure_cookies

router = APIRouter(prefix="/admin", include_in_schema=False)
STAFF_COOKIE: Final = "qb_staff"
Text = Annotated[str, Form()]


def current_staff(request: Request, db: Database) -> Staff | None:
    token = request.cookies.get(STAFF_COOKIE)
    if not token:
        return None
    return db.run(lambda tx: staff.authenticate(tx, token))


@router.get("")
def admin_home(request: Request) -> Response:
    return redirect(request, "/admin/reviews")


@router.get("/login")
def login_page(request: Request) -> Response:
    return page(request, "admin_login.html")


@router.post("/login")
def login(
    request: Request, db: DbDep, csrf: CsrfField = "", username: Text = "", password: Text = ""
) -> Response:
    check_csrf(request, csrf)
    try:
        token, _ = staff.sign_in(db, username, password)
    except QianbaoError as error:
        return page(
            request, "admin_login.html", status=error.status, error=error, username=username
        )
    response = redirect(request, "/admin/reviews")
    response.set_cookie(
        STAFF_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=secure_cookies(request),
        path="/admin",
    )
    return response


@router.post("/logout")
def logout(request: Request, db: DbDep, csrf: CsrfField = "") -> Response:
    check_csrf(request, csrf)
    token = request.cookies.get(STAFF_COOKIE)
    if token:
        db.run(lambda tx: staff.sign_out(tx, token))
    response = redirect(request, "/admin/login")
    response.delete_cookie(STAFF_COOKIE, path="/admin")
    return response


@router.get("/reviews")
def review_queue(request: Request, db: DbDep) -> Response:
    member = current_staff(request, db)
    if member is None:
        return redirect(request, "/admin/login")
    cases = db.run(verification.review_queue)
    return page(
        request,
        "admin_queue.html",
        staff=member,
        cases=cases,
        review_reasons=verification.REVIEW_REASONS,
    )


@router.get("/reviews/{case_id}")
def review_case(request: Request, db: DbDep, case_id: uuid.UUID) -> Response:
    member = current_staff(request, db)
    if member is None:
        return redirect(request, "/admin/login")
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
def case_image(request: Request, db: DbDep, case_id: uuid.UUID, image_id: uuid.UUID) -> Response:
    member = current_staff(request, db)
    if member is None:
        raise NotFound("staff.not_signed_in", N_("Please sign in."))
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
    case_id: uuid.UUID,
    csrf: CsrfField = "",
    decision: Text = "",
    reason: Text = "",
    note: Text = "",
) -> Response:
    check_csrf(request, csrf)
    member = current_staff(request, db)
    if member is None:
        return redirect(request, "/admin/login")
    try:
        db.run(lambda tx: verification.decide(tx, member.id, case_id, decision, reason, note))
    except QianbaoError as error:
        return _case_page(request, db, member, case_id, error)
    return redirect(request, f"/admin/reviews/{case_id}")


# --- restrictions and appeals --------------------------------------------------------------


@router.get("/appeals")
def appeals_queue(request: Request, db: DbDep) -> Response:
    member = current_staff(request, db)
    if member is None:
        return redirect(request, "/admin/login")
    appeals = db.run(restrictions.pending_appeals)
    return page(
        request, "admin_appeals.html", staff=member, appeals=appeals, reasons=restrictions.REASONS
    )


@router.get("/appeals/{appeal_id}")
def appeal_page(request: Request, db: DbDep, appeal_id: uuid.UUID) -> Response:
    member = current_staff(request, db)
    if member is None:
        return redirect(request, "/admin/login")
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
    request: Request, db: DbDep, appeal_id: uuid.UUID, document_id: uuid.UUID
) -> Response:
    if current_staff(request, db) is None:
        raise NotFound("staff.not_signed_in", N_("Please sign in."))
    data = db.run(lambda tx: restrictions.appeal_document(tx, appeal_id, document_id))
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "no-store"})


@router.post("/appeals/{appeal_id}/decision")
def decide_appeal(
    request: Request,
    db: DbDep,
    appeal_id: uuid.UUID,
    csrf: CsrfField = "",
    decision: Text = "",
    note: Text = "",
) -> Response:
    check_csrf(request, csrf)
    member = current_staff(request, db)
    if member is None:
        return redirect(request, "/admin/login")
    lift = decision == "lift"
    try:
        db.run(lambda tx: restrictions.decide_appeal(tx, appeal_id, member.id, lift, note))
    except QianbaoError as error:
        return _appeal(request, db, member, appeal_id, error)
    return redirect(request, f"/admin/appeals/{appeal_id}")


@router.post("/restrictions")
def impose_restriction(
    request: Request,
    db: DbDep,
    csrf: CsrfField = "",
    phone: Text = "",
    kind: Text = "restricted",
    note: Text = "",
) -> Response:
    """A reviewer restricts or freezes an account by its mobile number, saying why."""
    check_csrf(request, csrf)
    member = current_staff(request, db)
    if member is None:
        return redirect(request, "/admin/login")
    try:
        number = parse_mobile(phone, "CN")
        if not note.strip():
            raise QianbaoError("restriction.note_required", N_("Say why in the note."), status=422)
        db.run(
            lambda tx: restrictions.impose(
                tx,
                identity.account_by_phone(tx, number).id,
                kind,
                "reviewer",
                imposed_by=f"staff:{member.id}",
                note=note,
            )
        )
    except QianbaoError as error:
        appeals = db.run(restrictions.pending_appeals)
        return page(
            request,
            "admin_appeals.html",
            status=error.status,
            staff=member,
            appeals=appeals,
            reasons=restrictions.REASONS,
            error=error,
        )
    return redirect(request, "/admin/appeals")
