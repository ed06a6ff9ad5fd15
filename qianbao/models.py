"""Every table, imported in one place so that Alembic and the tests see them all."""

from __future__ import annotations

from qianbao import audit, worker_models
from qianbao.db import Base
from qianbao.funding import models as funding_models
from qianbao.identity import models as identity_models
from qianbao.notify import models as notify_models
from qianbao.openplatform.oidc import models as oidc_models
from qianbao.profile import models as profile_models
from qianbao.risk import models as risk_models
from qianbao.throttling import models as throttling_models
from qianbao.verification import models as verification_models
from qianbao.wallet import limits as usage_models
from qianbao.wallet.ledger import models as wallet_models
from qianbao.wallet.pay_for_me import models as pay_for_me_models
from qianbao.wallet.payments import models as payment_models
from qianbao.wallet.topup_codes import models as topup_code_models
from qianbao.wallet.tour_pass import models as tour_pass_models
from qianbao.wallet.transfers import models as transfer_models

metadata = Base.metadata
__all__ = [
    "audit",
    "funding_models",
    "identity_models",
    "metadata",
    "notify_models",
    "oidc_models",
    "pay_for_me_models",
    "payment_models",
    "profile_models",
    "risk_models",
    "throttling_models",
    "topup_code_models",
    "tour_pass_models",
    "transfer_models",
    "usage_models",
    "verification_models",
    "wallet_models",
    "worker_models",
]
