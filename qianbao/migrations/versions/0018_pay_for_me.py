"""pay-for-me (代付): links a friend pays an order through; who paid each order

Revision ID: 0018
Revises: 0017
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        # SQLite adds a column with its REFERENCES clause in place; a separate foreign
        # key would make Alembic rebuild the orders table (and drop what refers to it).
        op.execute("ALTER TABLE payment_orders ADD COLUMN payer_id CHAR(32) REFERENCES users (id)")
    else:
        op.add_column("payment_orders", sa.Column("payer_id", sa.Uuid(), nullable=True))
        op.create_foreign_key(
            op.f("fk_payment_orders_payer_id_users"),
            "payment_orders",
            "users",
            ["payer_id"],
            ["id"],
        )
    # Until now whoever paid an order was its buyer.
    op.execute("UPDATE payment_orders SET payer_id = buyer_id WHERE buyer_id IS NOT NULL")
    op.create_index("ix_payment_orders_payer", "payment_orders", ["payer_id"], unique=False)

    op.create_table(
        "pay_for_me_links",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("asker_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state", sa.String(length=8), nullable=False),
        sa.Column("paid_by", sa.Uuid(), nullable=True),
        sa.Column("paid_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "state IN ('open', 'paid', 'expired')", name=op.f("ck_pay_for_me_links_state")
        ),
        sa.CheckConstraint(
            "(state = 'paid') = (paid_by IS NOT NULL)", name=op.f("ck_pay_for_me_links_paid_by")
        ),
        sa.ForeignKeyConstraint(
            ["asker_id"], ["users.id"], name=op.f("fk_pay_for_me_links_asker_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["payment_orders.id"],
            name=op.f("fk_pay_for_me_links_order_id_payment_orders"),
        ),
        sa.ForeignKeyConstraint(
            ["paid_by"], ["users.id"], name=op.f("fk_pay_for_me_links_paid_by_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pay_for_me_links")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_pay_for_me_links_token_hash")),
    )
    op.create_index("ix_pay_for_me_links_order", "pay_for_me_links", ["order_id"], unique=False)
    op.create_index(
        "ix_pay_for_me_links_state_expires",
        "pay_for_me_links",
        ["state", "expires_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_pay_for_me_links_state_expires", table_name="pay_for_me_links")
    op.drop_index("ix_pay_for_me_links_order", table_name="pay_for_me_links")
    op.drop_table("pay_for_me_links")
    op.drop_index("ix_payment_orders_payer", table_name="payment_orders")
    if op.get_bind().dialect.name != "sqlite":
        op.drop_constraint(
            op.f("fk_payment_orders_payer_id_users"), "payment_orders", type_="foreignkey"
        )
    with op.batch_alter_table("payment_orders", schema=None) as batch_op:
        batch_op.drop_column("payer_id")
