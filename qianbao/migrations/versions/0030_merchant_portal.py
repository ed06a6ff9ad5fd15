"""the merchant portal: merchant users and their sessions, shops' applications, and
when an app's key was uploaded

Revision ID: 0030
Revises: 0029
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0030"
down_revision = "0029"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("merchant_apps") as batch:
        batch.add_column(sa.Column("key_uploaded_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "merchant_users",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("merchant_id", sa.Uuid(), nullable=False),
        sa.Column("login", sa.String(length=254), nullable=False),
        sa.Column("password_hash", sa.String(length=256), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name="fk_merchant_users_merchant_id_merchants"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_merchant_users"),
        sa.UniqueConstraint("login", name="uq_merchant_users_login"),
    )
    op.create_index("ix_merchant_users_merchant", "merchant_users", ["merchant_id"])
    op.create_table(
        "merchant_sessions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("merchant_user_id", sa.Uuid(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["merchant_user_id"],
            ["merchant_users.id"],
            name="fk_merchant_sessions_merchant_user_id_merchant_users",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_merchant_sessions"),
        sa.UniqueConstraint("token_hash", name="uq_merchant_sessions_token_hash"),
    )
    op.create_index("ix_merchant_sessions_user", "merchant_sessions", ["merchant_user_id"])
    op.create_table(
        "merchant_applications",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("shop_name", sa.String(length=128), nullable=False),
        sa.Column("contact_name", sa.String(length=128), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("website", sa.String(length=256), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decided_by", sa.Uuid(), nullable=True),
        sa.Column("merchant_id", sa.Uuid(), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'approved', 'rejected')",
            name=op.f("ck_merchant_applications_status"),
        ),
        sa.ForeignKeyConstraint(
            ["merchant_id"],
            ["merchants.id"],
            name="fk_merchant_applications_merchant_id_merchants",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_merchant_applications"),
    )
    op.create_index(
        "ix_merchant_applications_status", "merchant_applications", ["status", "created_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_merchant_applications_status", table_name="merchant_applications")
    op.drop_table("merchant_applications")
    op.drop_index("ix_merchant_sessions_user", table_name="merchant_sessions")
    op.drop_table("merchant_sessions")
    op.drop_index("ix_merchant_users_merchant", table_name="merchant_users")
    op.drop_table("merchant_users")
    with op.batch_alter_table("merchant_apps") as batch:
        batch.drop_column("key_uploaded_at")
