"""Response shapes of the authorized-apps API (never the tables themselves)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from qianbao.openplatform.oidc.service import AuthorizedApp


class AuthorizedAppOut(BaseModel):
    client_id: str
    name: str = Field(description="The shop's name in the request's language.")
    logo_url: str
    scopes: list[str] = Field(description="Consented scopes: profile, phone, email, identity.")
    verified_claims: list[str] = Field(
        description="The verified claims the person allowed (given_name, family_name, "
        "birthdate, nationalities, identity_verified, age_over_18)."
    )
    since: datetime
    updated_at: datetime


def app_out(app: AuthorizedApp) -> AuthorizedAppOut:
    return AuthorizedAppOut(
        client_id=app.shop.client_id,
        name=app.shop.name,
        logo_url=app.shop.logo_url,
        scopes=list(app.scopes),
        verified_claims=list(app.verified_claims),
        since=app.since,
        updated_at=app.updated_at,
    )
