"""login and payment passwords, email

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "email_challenges",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("closed_reason", sa.String(length=16), nullable=True),
        sa.CheckConstraint("attempts >= 0", name=op.f("ck_email_challenges_attempts")),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_email_challenges_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_email_challenges")),
    )
    with op.batch_alter_table("email_challenges", schema=None) as batch_op:
        batch_op.create_index(
            "ix_email_challenges_user_created", ["user_id", "created_at"], unique=False
        )

    op.create_table(
        "payment_passwords",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("password_hash", sa.String(length=200), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("set_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("failures >= 0", name=op.f("ck_payment_passwords_failures")),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_payment_passwords_user_id_users")
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_payment_passwords")),
    )
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("email", sa.String(length=254), nullable=True))
        batch_op.add_column(
            sa.Column("email_verified_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("password_hash", sa.String(length=200), nullable=True))
        batch_op.add_column(
            sa.Column("password_changed_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.create_unique_constraint(batch_op.f("uq_users_email"), ["email"])

    # A third purpose of SMS codes: the step-up code for security changes.
    with op.batch_alter_table("sms_challenges", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_sms_challenges_purpose"), type_="check")
        batch_op.create_check_constraint("purpose", "purpose IN ('signup', 'login', 'security')")


def downgrade() -> None:
    with op.batch_alter_table("sms_challenges", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_sms_challenges_purpose"), type_="check")
        batch_op.create_check_constraint("purpose", "purpose IN ('signup', 'login')")

    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_users_email"), type_="unique")
        batch_op.drop_column("password_changed_at")
        batch_op.drop_column("password_hash")
        batch_op.drop_column("email_verified_at")
        batch_op.drop_column("email")

    op.drop_table("payment_passwords")
    with op.batch_alter_table("email_challenges", schema=None) as batch_op:
        batch_op.drop_index("ix_email_challenges_user_created")

    op.drop_table("email_challenges")
