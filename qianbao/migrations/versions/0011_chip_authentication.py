"""passport chips: the pending chip-authentication challenge of a verification case

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN (no batch rebuild): the columns are nullable, on both databases.
    op.add_column("verification_cases", sa.Column("chip_auth_sealed", sa.Text(), nullable=True))
    op.add_column(
        "verification_cases",
        sa.Column("chip_auth_issued_at", sa.DateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    with op.batch_alter_table("verification_cases") as batch_op:
        batch_op.drop_column("chip_auth_issued_at")
        batch_op.drop_column("chip_auth_sealed")
