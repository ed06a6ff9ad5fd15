"""account restrictions and freezes, appeals with sealed documents

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "account_restrictions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=False),
        sa.Column("imposed_by", sa.String(length=64), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lifted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lifted_by", sa.String(length=64), nullable=True),
        sa.Column("lift_note", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "kind IN ('restricted', 'frozen')", name=op.f("ck_account_restrictions_kind")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_account_restrictions_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_account_restrictions")),
    )
    with op.batch_alter_table("account_restrictions", schema=None) as batch_op:
        batch_op.create_index("ix_account_restrictions_user", ["user_id"], unique=False)

    op.create_table(
        "restriction_appeals",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("restriction_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decided_by", sa.Uuid(), nullable=True),
        sa.Column("decision_note", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'lifted', 'kept')", name=op.f("ck_restriction_appeals_status")
        ),
        sa.ForeignKeyConstraint(
            ["decided_by"],
            ["staff_members.id"],
            name=op.f("fk_restriction_appeals_decided_by_staff_members"),
        ),
        sa.ForeignKeyConstraint(
            ["restriction_id"],
            ["account_restrictions.id"],
            name=op.f("fk_restriction_appeals_restriction_id_account_restrictions"),
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_restriction_appeals_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_restriction_appeals")),
    )
    with op.batch_alter_table("restriction_appeals", schema=None) as batch_op:
        batch_op.create_index(
            "ix_restriction_appeals_status", ["status", "created_at"], unique=False
        )

    op.create_table(
        "appeal_documents",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("appeal_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("key_id", sa.String(length=32), nullable=False),
        sa.Column("sealed", sa.LargeBinary(), nullable=False),
        sa.CheckConstraint(
            "kind IN ('passport_page', 'selfie_with_passport', 'card_statement')",
            name=op.f("ck_appeal_documents_kind"),
        ),
        sa.ForeignKeyConstraint(
            ["appeal_id"],
            ["restriction_appeals.id"],
            name=op.f("fk_appeal_documents_appeal_id_restriction_appeals"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_appeal_documents")),
    )
    with op.batch_alter_table("appeal_documents", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_appeal_documents_appeal_id"), ["appeal_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("appeal_documents", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_appeal_documents_appeal_id"))

    op.drop_table("appeal_documents")
    with op.batch_alter_table("restriction_appeals", schema=None) as batch_op:
        batch_op.drop_index("ix_restriction_appeals_status")

    op.drop_table("restriction_appeals")
    with op.batch_alter_table("account_restrictions", schema=None) as batch_op:
        batch_op.drop_index("ix_account_restrictions_user")

    op.drop_table("account_restrictions")
