"""account security: the devices and countries an account has signed in from, and each
session's device and country

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "known_devices",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("device_hash", sa.String(length=80), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_known_devices_user_id_users"),
        sa.PrimaryKeyConstraint("id", name="pk_known_devices"),
        sa.UniqueConstraint("user_id", "device_hash", name="uq_known_devices_user_id"),
    )
    op.create_table(
        "sign_in_countries",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("country", sa.String(length=2), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_sign_in_countries_user_id_users"
        ),
        sa.PrimaryKeyConstraint("user_id", "country", name="pk_sign_in_countries"),
    )
    with op.batch_alter_table("auth_sessions") as batch_op:
        batch_op.add_column(sa.Column("country", sa.String(length=2), nullable=True))
        batch_op.add_column(sa.Column("device_id", sa.Uuid(), nullable=True))
        batch_op.create_foreign_key(
            "fk_auth_sessions_device_id_known_devices", "known_devices", ["device_id"], ["id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("auth_sessions") as batch_op:
        batch_op.drop_constraint("fk_auth_sessions_device_id_known_devices", type_="foreignkey")
        batch_op.drop_column("device_id")
        batch_op.drop_column("country")
    op.drop_table("sign_in_countries")
    op.drop_table("known_devices")
