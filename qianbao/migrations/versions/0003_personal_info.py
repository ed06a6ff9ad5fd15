"""personal information

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "personal_info",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("occupation", sa.String(length=32), nullable=True),
        sa.Column("state_code", sa.String(length=16), nullable=True),
        sa.Column("city_code", sa.String(length=16), nullable=True),
        sa.Column("street", sa.String(length=200), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "(state_code IS NULL AND city_code IS NULL AND street IS NULL) OR (state_code IS NOT NULL AND city_code IS NOT NULL AND street IS NOT NULL)",
            name=op.f("ck_personal_info_address_whole"),
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_personal_info_user_id_users")
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_personal_info")),
    )


def downgrade() -> None:
    op.drop_table("personal_info")
