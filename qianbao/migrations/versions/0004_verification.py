"""real-name verification: cases, sealed images, tries, verified documents, face
checks, reviewers

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "staff_members",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("display_name", sa.String(length=128), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("password_hash", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("role IN ('reviewer', 'admin')", name=op.f("ck_staff_members_role")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staff_members")),
        sa.UniqueConstraint("username", name=op.f("uq_staff_members_username")),
    )
    op.create_table(
        "face_check_passes",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("passed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_face_check_passes_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_face_check_passes")),
    )
    with op.batch_alter_table("face_check_passes", schema=None) as batch_op:
        batch_op.create_index(
            "ix_face_check_passes_user_passed", ["user_id", "passed_at"], unique=False
        )

    op.create_table(
        "face_checks",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("challenge", sa.String(length=64), nullable=True),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.String(length=64), nullable=True),
        sa.Column("face_distance", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_face_checks_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_face_checks")),
    )
    with op.batch_alter_table("face_checks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_face_checks_user_id"), ["user_id"], unique=False)

    op.create_table(
        "staff_sessions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("staff_id", sa.Uuid(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["staff_id"],
            ["staff_members.id"],
            name=op.f("fk_staff_sessions_staff_id_staff_members"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staff_sessions")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_staff_sessions_token_hash")),
    )
    with op.batch_alter_table("staff_sessions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_staff_sessions_staff_id"), ["staff_id"], unique=False)

    op.create_table(
        "verification_cases",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("method", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("document_key_id", sa.String(length=32), nullable=True),
        sa.Column("document_sealed", sa.LargeBinary(), nullable=True),
        sa.Column("document_hash", sa.String(length=64), nullable=True),
        sa.Column("document_masked", sa.String(length=16), nullable=True),
        sa.Column("nationality", sa.String(length=3), nullable=True),
        sa.Column("issuing_state", sa.String(length=3), nullable=True),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("portrait_key_id", sa.String(length=32), nullable=True),
        sa.Column("portrait_embedding_sealed", sa.LargeBinary(), nullable=True),
        sa.Column("challenge", sa.String(length=64), nullable=True),
        sa.Column("challenge_issued_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("face_distance", sa.Float(), nullable=True),
        sa.Column("liveness_report", sa.Text(), nullable=True),
        sa.Column("reason", sa.String(length=64), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("images_purged_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('passport', 'confirm', 'face', 'review', 'verified', 'rejected', 'cancelled')",
            name=op.f("ck_verification_cases_status"),
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_verification_cases_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_verification_cases")),
    )
    with op.batch_alter_table("verification_cases", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_verification_cases_document_hash"), ["document_hash"], unique=False
        )
        batch_op.create_index(
            "ix_verification_cases_status_updated", ["status", "updated_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_verification_cases_user_id"), ["user_id"], unique=False
        )

    op.create_table(
        "review_decisions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("case_id", sa.Uuid(), nullable=False),
        sa.Column("reviewer_id", sa.Uuid(), nullable=False),
        sa.Column("decision", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "decision IN ('approve', 'reject')", name=op.f("ck_review_decisions_decision")
        ),
        sa.ForeignKeyConstraint(
            ["case_id"],
            ["verification_cases.id"],
            name=op.f("fk_review_decisions_case_id_verification_cases"),
        ),
        sa.ForeignKeyConstraint(
            ["reviewer_id"],
            ["staff_members.id"],
            name=op.f("fk_review_decisions_reviewer_id_staff_members"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_review_decisions")),
    )
    with op.batch_alter_table("review_decisions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_review_decisions_case_id"), ["case_id"], unique=False)

    op.create_table(
        "verification_attempts",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("case_id", sa.Uuid(), nullable=False),
        sa.Column("step", sa.String(length=16), nullable=False),
        sa.Column("outcome", sa.String(length=64), nullable=False),
        sa.Column("attempted_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"],
            ["verification_cases.id"],
            name=op.f("fk_verification_attempts_case_id_verification_cases"),
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_verification_attempts_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_verification_attempts")),
    )
    with op.batch_alter_table("verification_attempts", schema=None) as batch_op:
        batch_op.create_index(
            "ix_verification_attempts_user_at", ["user_id", "attempted_at"], unique=False
        )

    op.create_table(
        "verification_images",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("case_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("key_id", sa.String(length=32), nullable=False),
        sa.Column("sealed", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "kind IN ('page', 'portrait', 'selfie')", name=op.f("ck_verification_images_kind")
        ),
        sa.ForeignKeyConstraint(
            ["case_id"],
            ["verification_cases.id"],
            name=op.f("fk_verification_images_case_id_verification_cases"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_verification_images")),
        sa.UniqueConstraint("case_id", "kind", "position", name="uq_verification_images_slot"),
    )
    with op.batch_alter_table("verification_images", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_verification_images_case_id"), ["case_id"], unique=False
        )

    op.create_table(
        "verified_documents",
        sa.Column("document_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("case_id", sa.Uuid(), nullable=False),
        sa.Column("verified_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"],
            ["verification_cases.id"],
            name=op.f("fk_verified_documents_case_id_verification_cases"),
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_verified_documents_user_id_users")
        ),
        sa.PrimaryKeyConstraint("document_hash", name=op.f("pk_verified_documents")),
        sa.UniqueConstraint("user_id", name=op.f("uq_verified_documents_user_id")),
    )


def downgrade() -> None:
    op.drop_table("verified_documents")
    with op.batch_alter_table("verification_images", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_verification_images_case_id"))

    op.drop_table("verification_images")
    with op.batch_alter_table("verification_attempts", schema=None) as batch_op:
        batch_op.drop_index("ix_verification_attempts_user_at")

    op.drop_table("verification_attempts")
    with op.batch_alter_table("review_decisions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_review_decisions_case_id"))

    op.drop_table("review_decisions")
    with op.batch_alter_table("verification_cases", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_verification_cases_user_id"))
        batch_op.drop_index("ix_verification_cases_status_updated")
        batch_op.drop_index(batch_op.f("ix_verification_cases_document_hash"))

    op.drop_table("verification_cases")
    with op.batch_alter_table("staff_sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_staff_sessions_staff_id"))

    op.drop_table("staff_sessions")
    with op.batch_alter_table("face_checks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_face_checks_user_id"))

    op.drop_table("face_checks")
    with op.batch_alter_table("face_check_passes", schema=None) as batch_op:
        batch_op.drop_index("ix_face_check_passes_user_passed")

    op.drop_table("face_check_passes")
    op.drop_table("staff_members")
