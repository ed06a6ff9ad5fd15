"""staff roles (reviewer, risk officer, support, admin), the staff audit log, and the
first approval of a two-person freeze release

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None

ROLES = "role IN ('reviewer', 'risk_officer', 'support', 'admin')"
OLD_ROLES = "role IN ('reviewer', 'admin')"


def upgrade() -> None:
    with op.batch_alter_table("staff_members") as batch_op:
        batch_op.drop_constraint("role", type_="check")
        batch_op.create_check_constraint("role", ROLES)
    with op.batch_alter_table("account_restrictions") as batch_op:
        batch_op.add_column(sa.Column("release_approved_by", sa.Uuid(), nullable=True))
        batch_op.add_column(
            sa.Column("release_approved_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.create_foreign_key(
            "fk_account_restrictions_release_approved_by_staff_members",
            "staff_members",
            ["release_approved_by"],
            ["id"],
        )
    op.create_table(
        "audit_events",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=80), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_events")),
    )
    op.create_index("ix_audit_events_subject", "audit_events", ["subject", "at"])


def downgrade() -> None:
    op.drop_index("ix_audit_events_subject", table_name="audit_events")
    op.drop_table("audit_events")
    with op.batch_alter_table("account_restrictions") as batch_op:
        batch_op.drop_constraint(
            "fk_account_restrictions_release_approved_by_staff_members", type_="foreignkey"
        )
        batch_op.drop_column("release_approved_at")
        batch_op.drop_column("release_approved_by")
    op.execute("UPDATE staff_members SET role = 'admin' WHERE role IN ('risk_officer', 'support')")
    with op.batch_alter_table("staff_members") as batch_op:
        batch_op.drop_constraint("role", type_="check")
        batch_op.create_check_constraint("role", OLD_ROLES)
