"""merchant payments: merchants, orders, foreign cards, refunds, wallet accounts

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "foreign_cards",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("token", sa.String(length=128), nullable=False),
        sa.Column("brand", sa.String(length=16), nullable=False),
        sa.Column("last4", sa.String(length=4), nullable=False),
        sa.Column("expiry", sa.String(length=7), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("removed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_foreign_cards_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_foreign_cards")),
    )
    with op.batch_alter_table("foreign_cards", schema=None) as batch_op:
        batch_op.create_index("ix_foreign_cards_user", ["user_id"], unique=False)

    op.create_table(
        "merchants",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("settlement_account_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["settlement_account_id"],
            ["ledger_accounts.id"],
            name=op.f("fk_merchants_settlement_account_id_ledger_accounts"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_merchants")),
        sa.UniqueConstraint("name", name=op.f("uq_merchants_name")),
    )
    op.create_table(
        "wallet_accounts",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("owner_key", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["ledger_accounts.id"],
            name=op.f("fk_wallet_accounts_account_id_ledger_accounts"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_wallet_accounts")),
        sa.UniqueConstraint("owner_key", "kind", "currency", name="uq_wallet_account"),
    )
    op.create_table(
        "payment_orders",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("merchant_id", sa.Uuid(), nullable=False),
        sa.Column("out_trade_no", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=256), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("refunded", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("buyer_id", sa.Uuid(), nullable=True),
        sa.Column("paid_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("source", sa.String(length=16), nullable=True),
        sa.Column("fee", sa.BigInteger(), nullable=False),
        sa.Column("card_id", sa.Uuid(), nullable=True),
        sa.Column("card_currency", sa.String(length=3), nullable=True),
        sa.Column("card_amount", sa.BigInteger(), nullable=True),
        sa.Column("card_rate", sa.Numeric(precision=18, scale=8), nullable=True),
        sa.Column("card_capture_id", sa.String(length=64), nullable=True),
        sa.Column("ledger_operation_id", sa.Uuid(), nullable=True),
        sa.CheckConstraint(
            "status IN ('WAIT_BUYER_PAY', 'TRADE_SUCCESS', 'TRADE_CLOSED', 'TRADE_FINISHED')",
            name=op.f("ck_payment_orders_status"),
        ),
        sa.CheckConstraint("amount > 0", name=op.f("ck_payment_orders_amount")),
        sa.CheckConstraint(
            "refunded >= 0 AND refunded <= amount", name=op.f("ck_payment_orders_refunded")
        ),
        sa.ForeignKeyConstraint(
            ["buyer_id"], ["users.id"], name=op.f("fk_payment_orders_buyer_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["card_id"], ["foreign_cards.id"], name=op.f("fk_payment_orders_card_id_foreign_cards")
        ),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_payment_orders_merchant_id_merchants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payment_orders")),
        sa.UniqueConstraint("merchant_id", "out_trade_no", name="uq_payment_orders_trade_no"),
    )
    with op.batch_alter_table("payment_orders", schema=None) as batch_op:
        batch_op.create_index(
            "ix_payment_orders_status_expires", ["status", "expires_at"], unique=False
        )

    op.create_table(
        "order_refunds",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("out_request_no", sa.String(length=64), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("fee_refunded", sa.BigInteger(), nullable=False),
        sa.Column("destination", sa.String(length=16), nullable=False),
        sa.Column("card_amount", sa.BigInteger(), nullable=True),
        sa.Column("card_rate", sa.Numeric(precision=18, scale=8), nullable=True),
        sa.Column("ledger_operation_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("amount > 0", name=op.f("ck_order_refunds_amount")),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["payment_orders.id"],
            name=op.f("fk_order_refunds_order_id_payment_orders"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_order_refunds")),
        sa.UniqueConstraint("order_id", "out_request_no", name="uq_order_refunds_request_no"),
    )


def downgrade() -> None:
    op.drop_table("order_refunds")
    with op.batch_alter_table("payment_orders", schema=None) as batch_op:
        batch_op.drop_index("ix_payment_orders_status_expires")

    op.drop_table("payment_orders")
    op.drop_table("wallet_accounts")
    op.drop_table("merchants")
    with op.batch_alter_table("foreign_cards", schema=None) as batch_op:
        batch_op.drop_index("ix_foreign_cards_user")

    op.drop_table("foreign_cards")
