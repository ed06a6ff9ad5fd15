"""payments under way: the network key of each card or bank card attempt, and the
attempts given up whose money the worker sends back

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
    op.create_table(
        "payment_attempt_reversals",
        sa.Column("key", sa.String(length=96), nullable=False),
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["payment_orders.id"],
            name=op.f("fk_payment_attempt_reversals_order_id_payment_orders"),
        ),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_payment_attempt_reversals")),
    )


def downgrade() -> None:
    op.drop_table("payment_attempt_reversals")
    with op.batch_alter_table("payment_orders") as batch_op:
        batch_op.drop_column("card_attempt_at")
        batch_op.drop_column("card_attempt_key")
