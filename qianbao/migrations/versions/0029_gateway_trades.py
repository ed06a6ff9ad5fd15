"""the trade API: gateway trades, notifications to shops and every attempt, and people's
payment codes (scanned by shops)

Revision ID: 0029
Revises: 0028
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0029"
down_revision = "0028"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "gateway_trades",
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("app_id", sa.String(length=32), nullable=False),
        sa.Column("trade_no", sa.String(length=64), nullable=False),
        sa.Column("product_code", sa.String(length=32), nullable=False),
        sa.Column("notify_url", sa.String(length=256), nullable=True),
        sa.Column("return_url", sa.String(length=256), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["order_id"], ["payment_orders.id"], name="fk_gateway_trades_order_id_payment_orders"
        ),
        sa.ForeignKeyConstraint(
            ["app_id"], ["merchant_apps.app_id"], name="fk_gateway_trades_app_id_merchant_apps"
        ),
        sa.PrimaryKeyConstraint("order_id", name="pk_gateway_trades"),
        sa.UniqueConstraint("trade_no", name="uq_gateway_trades_trade_no"),
    )
    op.create_table(
        "gateway_notifications",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("notify_id", sa.String(length=64), nullable=False),
        sa.Column("notify_url", sa.String(length=256), nullable=False),
        sa.Column("fields", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'delivered', 'failed')",
            name=op.f("ck_gateway_notifications_status"),
        ),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["gateway_trades.order_id"],
            name="fk_gateway_notifications_order_id_gateway_trades",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_gateway_notifications"),
        sa.UniqueConstraint("notify_id", name="uq_gateway_notifications_notify_id"),
    )
    op.create_index(
        "ix_gateway_notifications_due", "gateway_notifications", ["status", "next_attempt_at"]
    )
    op.create_index(
        "ix_gateway_notifications_order", "gateway_notifications", ["order_id", "created_at"]
    )
    op.create_table(
        "gateway_notification_attempts",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("notification_id", sa.Uuid(), nullable=False),
        sa.Column("attempted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("http_status", sa.Integer(), nullable=True),
        sa.Column("answer", sa.String(length=512), nullable=True),
        sa.Column("error", sa.String(length=256), nullable=True),
        sa.Column("succeeded", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["notification_id"],
            ["gateway_notifications.id"],
            name="fk_gateway_notification_attempts_notice",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_gateway_notification_attempts"),
    )
    op.create_index(
        "ix_gateway_notification_attempts",
        "gateway_notification_attempts",
        ["notification_id", "attempted_at"],
    )

    op.create_table(
        "payment_codes",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("code_hash", sa.String(length=96), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_payment_codes_user_id_users"),
        sa.PrimaryKeyConstraint("id", name="pk_payment_codes"),
        sa.UniqueConstraint("code_hash", name="uq_payment_codes_code_hash"),
    )
    op.create_index("ix_payment_codes_user", "payment_codes", ["user_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_payment_codes_user", table_name="payment_codes")
    op.drop_table("payment_codes")
    op.drop_index("ix_gateway_notification_attempts", table_name="gateway_notification_attempts")
    op.drop_table("gateway_notification_attempts")
    op.drop_index("ix_gateway_notifications_order", table_name="gateway_notifications")
    op.drop_index("ix_gateway_notifications_due", table_name="gateway_notifications")
    op.drop_table("gateway_notifications")
    op.drop_table("gateway_trades")
