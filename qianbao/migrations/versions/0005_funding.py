"""mainland bank cards: bound cards and four-element checks in progress

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "bank_card_checks",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("card_hash", sa.String(length=64), nullable=False),
        sa.Column("bank_name_en", sa.String(length=128), nullable=False),
        sa.Column("bank_name_zh", sa.String(length=128), nullable=False),
        sa.Column("last4", sa.String(length=4), nullable=False),
        sa.Column("bank_reference", sa.String(length=128), nullable=False),
        sa.Column("masked_phone", sa.String(length=32), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_bank_card_checks_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bank_card_checks")),
    )
    with op.batch_alter_table("bank_card_checks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_bank_card_checks_user_id"), ["user_id"], unique=False)

    op.create_table(
        "bank_cards",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("card_hash", sa.String(length=64), nullable=False),
        sa.Column("bank_name_en", sa.String(length=128), nullable=False),
        sa.Column("bank_name_zh", sa.String(length=128), nullable=False),
        sa.Column("last4", sa.String(length=4), nullable=False),
        sa.Column("bound_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("removed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_bank_cards_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bank_cards")),
    )
    with op.batch_alter_table("bank_cards", schema=None) as batch_op:
        batch_op.create_index("ix_bank_cards_user", ["user_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("bank_cards", schema=None) as batch_op:
        batch_op.drop_index("ix_bank_cards_user")

    op.drop_table("bank_cards")
    with op.batch_alter_table("bank_card_checks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_bank_card_checks_user_id"))

    op.drop_table("bank_card_checks")
