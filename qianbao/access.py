"""Who may call each route: THE table, one line per route, and the staff roles.

Every route of the app (API operations, pages, the back office, the docs) is declared
here by method and path template, exactly as FastAPI lists it (``GET
/api/v1/orders/{order_id}/cashier``). ``qianbao.gate`` enforces the declaration before
any handler runs, so a handler cannot forget to check; a route with no line here makes
``create_app`` fail at startup, naming the route and the line to add.

The audiences:

- ``ANYONE``: no sign-in (the first page, sign-up, the docs, a shop's demo pages).
- ``PERSON``: a signed-in person (the API's bearer token, the pages' session cookie).
  Whose object a path names (an order, a transfer, a session) is the service's to
  decide: another person's object answers the same 404 as an unknown one.
- ``staff(...)``: a signed-in staff member holding one of the roles named: the staff
  cookie on the back-office pages, a staff bearer token on ``/api/v1/staff/...``.
  ``ANY_STAFF`` is any of them.
- ``MERCHANT``: a signed-in merchant user (the merchant portal's own cookie, sent only
  to ``/merchant``; a merchant bearer token on ``/api/v1/merchant/...``). A trade the
  path names is the service's to check: another merchant's answers the same 404 as an
  unknown one.
- ``OWN_TOKEN``: a machine with a credential of its own, checked by the handler (the
  Prometheus scraper's ``QIANBAO_METRICS_TOKEN``); nobody's session opens it.

The roles (a staff member holds one):

- **reviewer**: verification cases (the review queue, approve or reject).
- **risk_officer**: restrictions and freezes (impose, lift, the appeals against them);
  a freeze holding more than ``QIANBAO_FREEZE_TWO_PERSON_RELEASE_ABOVE`` needs a second,
  different risk officer to release it.
- **support**: read-only lookup of a person, their verification state and their money
  timeline; nothing that changes anything.
- **admin**: staff (create, change role, disable), the shops that may use Log in with
  Qianbao, merchants' applications and portal users, and the audit log; no cases, no
  freezes, no money.

This module is kernel-level: it imports no domain (only i18n's N_), so that any domain
may read it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Final, Literal

from qianbao.i18n import N_


class Role(StrEnum):
    REVIEWER = "reviewer"
    RISK_OFFICER = "risk_officer"
    SUPPORT = "support"
    ADMIN = "admin"


ROLES: Final = tuple(role.value for role in Role)
ROLE_NAMES: Final[Mapping[str, str]] = {
    Role.REVIEWER: N_("Reviewer"),
    Role.RISK_OFFICER: N_("Risk officer"),
    Role.SUPPORT: N_("Support"),
    Role.ADMIN: N_("Administrator"),
}


@dataclass(frozen=True)
class Who:
    """The audience of one route."""

    kind: Literal["anyone", "person", "staff", "merchant", "own_token"]
    roles: frozenset[Role] = frozenset()
    # A page a link leads to (pay-for-me, request money): opened signed out, it is kept
    # through the login and opened again after it.
    comes_back: bool = False
    # A money operation: its use case checks the session again in its own transaction
    # (``qianbao.db.guard_transactions``), so the gate may take the session from the cache.
    checks_session_in_transaction: bool = False

    def admits_role(self, role: str) -> bool:
        return self.kind == "staff" and role in self.roles

    def describe(self) -> str:
        if self.kind != "staff":
            return self.kind
        return "staff: " + ", ".join(sorted(self.roles))


def staff(*roles: Role) -> Who:
    return Who("staff", frozenset(roles))


ANYONE: Final = Who("anyone")
OWN_TOKEN: Final = Who("own_token")
PERSON: Final = Who("person")
MERCHANT: Final = Who("merchant")
PERSON_COMES_BACK: Final = Who("person", comes_back=True)
# Payments, transfers, top-ups: the session is checked inside the money transaction.
PERSON_PAYING: Final = Who("person", checks_session_in_transaction=True)
ANY_STAFF: Final = staff(*Role)
REVIEWER: Final = staff(Role.REVIEWER)
RISK: Final = staff(Role.RISK_OFFICER)
SUPPORT: Final = staff(Role.SUPPORT, Role.RISK_OFFICER)  # risk officers look people up too
ADMIN: Final = staff(Role.ADMIN)

# Which staff page each role lands on after signing in.
STAFF_HOME: Final[Mapping[Role, str]] = {
    Role.REVIEWER: "/admin/reviews",
    Role.RISK_OFFICER: "/admin/restrictions",
    Role.SUPPORT: "/admin/people",
    Role.ADMIN: "/admin/staff",
}

# fmt: off
ROUTES: Final[Mapping[str, Who]] = {
    # --- the documents and operations ---------------------------------------------------
    "GET /openapi.json": ANYONE,
    "GET /docs": ANYONE,
    "GET /docs/oauth2-redirect": ANYONE,
    "GET /redoc": ANYONE,
    "GET /static": ANYONE,
    "GET /healthz": ANYONE,
    "GET /readyz": ANYONE,
    "GET /metrics": OWN_TOKEN,  # only when QIANBAO_METRICS_TOKEN is set
    # --- the trade API: a shop's request signed with its app's key, checked by the handler
    "GET /gateway.do": OWN_TOKEN,  # page pay: the person's browser carries the signed request
    "POST /gateway.do": OWN_TOKEN,
    "GET /gateway/bills/{token}": OWN_TOKEN,  # the link's keyed hash is its credential
    "GET /gateway/platform-keys": ANYONE,  # public keys, published like a JWKS
    # --- identity API -------------------------------------------------------------------
    "GET /api/v1/calling-codes": ANYONE,
    "GET /api/v1/agreement": ANYONE,
    "POST /api/v1/auth/number-check": ANYONE,
    "POST /api/v1/auth/sms-codes": ANYONE,
    "POST /api/v1/auth/sessions": ANYONE,
    "POST /api/v1/auth/password-sessions": ANYONE,
    # A password sign-in from a new country finishes with the SMS code (a signed challenge).
    "POST /api/v1/auth/password-sessions/sms": ANYONE,
    "POST /api/v1/auth/password-sessions/sms-codes": ANYONE,
    # The new-device notice's link ends that one session without a sign-in (signed token).
    "POST /api/v1/auth/session-ends": ANYONE,
    "POST /api/v1/password-strength": ANYONE,
    "DELETE /api/v1/auth/session": PERSON,
    "GET /api/v1/me": PERSON,
    "PUT /api/v1/me/language": PERSON,
    "PUT /api/v1/me/time-zone": PERSON,
    "GET /api/v1/me/sessions": PERSON,
    "DELETE /api/v1/me/sessions": PERSON,
    "DELETE /api/v1/me/sessions/{session_id}": PERSON,
    "GET /api/v1/me/security": PERSON,
    "POST /api/v1/me/security-codes": PERSON,
    "PUT /api/v1/me/login-password": PERSON,
    "PUT /api/v1/me/payment-password": PERSON,
    "POST /api/v1/me/payment-password/check": PERSON,
    "POST /api/v1/me/email": PERSON,
    "POST /api/v1/me/email/confirm": PERSON,
    "GET /api/v1/me/level": PERSON,
    # --- demo (each answers only in demo mode) -------------------------------------------
    "GET /api/v1/demo/outbox": ANYONE,
    "GET /demo/outbox": ANYONE,
    "POST /api/v1/demo/shop/orders": ANYONE,
    "POST /api/v1/demo/shop/orders/{order_id}/refunds": ANYONE,
    "POST /api/v1/demo/tour-pass/expire": ANYONE,
    "GET /demo/shop": ANYONE,
    "POST /demo/shop/orders": ANYONE,
    "POST /demo/shop/orders/{order_id}/refunds": ANYONE,
    # --- profile API --------------------------------------------------------------------
    "GET /api/v1/occupations": ANYONE,
    "GET /api/v1/regions": ANYONE,
    "GET /api/v1/regions/{state}/cities": ANYONE,
    "GET /api/v1/me/profile": PERSON,
    "PUT /api/v1/me/profile/occupation": PERSON,
    "PUT /api/v1/me/profile/address": PERSON,
    # --- first page, sign-up and sign-in pages ----------------------------------------------
    "GET /": ANYONE,
    "POST /start": ANYONE,
    "GET /signup": ANYONE,
    "POST /signup": ANYONE,
    "GET /code": ANYONE,
    "POST /code": ANYONE,
    "POST /code/resend": ANYONE,
    "POST /language": ANYONE,
    "POST /me/profile/time-zone": PERSON,
    "GET /login/password": ANYONE,
    "POST /login/password": ANYONE,
    "POST /login/password/code": ANYONE,
    "POST /login/password/code/resend": ANYONE,
    "GET /sessions/end/{token}": ANYONE,
    "POST /sessions/end/{token}": ANYONE,
    "POST /logout": ANYONE,  # ends whatever session the cookie names, if any
    # --- Home, Me and the account pages ---------------------------------------------------
    "GET /home": PERSON,
    "GET /me": PERSON,
    "GET /me/profile": PERSON,
    "GET /me/certification": PERSON,
    "GET /me/level": PERSON,
    "GET /me/sessions": PERSON,
    "POST /me/sessions/{session_id:uuid}/revoke": PERSON,
    "POST /me/sessions/others/revoke": PERSON,
    "GET /me/settings": PERSON,
    "GET /me/security": PERSON,
    "GET /me/security/login-password": PERSON,
    "GET /me/security/payment-password": PERSON,
    "GET /me/security/email": PERSON,
    "POST /me/security/code": PERSON,
    "POST /me/security/login-password": PERSON,
    "POST /me/security/payment-password": PERSON,
    "POST /me/security/email": PERSON,
    "POST /me/security/email/confirm": PERSON,
    "GET /me/personal-info": PERSON,
    "GET /me/personal-info/occupation": PERSON,
    "POST /me/personal-info/occupation": PERSON,
    "GET /me/personal-info/address": PERSON,
    "POST /me/personal-info/address": PERSON,
    # --- real-name verification -----------------------------------------------------------
    "GET /api/v1/verification": PERSON,
    "POST /api/v1/verification/passport-face": PERSON,
    "POST /api/v1/verification/passport-face/cancel": PERSON,
    "POST /api/v1/verification/passport-face/{case_id}/photo-page": PERSON,
    "POST /api/v1/verification/passport-face/{case_id}/confirm": PERSON,
    "POST /api/v1/verification/passport-face/{case_id}/retake": PERSON,
    "POST /api/v1/verification/passport-face/{case_id}/challenge": PERSON,
    "POST /api/v1/verification/passport-face/{case_id}/face": PERSON,
    "POST /api/v1/verification/passport-chip": PERSON,
    "POST /api/v1/verification/passport-chip/{case_id}/chip-authentication": PERSON,
    "POST /api/v1/verification/passport-chip/{case_id}/chip": PERSON,
    "POST /api/v1/verification/cases/{case_id}/confirm": PERSON,
    "POST /api/v1/verification/cases/{case_id}/retake": PERSON,
    "POST /api/v1/verification/cases/{case_id}/challenge": PERSON,
    "POST /api/v1/verification/cases/{case_id}/face": PERSON,
    "POST /api/v1/verification/face-check": PERSON,
    "POST /api/v1/verification/face-check/{check_id}": PERSON,
    "GET /api/v1/verification/identity": PERSON,
    "GET /me/verify": PERSON,
    "POST /me/verify/passport-face/start": PERSON,
    "GET /me/verify/passport-face": PERSON,
    "POST /me/verify/passport-face/photo-page": PERSON,
    "POST /me/verify/passport-face/confirm": PERSON,
    "POST /me/verify/passport-face/retake": PERSON,
    "POST /me/verify/passport-face/challenge": PERSON,
    "POST /me/verify/passport-face/face": PERSON,
    "POST /me/verify/passport-face/cancel": PERSON,
    "GET /me/verify/passport-chip": PERSON,
    "POST /me/verify/passport-chip/start": PERSON,
    "GET /me/security/face-check": PERSON,
    "POST /me/security/face-check": PERSON,
    "POST /me/security/face-check/{check_id}": PERSON,
    # --- funding ------------------------------------------------------------------------
    "POST /api/v1/funding/bank-cards/checks": PERSON,
    "POST /api/v1/funding/bank-cards/checks/{check_id}/confirm": PERSON,
    "GET /api/v1/funding/bank-cards": PERSON,
    "GET /me/verify/bank-card": PERSON,
    "POST /me/verify/bank-card": PERSON,
    "POST /me/verify/bank-card/{check_id}/confirm": PERSON,
    # --- wallet, cashier, history ----------------------------------------------------------
    "GET /api/v1/wallet": PERSON,
    "POST /api/v1/wallet/cards": PERSON,
    "POST /api/v1/wallet/cards/{card_id}/verification": PERSON,
    "GET /api/v1/orders/{order_id}/cashier": PERSON,
    "POST /api/v1/orders/{order_id}/pay": PERSON_PAYING,
    "POST /api/v1/orders/{order_id}/pay/finish": PERSON,
    "GET /api/v1/wallet/payments": PERSON,
    "GET /api/v1/wallet/payments/{order_id}": PERSON,
    "GET /api/v1/wallet/history.csv": PERSON,
    "GET /api/v1/wallet/restriction": PERSON,
    "POST /api/v1/wallet/appeals": PERSON,
    "GET /wallet": PERSON,
    "GET /wallet/appeal": PERSON,
    "POST /wallet/appeal": PERSON,
    "GET /wallet/history": PERSON,
    "GET /wallet/history.csv": PERSON,
    "GET /wallet/payments/{order_id}": PERSON,
    "GET /wallet/cards/new": PERSON,
    "POST /wallet/cards": PERSON,
    "GET /wallet/cards/{card_id}/verified": PERSON,
    # A shop's QR code or page pay (the trade API) brings people here signed out too.
    "GET /cashier/{order_id}": PERSON_COMES_BACK,
    "POST /api/v1/wallet/payment-codes": PERSON,
    # --- money codes and Scan -----------------------------------------------------------
    "GET /api/v1/wallet/payment-codes/limit": PERSON,
    "PUT /api/v1/wallet/payment-codes/limit": PERSON,
    "GET /wallet/payment-code": PERSON,
    "POST /wallet/payment-code/limit": PERSON,
    "GET /api/v1/wallet/transfers/receive-code": PERSON,
    "POST /api/v1/wallet/transfers/receive-code/reset": PERSON,
    "GET /wallet/receive-code": PERSON,
    "POST /wallet/receive-code/reset": PERSON,
    # A phone's own camera opens a receive code's URL signed out too.
    "GET /wallet/receive/{token}": PERSON_COMES_BACK,
    "POST /api/v1/wallet/scan": PERSON,
    "GET /wallet/scan": PERSON,
    "POST /wallet/scan": PERSON,
    "POST /cashier/{order_id}": PERSON,
    "GET /cashier/{order_id}/finish": PERSON,
    # The sandbox card network's 3-D Secure page: the card issuer's, not ours.
    "GET /sandbox/3ds/{authorization_id}": ANYONE,
    "POST /sandbox/3ds/{authorization_id}": ANYONE,
    # --- Tour Pass ----------------------------------------------------------------------
    "GET /api/v1/tour-pass": PERSON,
    "POST /api/v1/tour-pass": PERSON,
    "GET /api/v1/tour-pass/top-up-quote": PERSON,
    "POST /api/v1/tour-pass/top-ups": PERSON_PAYING,
    "POST /api/v1/tour-pass/top-ups/{top_up_id}/finish": PERSON,
    "POST /api/v1/tour-pass/close": PERSON,
    "POST /api/v1/orders/{order_id}/pay/tour-pass": PERSON_PAYING,
    "GET /wallet/tour-pass": PERSON,
    "POST /wallet/tour-pass/open": PERSON,
    "POST /wallet/tour-pass/quote": PERSON,
    "POST /wallet/tour-pass/top-ups": PERSON,
    "GET /wallet/tour-pass/top-ups/{top_up_id}/finish": PERSON,
    "POST /wallet/tour-pass/close": PERSON,
    "POST /wallet/tour-pass/demo-expire": PERSON,
    # --- transfers ----------------------------------------------------------------------
    "GET /api/v1/wallet/transfers/allowance": PERSON,
    "POST /api/v1/wallet/transfers/quote": PERSON,
    "POST /api/v1/wallet/transfers": PERSON_PAYING,
    "GET /api/v1/wallet/transfers": PERSON,
    "GET /api/v1/wallet/transfers/history": PERSON,
    "GET /api/v1/wallet/transfers/request-link": PERSON,
    "GET /api/v1/wallet/transfers/{transfer_id}": PERSON,
    "GET /wallet/transfer": PERSON_COMES_BACK,
    "POST /wallet/transfer/review": PERSON,
    "POST /wallet/transfer": PERSON,
    "GET /wallet/transfers/{transfer_id}": PERSON,
    "GET /wallet/request": PERSON,
    # --- pay for me ---------------------------------------------------------------------
    "POST /api/v1/orders/{order_id}/pay-for-me": PERSON,
    "GET /api/v1/orders/{order_id}/pay-for-me": PERSON,
    "GET /api/v1/pay-for-me/{token}": PERSON,
    "POST /api/v1/pay-for-me/{token}/pay": PERSON_PAYING,
    "POST /api/v1/pay-for-me/{token}/pay/finish": PERSON,
    "POST /cashier/{order_id}/pay-for-me": PERSON,
    "GET /pay-for-me/{token}": PERSON_COMES_BACK,
    "POST /pay-for-me/{token}": PERSON_COMES_BACK,
    "GET /pay-for-me/{token}/finish": PERSON_COMES_BACK,
    # --- store top-up codes ------------------------------------------------------------
    "POST /api/v1/wallet/topup-codes/redemptions": PERSON,
    "GET /api/v1/wallet/topup-codes/redemptions": PERSON,
    "GET /wallet/topup-code": PERSON,
    "POST /wallet/topup-code": PERSON,
    # --- Log in with Qianbao (openplatform/oidc) ------------------------------------------
    "GET /.well-known/openid-configuration": ANYONE,
    "GET /oauth2/jwks": ANYONE,
    # The authorization endpoint reads the person's session cookie itself: signed out, it
    # sends them to sign in and back, or answers login_required to the shop (prompt=none).
    "GET /oauth2/authorize": ANYONE,
    "POST /oauth2/authorize": ANYONE,  # the consent page's answer: session and CSRF checked
    # The shops' backends: client authentication (secret or private_key_jwt) or the
    # bearer access token, checked by the handler (Authlib).
    "POST /oauth2/token": OWN_TOKEN,
    "GET /oauth2/userinfo": OWN_TOKEN,
    "POST /oauth2/userinfo": OWN_TOKEN,
    "POST /oauth2/revoke": OWN_TOKEN,
    "POST /oauth2/introspect": OWN_TOKEN,
    "GET /api/v1/me/authorized-apps": PERSON,
    "DELETE /api/v1/me/authorized-apps/{client_id}": PERSON,
    "GET /me/authorized-apps": PERSON,
    "POST /me/authorized-apps/{client_id}/revoke": PERSON,
    # --- the back office ----------------------------------------------------------------
    "GET /admin/login": ANYONE,
    "POST /admin/login": ANYONE,
    "POST /admin/logout": ANYONE,  # ends whatever staff session the cookie names
    "GET /admin": ANY_STAFF,
    "GET /admin/reviews": REVIEWER,
    "GET /admin/reviews/{case_id}": REVIEWER,
    "GET /admin/reviews/{case_id}/images/{image_id}": REVIEWER,
    "POST /admin/reviews/{case_id}/decision": REVIEWER,
    "GET /admin/appeals": RISK,
    "GET /admin/appeals/{appeal_id}": RISK,
    "GET /admin/appeals/{appeal_id}/documents/{document_id}": RISK,
    "POST /admin/appeals/{appeal_id}/decision": RISK,
    "GET /admin/restrictions": RISK,
    "POST /admin/restrictions": RISK,
    "POST /admin/restrictions/{restriction_id}/release": RISK,
    "GET /admin/people": SUPPORT,
    "GET /admin/staff": ADMIN,
    "POST /admin/staff": ADMIN,
    "POST /admin/staff/{staff_id}/role": ADMIN,
    "POST /admin/staff/{staff_id}/disable": ADMIN,
    # --- the staff API: the back office's actions, with a staff bearer token -------------
    "POST /api/v1/staff/sessions": ANYONE,
    "DELETE /api/v1/staff/session": ANY_STAFF,
    "GET /api/v1/staff/me": ANY_STAFF,
    "GET /api/v1/staff/reviews": REVIEWER,
    "GET /api/v1/staff/reviews/{case_id}": REVIEWER,
    "GET /api/v1/staff/reviews/{case_id}/images/{image_id}": REVIEWER,
    "POST /api/v1/staff/reviews/{case_id}/decision": REVIEWER,
    "GET /api/v1/staff/restrictions": RISK,
    "POST /api/v1/staff/restrictions": RISK,
    "POST /api/v1/staff/restrictions/{restriction_id}/release": RISK,
    "GET /api/v1/staff/appeals": RISK,
    "GET /api/v1/staff/appeals/{appeal_id}": RISK,
    "GET /api/v1/staff/appeals/{appeal_id}/documents/{document_id}": RISK,
    "POST /api/v1/staff/appeals/{appeal_id}/decision": RISK,
    "GET /api/v1/staff/people": SUPPORT,
    "GET /api/v1/staff/members": ADMIN,
    "POST /api/v1/staff/members": ADMIN,
    "PUT /api/v1/staff/members/{staff_id}/role": ADMIN,
    "POST /api/v1/staff/members/{staff_id}/disable": ADMIN,
    "GET /api/v1/staff/audit-events": ADMIN,
    "GET /admin/shops": ADMIN,
    "POST /admin/shops": ADMIN,
    "GET /admin/merchants": ADMIN,
    "POST /admin/merchants/applications/{application_id}/approve": ADMIN,
    "POST /admin/merchants/applications/{application_id}/reject": ADMIN,
    "POST /admin/merchants/users": ADMIN,
    "GET /api/v1/staff/merchant-applications": ADMIN,
    "POST /api/v1/staff/merchant-applications/{application_id}/approve": ADMIN,
    "POST /api/v1/staff/merchant-applications/{application_id}/reject": ADMIN,
    "POST /api/v1/staff/merchant-users": ADMIN,
    # --- the merchant portal (openplatform/portal): its own cookie, sent only to /merchant
    "GET /merchant/login": ANYONE,
    "POST /merchant/login": ANYONE,
    "POST /merchant/logout": ANYONE,  # ends whatever merchant session the cookie names
    "GET /merchant/apply": ANYONE,  # a shop applies for a merchant account
    "POST /merchant/apply": ANYONE,
    "GET /merchant": MERCHANT,
    "GET /merchant/orders": MERCHANT,
    "GET /merchant/orders/{trade_no}": MERCHANT,
    "POST /merchant/orders/{trade_no}/refunds": MERCHANT,
    "POST /merchant/orders/{trade_no}/notifications/{notification_id}/resend": MERCHANT,
    "GET /merchant/refunds": MERCHANT,
    "GET /merchant/keys": MERCHANT,
    "POST /merchant/keys/{app_id}": MERCHANT,
    "GET /merchant/keys/platform.pem": MERCHANT,
    "GET /merchant/bills": MERCHANT,
    "GET /merchant/bills/download": MERCHANT,
    # --- the merchant API: the portal's actions with a merchant bearer token ------------
    "POST /api/v1/merchant/sessions": ANYONE,
    "DELETE /api/v1/merchant/session": MERCHANT,
    "GET /api/v1/merchant/orders": MERCHANT,
    "GET /api/v1/merchant/orders/{trade_no}": MERCHANT,
    "POST /api/v1/merchant/orders/{trade_no}/refunds": MERCHANT,
    "GET /api/v1/merchant/orders/{trade_no}/notifications": MERCHANT,
    "POST /api/v1/merchant/orders/{trade_no}/notifications/{notification_id}/resend": MERCHANT,
    "GET /api/v1/merchant/apps": MERCHANT,
    "PUT /api/v1/merchant/apps/{app_id}/key": MERCHANT,
    "GET /api/v1/merchant/bills/{day}": MERCHANT,
}
# fmt: on


def route_key(method: str, path: str) -> str:
    return f"{method.upper()} {path}"


def declared(method: str, path: str) -> Who | None:
    """The route's audience; HEAD is GET's."""
    return ROUTES.get(route_key("GET" if method.upper() == "HEAD" else method, path))


def undeclared(routes: Iterable[tuple[str, str]]) -> list[str]:
    """The (method, path) pairs that have no line in ROUTES, as ``METHOD path``."""
    return sorted(
        route_key(method, path)
        for method, path in routes
        if method.upper() != "HEAD" and declared(method, path) is None
    )


def missing_message(missing: Iterable[str]) -> str:
    """What a developer reads when a route has no declaration: which, and how to add it."""
    lines = "\n".join(f'    "{key}": PERSON,' for key in missing)
    return (
        "These routes declare nobody who may call them. Add a line for each to ROUTES in "
        "qianbao/access.py, with its audience (ANYONE, PERSON, MERCHANT, ANY_STAFF, REVIEWER, "
        "RISK, SUPPORT, ADMIN, OWN_TOKEN or staff(Role....)), for example:\n" + lines
    )


def stale(routes: Iterable[tuple[str, str]]) -> list[str]:
    """Lines of ROUTES that name no route of the app (a route renamed or removed)."""
    present = {route_key(method, path) for method, path in routes}
    return sorted(set(ROUTES) - present)
