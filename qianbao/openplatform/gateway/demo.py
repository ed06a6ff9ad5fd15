"""Demo mode's merchant app: the demo marketplace (examples/marketplace) takes payments
through the gateway as app ``DEMO_APP_ID``, signing with the demo-only key pair shipped in
examples/marketplace/demo-keys/ (its private half is public: never use it elsewhere).
The app is also linked to the demo marketplace's Log in with Qianbao shop."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from qianbao.db import Tx
from qianbao.openplatform import signing
from qianbao.openplatform.gateway import oauth
from qianbao.openplatform.merchants import service as merchants
from qianbao.openplatform.merchants.models import MerchantApp
from qianbao.openplatform.oidc import service as oidc
from qianbao.wallet.payments import service as payments

DEMO_MERCHANT: Final = "Wholesale Market (demo)"
DEMO_APP_ID: Final = "2026000000000001"
# The public half of examples/marketplace/demo-keys/app_private_key.txt (DEMO ONLY).
DEMO_APP_PUBLIC_KEY: Final = """\
-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAyAF6lQ5AGmDtwdTWPFhG
qWrsUaLPZKP5N5sbn5xaFm/8N43mPWqDOtMNkcLMlLh6pZ6rGEFRe/KUTAj2XOv6
E1WUN2hqTnqgNzUrCBcF/gTy6U2n2tiNff9ttbXyPd+uUa3x4IjYKMrXgA8ziSLl
RxEDVhXOynfQqZAt34aySiXzzg2pTA+dpU3+kjTCnqGqnQbzbYBgfB7jo38BbR60
rI8eLZfQa/fD2xrfi3SV0an7rRy1LgzIFxG64e2R8yxkNtA6fnCwVx5PFGs2BJtt
VoR50uFPNM07d+HCdubuZ9N1QqJ7xJtR11RFc+WFDGCGXDMXzFVBjG9FzjVr1ptM
HQIDAQAB
-----END PUBLIC KEY-----
"""


@dataclass(frozen=True)
class DemoApp:
    app_id: str
    merchant: str
    platform_public_key: str  # one Base64 line, as the SDK's alipay_public_key


def seed_demo_app(tx: Tx) -> DemoApp:
    """The demo marketplace's merchant and app, with the demo key; made once, kept in
    step on every demo start."""
    merchant_id = payments.merchant_by_name(tx, DEMO_MERCHANT)
    if merchant_id is None:
        merchant_id = payments.create_merchant(tx, DEMO_MERCHANT)
    if merchants.find_app(tx, DEMO_APP_ID) is None:
        tx.session.add(
            MerchantApp(
                app_id=DEMO_APP_ID,
                merchant_id=merchant_id,
                name="Wholesale Market (demo) web shop",
                created_at=tx.now(),
            )
        )
        tx.session.flush()
        merchants.set_app_key(tx, DEMO_APP_ID, DEMO_APP_PUBLIC_KEY)
    shop = oidc.seed_demo_shop(tx)
    oauth.link_app_client(tx, DEMO_APP_ID, shop.client_id)
    current = next(key for key in merchants.platform_keys(tx) if key.state == "current")
    return DemoApp(DEMO_APP_ID, DEMO_MERCHANT, signing.bare_base64(current.public_key))
