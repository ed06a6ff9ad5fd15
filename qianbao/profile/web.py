"""Pages of personal information: the overview (Incomplete / Complete), the occupation
type list and the address form. They call the same service functions as the API and
work without JavaScript."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from qianbao.errors import QianbaoError
from qianbao.i18n import N_
from qianbao.identity.service import CurrentSession
from qianbao.profile import regions, service
from qianbao.profile.models import STREET_MAX_LENGTH
from qianbao.web.pages import CsrfField, DbDep, signed_in_or_home
from qianbao.web.render import check_csrf, page, redirect

router = APIRouter(include_in_schema=False)
Text = Annotated[str, Form()]
OVERVIEW = "/me/personal-info"
SAVED = {"occupation": N_("Occupation type saved."), "address": N_("Address saved.")}


@router.get(OVERVIEW)
def personal_info_page(request: Request, db: DbDep, saved: str | None = None) -> Response:
    session = signed_in_or_home(request, db)
    if isinstance(session, Response):
        return session
    details = db.run(lambda tx: service.get_personal_info(tx, session.account.id))
    return page(
        request,
        "personal_info.html",
        account=session.account,
        tab="me",
        info=details,
        status_label=service.status_label(details.complete),
        notice=SAVED.get(saved or ""),
    )


# --- occupation type -------------------------------------------------------------------


def _occupation_page(
    request: Request,
    session: CurrentSession,
    selected: str | None,
    error: QianbaoError | None = None,
) -> Response:
    return page(
        request,
        "personal_info_occupation.html",
        status=error.status if error else 200,
        error=error,
        account=session.account,
        tab="me",
        occupations=[(o.code, o.label()) for o in service.occupations()],
        selected=selected,
    )


@router.get(f"{OVERVIEW}/occupation")
def personal_info_occupation_form(request: Request, db: DbDep) -> Response:
    session = signed_in_or_home(request, db)
    if isinstance(session, Response):
        return session
    details = db.run(lambda tx: service.get_personal_info(tx, session.account.id))
    chosen = details.occupation.code if details.occupation else None
    return _occupation_page(request, session, chosen)


@router.post(f"{OVERVIEW}/occupation")
def personal_info_save_occupation(
    request: Request, db: DbDep, csrf: CsrfField = "", occupation: Text = ""
) -> Response:
    check_csrf(request, csrf)
    session = signed_in_or_home(request, db)
    if isinstance(session, Response):
        return session
    try:
        db.run(lambda tx: service.set_occupation(tx, session.account.id, occupation))
    except QianbaoError as error:
        return _occupation_page(request, session, occupation, error)
    return redirect(request, f"{OVERVIEW}?saved=occupation")


# --- address ---------------------------------------------------------------------------


def _address_page(
    request: Request,
    session: CurrentSession,
    state: str,
    city: str,
    street: str,
    error: QianbaoError | None = None,
) -> Response:
    return page(
        request,
        "personal_info_address.html",
        status=error.status if error else 200,
        error=error,
        account=session.account,
        tab="me",
        states=regions.states(),
        overseas=regions.OVERSEAS,
        selected_state=state,
        selected_city=city,
        street=street,
        street_max_length=STREET_MAX_LENGTH,
        error_field=error.details.get("field") if error else None,
    )


@router.get(f"{OVERVIEW}/address")
def personal_info_address_form(request: Request, db: DbDep) -> Response:
    session = signed_in_or_home(request, db)
    if isinstance(session, Response):
        return session
    details = db.run(lambda tx: service.get_personal_info(tx, session.account.id))
    address = details.address
    if address is None:
        return _address_page(request, session, "", "", "")
    return _address_page(request, session, address.state.code, address.city.code, address.street)


@router.post(f"{OVERVIEW}/address")
def personal_info_save_address(
    request: Request,
    db: DbDep,
    csrf: CsrfField = "",
    state: Text = "",
    city: Text = "",
    street: Text = "",
) -> Response:
    check_csrf(request, csrf)
    session = signed_in_or_home(request, db)
    if isinstance(session, Response):
        return session
    try:
        db.run(lambda tx: service.set_address(tx, session.account.id, state, city, street))
    except QianbaoError as error:
        return _address_page(request, session, state, city, street, error)
    return redirect(request, f"{OVERVIEW}?saved=address")
