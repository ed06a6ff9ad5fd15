"""card payments under way: the network key of each attempt, and attempts given up

Revision ID: 0021
Revises: 0020
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN (no batch rebuild of payment_orders): nullable columns.
    op.add_column(
        "payment_orders", sa.Column("card_attempt_key", sa.String(length=96), nullable=True)
    )
    op.add_column(
        "payment_orders",
        sa.Column("card_attempt_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.add_column(
        "payment_orders", sa.Column("card_reversal_key", sa.String(length=96), nullable=True)
    )


def downgrade() -> None:
    with op.batch_alter_table("payment_orders") as batch_op:
        batch_op.drop_column("card_reversal_key")
        batch_op.drop_column("card_attempt_at")
        batch_op.drop_column("card_attempt_key")
