"""passport chips: trust anchors (CSCA certificates, CRLs) and the active
authentication challenge of a case

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "trust_anchors",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("der", sa.LargeBinary(), nullable=False),
        sa.Column("subject", sa.String(length=512), nullable=False),
        sa.Column("country", sa.String(length=3), nullable=True),
        sa.Column("not_after", sa.DateTime(timezone=True), nullable=True),
        sa.Column("source", sa.String(length=256), nullable=False),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("kind IN ('csca', 'crl')", name=op.f("ck_trust_anchors_kind")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trust_anchors")),
        sa.UniqueConstraint("sha256", name=op.f("uq_trust_anchors_sha256")),
    )
    with op.batch_alter_table("verification_cases", schema=None) as batch_op:
        batch_op.add_column(sa.Column("aa_challenge", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("verification_cases", schema=None) as batch_op:
        batch_op.drop_column("aa_challenge")

    op.drop_table("trust_anchors")
