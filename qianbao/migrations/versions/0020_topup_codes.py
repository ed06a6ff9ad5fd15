"""store top-up codes (batches, hashed codes) and the worker's job schedule

Revision ID: 0020
Revises: 0019
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "topup_code_batches",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("merchant_id", sa.Uuid(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("funded_by", sa.String(length=16), nullable=False),
        sa.Column("funding_reference", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("voided_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("value > 0", name=op.f("ck_topup_code_batches_value")),
        sa.CheckConstraint("count > 0", name=op.f("ck_topup_code_batches_count")),
        sa.CheckConstraint(
            "funded_by IN ('settlement', 'bank')", name=op.f("ck_topup_code_batches_funded_by")
        ),
        sa.ForeignKeyConstraint(
            ["merchant_id"],
            ["merchants.id"],
            name=op.f("fk_topup_code_batches_merchant_id_merchants"),
        ),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["ledger_accounts.id"],
            name=op.f("fk_topup_code_batches_account_id_ledger_accounts"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_topup_code_batches")),
    )
    with op.batch_alter_table("topup_code_batches", schema=None) as batch_op:
        batch_op.create_index("ix_topup_code_batches_merchant", ["merchant_id"], unique=False)

    op.create_table(
        "topup_codes",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("batch_id", sa.Uuid(), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("redeemed_by", sa.Uuid(), nullable=True),
        sa.Column("redeemed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ledger_operation_id", sa.Uuid(), nullable=True),
        sa.CheckConstraint(
            "state IN ('active', 'redeemed', 'void')", name=op.f("ck_topup_codes_state")
        ),
        sa.CheckConstraint(
            "(state = 'redeemed') = (redeemed_by IS NOT NULL AND redeemed_at IS NOT NULL)",
            name=op.f("ck_topup_codes_redeemed"),
        ),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["topup_code_batches.id"],
            name=op.f("fk_topup_codes_batch_id_topup_code_batches"),
        ),
        sa.ForeignKeyConstraint(
            ["redeemed_by"], ["users.id"], name=op.f("fk_topup_codes_redeemed_by_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_topup_codes")),
        sa.UniqueConstraint("code_hash", name=op.f("uq_topup_codes_code_hash")),
    )
    with op.batch_alter_table("topup_codes", schema=None) as batch_op:
        batch_op.create_index("ix_topup_codes_batch", ["batch_id", "state"], unique=False)
        batch_op.create_index(
            "ix_topup_codes_redeemed_by", ["redeemed_by", "redeemed_at"], unique=False
        )

    op.create_table(
        "worker_jobs",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("next_run_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("leased_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("leased_by", sa.String(length=128), nullable=True),
        sa.Column("last_finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_worker_jobs")),
    )


def downgrade() -> None:
    op.drop_table("worker_jobs")
    with op.batch_alter_table("topup_codes", schema=None) as batch_op:
        batch_op.drop_index("ix_topup_codes_redeemed_by")
        batch_op.drop_index("ix_topup_codes_batch")
    op.drop_table("topup_codes")
    with op.batch_alter_table("topup_code_batches", schema=None) as batch_op:
        batch_op.drop_index("ix_topup_code_batches_merchant")
    op.drop_table("topup_code_batches")
