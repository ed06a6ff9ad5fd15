"""refunds to a card or a bank card are reserved in the ledger before the outside party
is asked: the pending amount on the order, the refund's status, holds, key and digest

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("payment_orders") as batch_op:
        batch_op.add_column(
            sa.Column("refund_pending", sa.BigInteger(), nullable=False, server_default="0")
        )
        batch_op.create_check_constraint(
            "refund_pending", "refund_pending >= 0 AND refunded + refund_pending <= amount"
        )
    with op.batch_alter_table("order_refunds") as batch_op:
        batch_op.add_column(
            sa.Column("status", sa.String(length=12), nullable=False, server_default="succeeded")
        )
        batch_op.add_column(sa.Column("request_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(
            sa.Column("to_balance", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(sa.Column("attempt", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("outside_key", sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column("hold_id", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("fee_hold_id", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("failure_code", sa.String(length=64), nullable=True))
        batch_op.create_check_constraint("status", "status IN ('pending', 'succeeded', 'failed')")
        batch_op.create_index("ix_order_refunds_status_created", ["status", "created_at"])


def downgrade() -> None:
    with op.batch_alter_table("order_refunds") as batch_op:
        batch_op.drop_index("ix_order_refunds_status_created")
        batch_op.drop_constraint("ck_order_refunds_status", type_="check")
        for column in (
            "failure_code",
            "fee_hold_id",
            "hold_id",
            "outside_key",
            "attempt",
            "to_balance",
            "request_hash",
            "status",
        ):
            batch_op.drop_column(column)
    with op.batch_alter_table("payment_orders") as batch_op:
        batch_op.drop_constraint("ck_payment_orders_refund_pending", type_="check")
        batch_op.drop_column("refund_pending")
