"""foreign cards: when the issuer verified the card at linking (3-D Secure)

Revision ID: 0016
Revises: 0011
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "foreign_cards", sa.Column("verified_at", sa.DateTime(timezone=True), nullable=True)
    )
    # Cards linked before verification existed were checked by the issuer when linked.
    op.execute("UPDATE foreign_cards SET verified_at = added_at")


def downgrade() -> None:
    with op.batch_alter_table("foreign_cards") as batch_op:
        batch_op.drop_column("verified_at")
