"""money codes: people's receive codes and their own password-free limit for payment
codes

Revision ID: 0033
Revises: 0032
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0033"
down_revision = "0032"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "receive_codes",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("token", sa.String(length=43), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_receive_codes_user_id_users"),
        sa.PrimaryKeyConstraint("user_id", name="pk_receive_codes"),
        sa.UniqueConstraint("token", name="uq_receive_codes_token"),
    )
    op.create_table(
        "payment_code_limits",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("password_free_limit", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_payment_code_limits_user_id_users"
        ),
        sa.PrimaryKeyConstraint("user_id", name="pk_payment_code_limits"),
    )


def downgrade() -> None:
    op.drop_table("payment_code_limits")
    op.drop_table("receive_codes")
