"""A person's standing: how they are verified, the tier that gives, and its rights.

policy.py decides what a tier may do; this module only gathers its inputs (identity's
verification level, funding's bound bank card) for the pages and the API.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from qianbao import policy
from qianbao.db import Tx
from qianbao.funding import service as funding
from qianbao.identity import service as identity


@dataclass(frozen=True)
class Standing:
    level: str
    has_bank_card: bool
    tier: policy.Tier
    rights: policy.Rights
    next_tier: policy.Tier | None
    next_rights: policy.Rights | None


def standing(tx: Tx, user_id: uuid.UUID) -> Standing:
    # Mirrored by the payment's database function (wallet/payments/in_database.py, which
    # hands it policy's rights for every level with and without a bank card): what else
    # decides a person's rights must reach it too.
    level = identity.verification_level(tx, user_id)
    has_card = funding.has_bank_card(tx, user_id)
    tier = policy.tier_for(level, has_card)
    upper = policy.next_tier(tier)
    return Standing(
        level=level,
        has_bank_card=has_card,
        tier=tier,
        rights=policy.rights_for(tier, tx.settings),
        next_tier=upper,
        next_rights=policy.rights_for(upper, tx.settings) if upper else None,
    )
