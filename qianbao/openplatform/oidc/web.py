"""Log in with Qianbao's pages: the authorization endpoint (sign-in through the person's
own session, the consent page), the person's authorized apps, and the back office's
shop registry.

The authorization endpoint answers anyone: a person not signed in is sent to Qianbao's
sign-in and comes back here with the same request; ``prompt=none`` answers
``login_required`` or ``consent_required`` to the shop instead. ``openid`` alone never
asks (Alipay's auth_base); any other scope asks once and again only when the shop asks
for more.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, Final
from urllib.parse import urlencode, urlsplit

from authlib.oauth2 import OAuth2Error
from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from qianbao import deps
from qianbao.db import Database, Tx
from qianbao.errors import InvalidInput, NotAuthenticated, QianbaoError
from qianbao.gate import signed_in_staff
from qianbao.i18n import N_
from qianbao.identity import service as identity
from qianbao.identity.staff import Staff
from qianbao.openplatform.oidc import claims as verified
from qianbao.openplatform.oidc import service
from qianbao.openplatform.oidc.api import oauth_request
from qianbao.openplatform.oidc.server import Person, Provider
from qianbao.openplatform.oidc.server import Request as OAuthRequest
from qianbao.web import after_login
from qianbao.web.pages import CsrfField, DbDep, signed_in
from qianbao.web.render import check_csrf, page, redirect

router = APIRouter(include_in_schema=False)
Text = Annotated[str, Form()]
StaffDep = Annotated[Staff, Depends(signed_in_staff)]
AUTHORIZE: Final = "/oauth2/authorize"
# Form fields of the consent page that are ours, not the shop's request.
_OWN_FIELDS: Final = frozenset({"csrf", "decision"})

SCOPE_LABELS: Final = {
    "profile": N_("Your nickname (your masked mobile number) and your language"),
    "phone": N_("Your mobile number"),
    "email": N_("Your email address (if you have confirmed one)"),
    "identity": N_("Facts from your real-name verification, listed below"),
}
CLAIM_LABELS: Final = {
    "given_name": N_("Your given names, as on your passport"),
    "family_name": N_("Your surname, as on your passport"),
    "birthdate": N_("Your date of birth"),
    "nationalities": N_("Your nationality"),
    "identity_verified": N_("That your identity is verified (yes or no only)"),
    "age_over_18": N_("Whether you are over 18 (yes or no, not your date of birth)"),
}
EVIDENCE_LABEL: Final = N_(
    "How you were verified: the route (passport photo page, passport chip or bank card), "
    "when, the passport's issuing country and expiry date, and the checks made"
)


@dataclass
class Consent:
    """What the consent page shows, and the request it answers."""

    shop: service.ShopView
    scopes: list[str]
    claims: list[str]
    evidence: bool
    verified: bool
    fields: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Outcome:
    redirect_to: str | None = None
    consent: Consent | None = None
    sign_in: bool = False


def _person(tx: Tx, token: str) -> Person | None:
    if not token:
        return None
    try:
        session = identity.authenticate(tx, token)
    except NotAuthenticated:
        return None
    sessions = identity.list_sessions(tx, session.account.id, session.session_id)
    signed_in_at = next((s.created_at for s in sessions if s.is_current), tx.now())
    return Person(session.account.id, signed_in_at)


def _authorize(tx: Tx, request: OAuthRequest, token: str, decision: str | None) -> Outcome:
    provider = Provider(tx)
    person = _person(tx, token)
    try:
        grant = provider.get_consent_grant(request, end_user=person)
    except OAuth2Error as error:
        target = provider.error_redirect(error)
        if target is None:
            raise InvalidInput(
                "oidc.invalid_request",
                N_(
                    "The shop sent a sign-in request Qianbao cannot accept. Go back to the shop "
                    "and try again."
                ),
                details={"error": error.error, "description": error.description or ""},
                status=400,  # as OAuth answers a request it cannot redirect (RFC 6749 4.1.2.1)
            ) from error
        return Outcome(redirect_to=target)
    if person is None:
        return Outcome(sign_in=True)
    client_id = request.client.client_id
    claims_request = verified.parse_claims_request(request.payload.data.get("claims"))
    names = verified.requested_claim_names(claims_request)
    scope = request.scope or ""
    prompts = (request.payload.data.get("prompt") or "").split()
    if decision == "deny":
        return _answer(provider, request, grant, None)
    if decision == "allow":
        service.record_consent(tx, person.id, client_id, scope, names)
    elif "consent" in prompts or service.needs_consent(tx, person.id, client_id, scope, names):
        if "none" in prompts:
            return _answer_error(provider, grant, "consent_required")
        return Outcome(consent=_consent(tx, request, person, names, claims_request))
    return _answer(provider, request, grant, person)


def _answer(
    provider: Provider, request: OAuthRequest, grant: Any, person: Person | None
) -> Outcome:
    answer = provider.create_authorization_response(request, grant_user=person, grant=grant)
    return Outcome(redirect_to=answer.location)


def _answer_error(provider: Provider, grant: Any, code: str) -> Outcome:
    error = OAuth2Error(redirect_uri=grant.redirect_uri, state=grant.request.payload.state)
    error.error = code
    return Outcome(redirect_to=provider.error_redirect(error))


def _consent(
    tx: Tx,
    request: OAuthRequest,
    person: Person,
    names: frozenset[str],
    claims_request: dict[str, Any],
) -> Consent:
    shop_row = service.find_shop(tx, request.client.client_id)
    assert shop_row is not None
    scopes = [name for name in service.CONSENTED_SCOPES if name in (request.scope or "").split()]
    evidence = any(
        set(item.get("verification") or {}) - {"trust_framework"}
        for target in ("userinfo", "id_token")
        for item in _as_list((claims_request.get(target) or {}).get("verified_claims"))
    )
    return Consent(
        shop=service.shop_view(shop_row),
        scopes=scopes,
        claims=[name for name in verified.VERIFIED_CLAIMS if name in names]
        if "identity" in scopes
        else [],
        evidence=evidence and "identity" in scopes,
        verified=service.identity_facts(tx, person.id) is not None,
        fields=[(k, v) for k, v in request.pairs() if k not in _OWN_FIELDS],
    )


def _as_list(value: Any) -> list[dict[str, Any]]:
    if not value:
        return []
    return value if isinstance(value, list) else [value]


async def _respond(request: Request, decision: str | None) -> Response:
    db = deps.database(request)
    found = await oauth_request(request)
    token = request.cookies.get(deps.SESSION_COOKIE, "")
    outcome = await run_in_threadpool(db.run, lambda tx: _authorize(tx, found, token, decision))
    if outcome.sign_in:
        query = urlencode([(k, v) for k, v in found.pairs() if k not in _OWN_FIELDS])
        return after_login.to_login(request, f"{AUTHORIZE}?{query}")
    if outcome.consent is not None:
        signed_in(request, db)  # the page speaks the person's language
        return _consent_page(request, outcome.consent)
    assert outcome.redirect_to is not None
    if _after_own_form(request, outcome.redirect_to):
        return page(request, "oidc_continue.html", target=outcome.redirect_to)
    return RedirectResponse(outcome.redirect_to, status_code=302 if decision is None else 303)


def _after_own_form(request: Request, target: str) -> bool:
    """Whether a browser came here from one of our own pages (the sign-in form, the
    consent form) and is sent to another origin. Browsers check a form's
    ``form-action 'self'`` policy on every redirect that follows it, so the shop is
    reached through a page that moves on by itself instead."""
    came_from_us = request.headers.get("sec-fetch-site") == "same-origin"
    return came_from_us and _origin(target) != _origin(str(request.url))


def _consent_page(request: Request, consent: Consent) -> Response:
    response = page(
        request,
        "oidc_consent.html",
        consent=consent,
        scope_labels=SCOPE_LABELS,
        claim_labels=CLAIM_LABELS,
        evidence_label=EVIDENCE_LABEL,
    )
    # The answer leaves for the shop's redirect URI, and the logo is the shop's: this
    # page's policy allows exactly those two origins beside our own.
    redirect_uri = dict(consent.fields).get("redirect_uri", "")
    form_origin = _origin(redirect_uri)
    logo_origin = _origin(consent.shop.logo_url)
    response.headers["Content-Security-Policy"] = (
        f"default-src 'self'; img-src 'self' data: {logo_origin}; style-src 'self'; "
        f"script-src 'self'; frame-ancestors 'none'; form-action 'self' {form_origin}"
    ).replace("  ", " ")
    return response


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme in ("http", "https") else ""


@router.get(AUTHORIZE)
async def authorize(request: Request) -> Response:
    """The authorization endpoint (OpenID Connect Core 3.1.2)."""
    return await _respond(request, None)


@router.post(AUTHORIZE)
async def authorize_decision(request: Request) -> Response:
    """The consent page's answer: allow or deny, with the shop's request carried along."""
    form = await request.form()
    check_csrf(request, str(form.get("csrf") or ""))
    decision = str(form.get("decision") or "")
    return await _respond(request, "allow" if decision == "allow" else "deny")


# --- the person's authorized apps -------------------------------------------------------------


@router.get("/me/authorized-apps")
def authorized_apps_page(request: Request, db: DbDep) -> Response:
    session = signed_in(request, db)
    if session is None:
        return redirect(request, "/")
    apps = db.run(lambda tx: service.authorized_apps(tx, session.account.id))
    return page(
        request,
        "oidc_authorized_apps.html",
        account=session.account,
        tab="me",
        apps=apps,
        scope_labels=SCOPE_LABELS,
        claim_labels=CLAIM_LABELS,
    )


@router.post("/me/authorized-apps/{client_id}/revoke")
def revoke_app(request: Request, db: DbDep, client_id: str, csrf: CsrfField = "") -> Response:
    check_csrf(request, csrf)
    session = signed_in(request, db)
    if session is None:
        return redirect(request, "/")
    db.run(lambda tx: service.revoke_app(tx, session.account.id, client_id))
    return redirect(request, "/me/authorized-apps")


# --- the back office: shops -----------------------------------------------------------------


@dataclass(frozen=True)
class NewShop:
    """What the form gave back after a shop was added: its secret, shown this once."""

    client_id: str
    secret: str | None


def _shops_page(
    request: Request,
    db: Database,
    member: Staff,
    error: QianbaoError | None = None,
    added: NewShop | None = None,
) -> Response:
    return page(
        request,
        "admin_shops.html",
        status=error.status if error else 200,
        error=error,
        staff=member,
        shops=db.run(service.shops),
        added=added,
    )


@router.get("/admin/shops")
def shops_page(request: Request, db: DbDep, member: StaffDep) -> Response:
    return _shops_page(request, db, member)


@router.post("/admin/shops")
def add_shop(
    request: Request,
    db: DbDep,
    member: StaffDep,
    csrf: CsrfField = "",
    name_en: Text = "",
    name_zh: Text = "",
    logo_url: Text = "",
    redirect_uris: Text = "",
    auth_method: Text = "client_secret_basic",
    jwks: Text = "",
) -> Response:
    check_csrf(request, csrf)
    uris = [line.strip() for line in redirect_uris.splitlines() if line.strip()]
    try:
        shop, secret = db.run(
            lambda tx: service.register_shop(
                tx,
                name_en=name_en,
                name_zh=name_zh,
                redirect_uris=uris,
                auth_method=auth_method,
                logo_url=logo_url,
                jwks=jwks or None,
                registered_by=member.id,
            )
        )
    except QianbaoError as error:
        return _shops_page(request, db, member, error)
    return _shops_page(request, db, member, added=NewShop(shop.client_id, secret))
