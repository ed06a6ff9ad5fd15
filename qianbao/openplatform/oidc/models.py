"""Tables of the OpenID Connect provider: shops (clients), signing keys, consents,
authorization codes and tokens.

No secret sits here in clear: client secrets, codes and tokens are keyed hashes (the
key is the server's, outside the database); signing keys' private halves are sealed
(``qianbao/sealing.py``) with the key id beside them.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from qianbao.db import Base, UTCDateTime, new_id

AUTH_METHODS = ("client_secret_basic", "private_key_jwt")


class OidcClient(Base):
    """A shop that may ask people to log in with Qianbao, registered by an operator."""

    __tablename__ = "oidc_clients"
    __table_args__ = (
        CheckConstraint("auth_method IN ('client_secret_basic', 'private_key_jwt')", name="auth"),
    )

    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name_en: Mapped[str] = mapped_column(String(128))
    name_zh: Mapped[str] = mapped_column(String(128))
    logo_url: Mapped[str] = mapped_column(String(512), default="")
    # JSON list of the exact redirect URIs allowed.
    redirect_uris: Mapped[str] = mapped_column(Text)
    # client_secret_basic stands for a secret sent by Basic or in the form (both allowed).
    auth_method: Mapped[str] = mapped_column(String(32))
    secret_hash: Mapped[str | None] = mapped_column(String(64), default=None)
    jwks: Mapped[str | None] = mapped_column(Text, default=None)  # private_key_jwt: public keys
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


class OidcSigningKey(Base):
    """A key ID tokens are signed with. A retired key stays in the JWKS until the last
    token it signed has expired (``publish_until``)."""

    __tablename__ = "oidc_signing_keys"

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    alg: Mapped[str] = mapped_column(String(8))
    private_sealed: Mapped[str] = mapped_column(Text)  # Sealed.encode() of the private JWK
    public_jwk: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    publish_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


class OidcConsent(Base):
    """What a person allowed a shop: the scopes and the verified claims, and since when."""

    __tablename__ = "oidc_consents"
    __table_args__ = (UniqueConstraint("user_id", "client_id", name="uq_oidc_consents_user"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), index=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("oidc_clients.client_id"))
    scopes: Mapped[str] = mapped_column(String(256))  # space-separated
    verified_claims: Mapped[str] = mapped_column(String(512), default="")  # space-separated
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


class OidcAuthorizationCode(Base):
    """A code handed to a shop's redirect URI: one use, short-lived, bound to the PKCE
    challenge, the redirect URI and the nonce."""

    __tablename__ = "oidc_authorization_codes"

    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("oidc_clients.client_id"))
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    redirect_uri: Mapped[str] = mapped_column(String(512))
    scope: Mapped[str] = mapped_column(String(256))
    nonce: Mapped[str] = mapped_column(String(256))
    claims: Mapped[str] = mapped_column(Text, default="{}")  # the claims request, JSON
    code_challenge: Mapped[str] = mapped_column(String(128))
    code_challenge_method: Mapped[str] = mapped_column(String(8))
    auth_time: Mapped[datetime] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


class OidcToken(Base):
    """An access token and its refresh token. Refreshing makes a new row of the same
    family and marks the old refresh token used: a used one shown again revokes the
    family. ``code_hash`` names the code the family came from (a reused code revokes it)."""

    __tablename__ = "oidc_tokens"
    __table_args__ = (
        Index("ix_oidc_tokens_user_client", "user_id", "client_id"),
        Index("ix_oidc_tokens_family", "family_id"),
        Index("ix_oidc_tokens_code", "code_hash"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    client_id: Mapped[str] = mapped_column(ForeignKey("oidc_clients.client_id"))
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    family_id: Mapped[uuid.UUID] = mapped_column()
    code_hash: Mapped[str | None] = mapped_column(String(64), default=None)
    access_hash: Mapped[str] = mapped_column(String(64), unique=True)
    refresh_hash: Mapped[str | None] = mapped_column(String(64), unique=True, default=None)
    scope: Mapped[str] = mapped_column(String(256))
    claims: Mapped[str] = mapped_column(Text, default="{}")
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime())
    access_expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    refresh_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    refresh_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


class OidcSeenAssertion(Base):
    """A private_key_jwt client assertion's jti, kept until the assertion expires, so
    that one assertion authenticates once (RFC 7523 3, item 7)."""

    __tablename__ = "oidc_seen_assertions"

    jti_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
