"""Tour Pass: passes, top-ups, refunds of leftovers, spends; ledger account kind tour_pass

Revision ID: 0019
Revises: 0018
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

KINDS_BEFORE = (
    "'user_balance', 'user_held', 'merchant_settlement', 'card_clearing', "
    "'bank_clearing', 'fee_income', 'fx', 'issuance'"
)
KINDS_AFTER = KINDS_BEFORE + ", 'tour_pass'"


def _set_account_kinds(before: str, after: str) -> None:
    """Widen (or narrow back) the CHECK on ledger_accounts.kind.

    PostgreSQL replaces the constraint. SQLite cannot alter a CHECK, and rebuilding
    ledger_accounts would drop its triggers; SQLite's documented procedure for loosening
    a constraint without changing the stored format (sqlite.org/lang_altertable.html,
    section 7: edit the schema text with writable_schema, bump schema_version) is used.
    """
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.drop_constraint(op.f("ck_ledger_accounts_kind"), "ledger_accounts", type_="check")
        op.create_check_constraint(
            op.f("ck_ledger_accounts_kind"), "ledger_accounts", f"kind IN ({after})"
        )
        return
    schema = bind.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'ledger_accounts'"
    ).scalar_one()
    old, new = f"kind IN ({before})", f"kind IN ({after})"
    if schema.count(old) != 1:
        raise RuntimeError("ledger_accounts' kind CHECK is not the one this migration knows")
    version = bind.exec_driver_sql("PRAGMA schema_version").scalar_one()
    bind.exec_driver_sql("PRAGMA writable_schema = ON")
    bind.exec_driver_sql(
        "UPDATE sqlite_master SET sql = ? WHERE type = 'table' AND name = 'ledger_accounts'",
        (schema.replace(old, new),),
    )
    bind.exec_driver_sql(f"PRAGMA schema_version = {int(version) + 1}")
    bind.exec_driver_sql("PRAGMA writable_schema = OFF")


def upgrade() -> None:
    _set_account_kinds(KINDS_BEFORE, KINDS_AFTER)
    op.create_table(
        "tour_passes",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("state", sa.String(length=8), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("settled_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "state IN ('open', 'closed', 'expired')", name=op.f("ck_tour_passes_state")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_tour_passes_user_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["ledger_accounts.id"],
            name=op.f("fk_tour_passes_account_id_ledger_accounts"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tour_passes")),
    )
    op.create_index(
        "uq_tour_passes_open_owner",
        "tour_passes",
        ["user_id"],
        unique=True,
        sqlite_where=sa.text("state = 'open'"),
        postgresql_where=sa.text("state = 'open'"),
    )
    op.create_index("ix_tour_passes_state_expires", "tour_passes", ["state", "expires_at"])
    op.create_index("ix_tour_passes_unsettled", "tour_passes", ["settled_at", "state"])

    op.create_table(
        "tour_pass_top_ups",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("pass_id", sa.Uuid(), nullable=False),
        sa.Column("request_key", sa.String(length=64), nullable=False),
        sa.Column("card_id", sa.Uuid(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("fee", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(length=8), nullable=False),
        sa.Column("card_currency", sa.String(length=3), nullable=True),
        sa.Column("card_amount", sa.BigInteger(), nullable=True),
        sa.Column("card_rate", sa.Numeric(precision=18, scale=8), nullable=True),
        sa.Column("capture_id", sa.String(length=64), nullable=True),
        sa.Column("refunded", sa.BigInteger(), nullable=False),
        sa.Column("refund_refused_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failure_code", sa.String(length=64), nullable=True),
        sa.Column("ledger_operation_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "state IN ('pending', 'done', 'failed')", name=op.f("ck_tour_pass_top_ups_state")
        ),
        sa.CheckConstraint("amount > 0 AND fee >= 0", name=op.f("ck_tour_pass_top_ups_amount")),
        sa.CheckConstraint(
            "refunded >= 0 AND refunded <= amount", name=op.f("ck_tour_pass_top_ups_refunded")
        ),
        sa.ForeignKeyConstraint(
            ["pass_id"], ["tour_passes.id"], name=op.f("fk_tour_pass_top_ups_pass_id_tour_passes")
        ),
        sa.ForeignKeyConstraint(
            ["card_id"],
            ["foreign_cards.id"],
            name=op.f("fk_tour_pass_top_ups_card_id_foreign_cards"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tour_pass_top_ups")),
        sa.UniqueConstraint("pass_id", "request_key", name="uq_tour_pass_top_ups_request"),
    )
    op.create_index("ix_tour_pass_top_ups_pass", "tour_pass_top_ups", ["pass_id", "state"])

    op.create_table(
        "tour_pass_refunds",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("pass_id", sa.Uuid(), nullable=False),
        sa.Column("top_up_id", sa.Uuid(), nullable=True),
        sa.Column("destination", sa.String(length=8), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(length=8), nullable=False),
        sa.Column("card_currency", sa.String(length=3), nullable=True),
        sa.Column("card_amount", sa.BigInteger(), nullable=True),
        sa.Column("card_rate", sa.Numeric(precision=18, scale=8), nullable=True),
        sa.Column("network_refund_id", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "state IN ('sending', 'done', 'refused')", name=op.f("ck_tour_pass_refunds_state")
        ),
        sa.CheckConstraint(
            "destination IN ('card', 'balance', 'held')",
            name=op.f("ck_tour_pass_refunds_destination"),
        ),
        sa.CheckConstraint("amount > 0", name=op.f("ck_tour_pass_refunds_amount")),
        sa.ForeignKeyConstraint(
            ["pass_id"], ["tour_passes.id"], name=op.f("fk_tour_pass_refunds_pass_id_tour_passes")
        ),
        sa.ForeignKeyConstraint(
            ["top_up_id"],
            ["tour_pass_top_ups.id"],
            name=op.f("fk_tour_pass_refunds_top_up_id_tour_pass_top_ups"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tour_pass_refunds")),
    )
    op.create_index("ix_tour_pass_refunds_pass", "tour_pass_refunds", ["pass_id", "state"])

    op.create_table(
        "tour_pass_spends",
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("pass_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["payment_orders.id"],
            name=op.f("fk_tour_pass_spends_order_id_payment_orders"),
        ),
        sa.ForeignKeyConstraint(
            ["pass_id"], ["tour_passes.id"], name=op.f("fk_tour_pass_spends_pass_id_tour_passes")
        ),
        sa.PrimaryKeyConstraint("order_id", name=op.f("pk_tour_pass_spends")),
    )
    op.create_index(
        op.f("ix_tour_pass_spends_pass_id"), "tour_pass_spends", ["pass_id"], unique=False
    )


def downgrade() -> None:
    # The ledger's history is append-only: with Tour Pass accounts in it, the CHECK
    # cannot be narrowed back. Checked first, so a refused downgrade changes nothing.
    used = (
        op.get_bind()
        .exec_driver_sql("SELECT COUNT(*) FROM ledger_accounts WHERE kind = 'tour_pass'")
        .scalar_one()
    )
    if used:
        raise RuntimeError("Tour Pass accounts exist in the ledger; they cannot be removed")
    op.drop_index(op.f("ix_tour_pass_spends_pass_id"), table_name="tour_pass_spends")
    op.drop_table("tour_pass_spends")
    op.drop_index("ix_tour_pass_refunds_pass", table_name="tour_pass_refunds")
    op.drop_table("tour_pass_refunds")
    op.drop_index("ix_tour_pass_top_ups_pass", table_name="tour_pass_top_ups")
    op.drop_table("tour_pass_top_ups")
    op.drop_index("ix_tour_passes_unsettled", table_name="tour_passes")
    op.drop_index("ix_tour_passes_state_expires", table_name="tour_passes")
    op.drop_index("uq_tour_passes_open_owner", table_name="tour_passes")
    op.drop_table("tour_passes")
    _set_account_kinds(KINDS_AFTER, KINDS_BEFORE)
