"""quick payments from mainland bank cards: the bank's agreement token, the debit

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("bank_cards", sa.Column("bank_token", sa.String(length=128), nullable=True))
    op.add_column(
        "payment_orders", sa.Column("bank_debit_id", sa.String(length=128), nullable=True)
    )
    if op.get_bind().dialect.name == "sqlite":
        # SQLite adds a column with its REFERENCES clause in place; a separate foreign
        # key would make Alembic rebuild the orders table (and drop what refers to it).
        op.execute(
            "ALTER TABLE payment_orders ADD COLUMN bank_card_id CHAR(32) REFERENCES bank_cards (id)"
        )
    else:
        op.add_column("payment_orders", sa.Column("bank_card_id", sa.Uuid(), nullable=True))
        op.create_foreign_key(
            op.f("fk_payment_orders_bank_card_id_bank_cards"),
            "payment_orders",
            "bank_cards",
            ["bank_card_id"],
            ["id"],
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        op.drop_constraint(
            op.f("fk_payment_orders_bank_card_id_bank_cards"), "payment_orders", type_="foreignkey"
        )
    with op.batch_alter_table("payment_orders", schema=None) as batch_op:
        batch_op.drop_column("bank_card_id")
        batch_op.drop_column("bank_debit_id")
    op.drop_column("bank_cards", "bank_token")
