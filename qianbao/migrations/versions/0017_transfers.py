"""transfers between people

Revision ID: 0017
Revises: 0016
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "person_transfers",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("sender_id", sa.Uuid(), nullable=False),
        sa.Column("recipient_id", sa.Uuid(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("note", sa.String(length=200), nullable=False),
        sa.Column("sender_name", sa.String(length=128), nullable=False),
        sa.Column("sender_phone", sa.String(length=32), nullable=False),
        sa.Column("recipient_name", sa.String(length=128), nullable=False),
        sa.Column("recipient_phone", sa.String(length=32), nullable=False),
        sa.Column("idempotency_key", sa.String(length=80), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("ledger_operation_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("amount > 0", name=op.f("ck_person_transfers_amount")),
        sa.CheckConstraint(
            "sender_id <> recipient_id", name=op.f("ck_person_transfers_not_to_self")
        ),
        sa.ForeignKeyConstraint(
            ["sender_id"], ["users.id"], name=op.f("fk_person_transfers_sender_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["recipient_id"], ["users.id"], name=op.f("fk_person_transfers_recipient_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_person_transfers")),
        sa.UniqueConstraint("sender_id", "idempotency_key", name="uq_person_transfers_key"),
    )
    with op.batch_alter_table("person_transfers", schema=None) as batch_op:
        batch_op.create_index(
            "ix_person_transfers_sender_created", ["sender_id", "created_at"], unique=False
        )
        batch_op.create_index(
            "ix_person_transfers_recipient_created", ["recipient_id", "created_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("person_transfers", schema=None) as batch_op:
        batch_op.drop_index("ix_person_transfers_recipient_created")
        batch_op.drop_index("ix_person_transfers_sender_created")
    op.drop_table("person_transfers")
