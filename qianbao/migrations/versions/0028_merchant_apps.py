"""merchants' apps with their public keys, and the platform's signing keys

Revision ID: 0028
Revises: 0026
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0028"
down_revision = "0026"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "merchant_apps",
        sa.Column("app_id", sa.String(length=32), nullable=False),
        sa.Column("merchant_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("public_key", sa.Text(), nullable=True),
        sa.Column("previous_public_key", sa.Text(), nullable=True),
        sa.Column("previous_key_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name="fk_merchant_apps_merchant_id_merchants"
        ),
        sa.PrimaryKeyConstraint("app_id", name="pk_merchant_apps"),
    )
    op.create_index("ix_merchant_apps_merchant", "merchant_apps", ["merchant_id"])
    op.create_table(
        "platform_keys",
        sa.Column("key_id", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=8), nullable=False),
        sa.Column("public_key", sa.Text(), nullable=False),
        sa.Column("sealed_private_key", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("current_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "state IN ('next', 'current', 'retired')", name=op.f("ck_platform_keys_state")
        ),
        sa.PrimaryKeyConstraint("key_id", name="pk_platform_keys"),
    )
    op.create_index("ix_platform_keys_state", "platform_keys", ["state"])


def downgrade() -> None:
    op.drop_index("ix_platform_keys_state", table_name="platform_keys")
    op.drop_table("platform_keys")
    op.drop_index("ix_merchant_apps_merchant", table_name="merchant_apps")
    op.drop_table("merchant_apps")
