"""The shop's settings, read from ``MARKETPLACE_*`` environment variables."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final

DEFAULT_ISSUER: Final = "http://127.0.0.1:8000"
DEFAULT_BASE_URL: Final = "http://127.0.0.1:8001"
# The client `qianbao serve --demo` registers for this shop.
DEFAULT_CLIENT_ID: Final = "demo-marketplace"
DEFAULT_CLIENT_SECRET: Final = "demo-marketplace-secret"  # noqa: S105 - the demo's published secret
# The merchant app `qianbao serve --demo` registers for this shop, and its key pair: DEMO
# ONLY, published in this repository (examples/marketplace/demo-keys/).
DEFAULT_APP_ID: Final = "2026000000000001"
DEMO_APP_PRIVATE_KEY: Final = Path(__file__).parents[1] / "demo-keys" / "app_private_key.txt"


@dataclass
class Settings:
    """Where Qianbao is, who the shop is to it, and the shop's own rules."""

    issuer: str = DEFAULT_ISSUER
    base_url: str = DEFAULT_BASE_URL
    client_id: str = DEFAULT_CLIENT_ID
    client_secret: str = DEFAULT_CLIENT_SECRET
    database: Path = Path("var/marketplace.db")
    # A link is checked (a refresh at Qianbao) on a visit to the account page at most this
    # often; "Check link" checks at once.
    link_check_interval_seconds: int = 60
    # A sign-in or link that has not come back from Qianbao within this time is forgotten.
    pending_login_ttl_seconds: int = 600
    session_ttl_seconds: int = 7 * 24 * 3600
    http_timeout_seconds: float = 10.0
    # The shortest password a shop account may have.
    min_password_length: int = 8
    # A token under a key not in the cached JWKS fetches the set again, but not sooner than
    # this after the last fetch (so forged kids cannot make the shop hammer Qianbao).
    jwks_refetch_cooldown_seconds: float = 30.0
    # Clock skew allowed when the ID token's exp and iat are checked.
    id_token_leeway_seconds: int = 30
    # Marks the session cookie Secure; off for the plain-HTTP demo on 127.0.0.1.
    secure_cookies: bool = False
    # Payments: the merchant app at Qianbao's gateway (Alipay's protocol).
    app_id: str = DEFAULT_APP_ID
    app_private_key_file: Path = DEMO_APP_PRIVATE_KEY  # PKCS#1 Base64 (or PEM)
    # The platform's public keys (Base64, Alipay's alipay_public_key); empty: fetched from
    # {issuer}/gateway/platform-keys on first use (the demo's way).
    platform_public_keys: tuple[str, ...] = ()
    # How many refunds one order may have (each its own out_request_no).
    max_refunds_per_order: int = 20

    @property
    def gateway_url(self) -> str:
        return f"{self.issuer}/gateway.do"

    def app_private_key(self) -> str:
        return self.app_private_key_file.read_text(encoding="ascii").strip()

    @property
    def redirect_uri(self) -> str:
        return f"{self.base_url}/auth/qianbao/callback"

    @classmethod
    def from_environment(cls) -> Settings:
        env = os.environ
        defaults = cls()
        return cls(
            issuer=env.get("MARKETPLACE_ISSUER", defaults.issuer).rstrip("/"),
            base_url=env.get("MARKETPLACE_BASE_URL", defaults.base_url).rstrip("/"),
            client_id=env.get("MARKETPLACE_CLIENT_ID", defaults.client_id),
            client_secret=env.get("MARKETPLACE_CLIENT_SECRET", defaults.client_secret),
            database=Path(env.get("MARKETPLACE_DATABASE", str(defaults.database))),
            link_check_interval_seconds=int(
                env.get(
                    "MARKETPLACE_LINK_CHECK_INTERVAL_SECONDS", defaults.link_check_interval_seconds
                )
            ),
            secure_cookies=env.get("MARKETPLACE_SECURE_COOKIES", "") == "1",
            app_id=env.get("MARKETPLACE_APP_ID", defaults.app_id),
            app_private_key_file=Path(
                env.get("MARKETPLACE_APP_PRIVATE_KEY_FILE", str(defaults.app_private_key_file))
            ),
            platform_public_keys=tuple(
                key for key in env.get("MARKETPLACE_PLATFORM_PUBLIC_KEY", "").split(",") if key
            ),
        )
