"""ledger: accounts, operations (idempotency keys), append-only transfers, and the
triggers that keep balances equal to history

The triggers are the ledger's guarantees, so they exist on both dialects:

- a transfer's currency is its accounts' currency; a second phase (post or void) names
  a pending transfer between the same two accounts, posts at most its amount, voids
  exactly its amount;
- inserting a transfer applies it to both accounts' ``balance`` / ``pending_*`` columns
  in the same statement (so a balance always equals its history), and the account's
  CHECK (floor) judges the result;
- transfers and operations are append-only (UPDATE and DELETE raise);
- an account opens empty, keeps its currency, and its balance columns change only from
  the transfer trigger (PostgreSQL: ``pg_trigger_depth()``; SQLite: the change must be
  the effect of the newest transfer, not yet applied to that row).

Careful: on SQLite, Alembic's batch mode recreates a table to alter it and drops its
triggers. A later migration that alters these tables with ``batch_alter_table`` must
create the triggers again (``create_triggers()`` below).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

ACCOUNT_KINDS = (
    "'user_balance', 'user_held', 'merchant_settlement', 'card_clearing', "
    "'bank_clearing', 'fee_income', 'fx', 'issuance'"
)

POSTGRESQL_TRIGGERS = [
    """
    CREATE FUNCTION ledger_transfer_apply() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        pending ledger_transfers%ROWTYPE;
        moved bigint := 0;
        reserved bigint := 0;
        released bigint := 0;
    BEGIN
        IF (SELECT count(*) FROM ledger_accounts
            WHERE id IN (NEW.debit_account_id, NEW.credit_account_id)
              AND currency = NEW.currency) <> 2 THEN
            RAISE EXCEPTION 'ledger: a transfer moves one currency between accounts of that currency'
                USING ERRCODE = 'check_violation';
        END IF;
        IF NEW.kind IN ('post_pending', 'void_pending') THEN
            SELECT * INTO pending FROM ledger_transfers WHERE id = NEW.pending_id;
            IF NOT FOUND OR pending.kind <> 'pending'
               OR pending.debit_account_id <> NEW.debit_account_id
               OR pending.credit_account_id <> NEW.credit_account_id THEN
                RAISE EXCEPTION 'ledger: a second phase names a pending transfer between the same accounts'
                    USING ERRCODE = 'check_violation';
            END IF;
            IF NEW.kind = 'post_pending' AND NEW.amount > pending.amount THEN
                RAISE EXCEPTION 'ledger: a post moves at most the pending amount'
                    USING ERRCODE = 'check_violation';
            END IF;
            IF NEW.kind = 'void_pending' AND NEW.amount <> pending.amount THEN
                RAISE EXCEPTION 'ledger: a void releases exactly the pending amount'
                    USING ERRCODE = 'check_violation';
            END IF;
            released := pending.amount;
        END IF;
        IF NEW.kind IN ('posted', 'post_pending') THEN
            moved := NEW.amount;
        ELSIF NEW.kind = 'pending' THEN
            reserved := NEW.amount;
        END IF;
        -- The two rows in id order, whatever the direction: transfers A->B and B->A
        -- running at once lock in the same order and cannot deadlock each other.
        IF NEW.debit_account_id < NEW.credit_account_id THEN
            UPDATE ledger_accounts SET balance = balance - moved,
                pending_debits = pending_debits + reserved - released,
                last_transfer_id = NEW.id
            WHERE id = NEW.debit_account_id;
            UPDATE ledger_accounts SET balance = balance + moved,
                pending_credits = pending_credits + reserved - released,
                last_transfer_id = NEW.id
            WHERE id = NEW.credit_account_id;
        ELSE
            UPDATE ledger_accounts SET balance = balance + moved,
                pending_credits = pending_credits + reserved - released,
                last_transfer_id = NEW.id
            WHERE id = NEW.credit_account_id;
            UPDATE ledger_accounts SET balance = balance - moved,
                pending_debits = pending_debits + reserved - released,
                last_transfer_id = NEW.id
            WHERE id = NEW.debit_account_id;
        END IF;
        RETURN NULL;
    END $$
    """,
    """
    CREATE TRIGGER ledger_transfers_apply AFTER INSERT ON ledger_transfers
    FOR EACH ROW EXECUTE FUNCTION ledger_transfer_apply()
    """,
    """
    CREATE FUNCTION ledger_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'ledger: % is append-only', TG_TABLE_NAME
            USING ERRCODE = 'check_violation';
    END $$
    """,
    """
    CREATE TRIGGER ledger_transfers_append_only BEFORE UPDATE OR DELETE ON ledger_transfers
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change()
    """,
    """
    CREATE TRIGGER ledger_operations_append_only BEFORE UPDATE OR DELETE ON ledger_operations
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change()
    """,
    """
    CREATE FUNCTION ledger_account_guard() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'INSERT' THEN
            IF NEW.balance <> 0 OR NEW.pending_debits <> 0 OR NEW.pending_credits <> 0
               OR NEW.last_transfer_id IS NOT NULL THEN
                RAISE EXCEPTION 'ledger: an account opens empty' USING ERRCODE = 'check_violation';
            END IF;
            RETURN NEW;
        END IF;
        IF NEW.id <> OLD.id OR NEW.currency <> OLD.currency
           OR NEW.shard_of IS DISTINCT FROM OLD.shard_of THEN
            RAISE EXCEPTION 'ledger: an account keeps its id, currency and shard'
                USING ERRCODE = 'check_violation';
        END IF;
        -- A client's own UPDATE runs this at depth 1; the transfer trigger's at depth 2.
        IF pg_trigger_depth() < 2 AND
           (NEW.balance, NEW.pending_debits, NEW.pending_credits, NEW.last_transfer_id)
           IS DISTINCT FROM
           (OLD.balance, OLD.pending_debits, OLD.pending_credits, OLD.last_transfer_id) THEN
            RAISE EXCEPTION 'ledger: balances change only through transfers'
                USING ERRCODE = 'check_violation';
        END IF;
        RETURN NEW;
    END $$
    """,
    """
    CREATE TRIGGER ledger_accounts_guard BEFORE INSERT OR UPDATE ON ledger_accounts
    FOR EACH ROW EXECUTE FUNCTION ledger_account_guard()
    """,
]

# The amount a second phase releases from its pending transfer, for SQLite's triggers.
_SQLITE_RELEASED = "(SELECT amount FROM ledger_transfers WHERE id = {row}.pending_id)"

SQLITE_TRIGGERS = [
    """
    CREATE TRIGGER ledger_transfers_check BEFORE INSERT ON ledger_transfers
    BEGIN
        SELECT RAISE(ABORT, 'ledger: a transfer moves one currency between accounts of that currency')
        WHERE (SELECT currency FROM ledger_accounts WHERE id = NEW.debit_account_id)
                  IS NOT NEW.currency
           OR (SELECT currency FROM ledger_accounts WHERE id = NEW.credit_account_id)
                  IS NOT NEW.currency;
        SELECT RAISE(ABORT, 'ledger: a second phase names a pending transfer between the same accounts')
        WHERE NEW.kind IN ('post_pending', 'void_pending') AND NOT EXISTS (
            SELECT 1 FROM ledger_transfers AS p
            WHERE p.id = NEW.pending_id AND p.kind = 'pending'
              AND p.debit_account_id = NEW.debit_account_id
              AND p.credit_account_id = NEW.credit_account_id);
        SELECT RAISE(ABORT, 'ledger: a post moves at most the pending amount')
        WHERE NEW.kind = 'post_pending' AND NEW.amount > RELEASED_NEW;
        SELECT RAISE(ABORT, 'ledger: a void releases exactly the pending amount')
        WHERE NEW.kind = 'void_pending' AND NEW.amount <> RELEASED_NEW;
    END
    """,
    """
    CREATE TRIGGER ledger_transfers_apply AFTER INSERT ON ledger_transfers
    BEGIN
        UPDATE ledger_accounts SET
            balance = balance
                - CASE WHEN NEW.kind IN ('posted', 'post_pending') THEN NEW.amount ELSE 0 END,
            pending_debits = pending_debits + CASE NEW.kind
                WHEN 'pending' THEN NEW.amount WHEN 'posted' THEN 0 ELSE -RELEASED_NEW END,
            last_transfer_id = NEW.id
        WHERE id = NEW.debit_account_id;
        UPDATE ledger_accounts SET
            balance = balance
                + CASE WHEN NEW.kind IN ('posted', 'post_pending') THEN NEW.amount ELSE 0 END,
            pending_credits = pending_credits + CASE NEW.kind
                WHEN 'pending' THEN NEW.amount WHEN 'posted' THEN 0 ELSE -RELEASED_NEW END,
            last_transfer_id = NEW.id
        WHERE id = NEW.credit_account_id;
    END
    """,
    """
    CREATE TRIGGER ledger_transfers_no_update BEFORE UPDATE ON ledger_transfers
    BEGIN SELECT RAISE(ABORT, 'ledger: ledger_transfers is append-only'); END
    """,
    """
    CREATE TRIGGER ledger_transfers_no_delete BEFORE DELETE ON ledger_transfers
    BEGIN SELECT RAISE(ABORT, 'ledger: ledger_transfers is append-only'); END
    """,
    """
    CREATE TRIGGER ledger_operations_no_update BEFORE UPDATE ON ledger_operations
    BEGIN SELECT RAISE(ABORT, 'ledger: ledger_operations is append-only'); END
    """,
    """
    CREATE TRIGGER ledger_operations_no_delete BEFORE DELETE ON ledger_operations
    BEGIN SELECT RAISE(ABORT, 'ledger: ledger_operations is append-only'); END
    """,
    """
    CREATE TRIGGER ledger_accounts_open_empty BEFORE INSERT ON ledger_accounts
    WHEN NEW.balance <> 0 OR NEW.pending_debits <> 0 OR NEW.pending_credits <> 0
        OR NEW.last_transfer_id IS NOT NULL
    BEGIN SELECT RAISE(ABORT, 'ledger: an account opens empty'); END
    """,
    """
    CREATE TRIGGER ledger_accounts_keep_identity BEFORE UPDATE ON ledger_accounts
    WHEN NEW.id IS NOT OLD.id OR NEW.currency IS NOT OLD.currency
        OR NEW.shard_of IS NOT OLD.shard_of
    BEGIN SELECT RAISE(ABORT, 'ledger: an account keeps its id, currency and shard'); END
    """,
    # SQLite has no trigger depth: a change to the balance columns must be exactly the
    # effect of the newest transfer (the one whose trigger is running) on this row, and
    # that transfer must not have been applied to the row already.
    """
    CREATE TRIGGER ledger_accounts_balance_from_transfers BEFORE UPDATE ON ledger_accounts
    WHEN NEW.balance IS NOT OLD.balance OR NEW.pending_debits IS NOT OLD.pending_debits
        OR NEW.pending_credits IS NOT OLD.pending_credits
        OR NEW.last_transfer_id IS NOT OLD.last_transfer_id
    BEGIN
        SELECT RAISE(ABORT, 'ledger: balances change only through transfers')
        WHERE NEW.last_transfer_id IS OLD.last_transfer_id OR NOT EXISTS (
            SELECT 1 FROM (SELECT * FROM ledger_transfers ORDER BY rowid DESC LIMIT 1) AS t
            WHERE t.id = NEW.last_transfer_id
              AND NEW.id IN (t.debit_account_id, t.credit_account_id)
              AND NEW.balance = OLD.balance + CASE
                  WHEN t.kind NOT IN ('posted', 'post_pending') THEN 0
                  WHEN NEW.id = t.credit_account_id THEN t.amount ELSE -t.amount END
              AND NEW.pending_debits = OLD.pending_debits + CASE
                  WHEN NEW.id <> t.debit_account_id OR t.kind = 'posted' THEN 0
                  WHEN t.kind = 'pending' THEN t.amount ELSE -RELEASED_T END
              AND NEW.pending_credits = OLD.pending_credits + CASE
                  WHEN NEW.id <> t.credit_account_id OR t.kind = 'posted' THEN 0
                  WHEN t.kind = 'pending' THEN t.amount ELSE -RELEASED_T END);
    END
    """,
]

TRIGGER_NAMES = [
    ("ledger_transfers", "ledger_transfers_check"),
    ("ledger_transfers", "ledger_transfers_apply"),
    ("ledger_transfers", "ledger_transfers_no_update"),
    ("ledger_transfers", "ledger_transfers_no_delete"),
    ("ledger_transfers", "ledger_transfers_append_only"),
    ("ledger_operations", "ledger_operations_no_update"),
    ("ledger_operations", "ledger_operations_no_delete"),
    ("ledger_operations", "ledger_operations_append_only"),
    ("ledger_accounts", "ledger_accounts_open_empty"),
    ("ledger_accounts", "ledger_accounts_keep_identity"),
    ("ledger_accounts", "ledger_accounts_balance_from_transfers"),
    ("ledger_accounts", "ledger_accounts_guard"),
]
POSTGRESQL_FUNCTIONS = ["ledger_transfer_apply", "ledger_refuse_change", "ledger_account_guard"]


def create_triggers() -> None:
    if op.get_bind().dialect.name == "postgresql":
        statements = POSTGRESQL_TRIGGERS
    else:
        statements = [
            statement.replace("RELEASED_NEW", _SQLITE_RELEASED.format(row="NEW")).replace(
                "RELEASED_T", _SQLITE_RELEASED.format(row="t")
            )
            for statement in SQLITE_TRIGGERS
        ]
    for statement in statements:
        op.execute(statement)


def drop_triggers() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    for table, name in TRIGGER_NAMES:
        op.execute(f"DROP TRIGGER IF EXISTS {name}" + (f" ON {table}" if postgresql else ""))
    if postgresql:
        for function in POSTGRESQL_FUNCTIONS:
            op.execute(f"DROP FUNCTION IF EXISTS {function}()")


def upgrade() -> None:
    op.create_table(
        "ledger_accounts",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("floor", sa.BigInteger(), nullable=True),
        sa.Column("balance", sa.BigInteger(), nullable=False),
        sa.Column("pending_debits", sa.BigInteger(), nullable=False),
        sa.Column("pending_credits", sa.BigInteger(), nullable=False),
        sa.Column("last_transfer_id", sa.Uuid(), nullable=True),
        sa.Column("shard_of", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(f"kind IN ({ACCOUNT_KINDS})", name=op.f("ck_ledger_accounts_kind")),
        sa.CheckConstraint(
            "floor IS NULL OR balance - pending_debits >= floor",
            name=op.f("ck_ledger_accounts_floor"),
        ),
        sa.CheckConstraint(
            "pending_debits >= 0 AND pending_credits >= 0", name=op.f("ck_ledger_accounts_pending")
        ),
        sa.ForeignKeyConstraint(
            ["shard_of"],
            ["ledger_accounts.id"],
            name=op.f("fk_ledger_accounts_shard_of_ledger_accounts"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_accounts")),
    )
    op.create_index("ix_ledger_accounts_owner", "ledger_accounts", ["owner_id"])
    op.create_index("ix_ledger_accounts_shard_of", "ledger_accounts", ["shard_of"])

    op.create_table(
        "ledger_operations",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=128), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("result", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_operations")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_ledger_operations_idempotency_key")),
    )
    op.create_table(
        "ledger_transfers",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("operation_id", sa.Uuid(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("debit_account_id", sa.Uuid(), nullable=False),
        sa.Column("credit_account_id", sa.Uuid(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("pending_id", sa.Uuid(), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "(kind IN ('post_pending', 'void_pending')) = (pending_id IS NOT NULL)",
            name=op.f("ck_ledger_transfers_pending_id"),
        ),
        sa.CheckConstraint(
            "kind = 'pending' OR expires_at IS NULL", name=op.f("ck_ledger_transfers_expires_at")
        ),
        sa.CheckConstraint(
            "kind IN ('posted', 'pending', 'post_pending', 'void_pending')",
            name=op.f("ck_ledger_transfers_kind"),
        ),
        sa.CheckConstraint("amount > 0", name=op.f("ck_ledger_transfers_amount")),
        sa.CheckConstraint(
            "debit_account_id <> credit_account_id", name=op.f("ck_ledger_transfers_two_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["credit_account_id"],
            ["ledger_accounts.id"],
            name=op.f("fk_ledger_transfers_credit_account_id_ledger_accounts"),
        ),
        sa.ForeignKeyConstraint(
            ["debit_account_id"],
            ["ledger_accounts.id"],
            name=op.f("fk_ledger_transfers_debit_account_id_ledger_accounts"),
        ),
        sa.ForeignKeyConstraint(
            ["operation_id"],
            ["ledger_operations.id"],
            name=op.f("fk_ledger_transfers_operation_id_ledger_operations"),
        ),
        sa.ForeignKeyConstraint(
            ["pending_id"],
            ["ledger_transfers.id"],
            name=op.f("fk_ledger_transfers_pending_id_ledger_transfers"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_transfers")),
        sa.UniqueConstraint("pending_id", name=op.f("uq_ledger_transfers_pending_id")),
    )
    op.create_index("ix_ledger_transfers_credit", "ledger_transfers", ["credit_account_id"])
    op.create_index("ix_ledger_transfers_debit", "ledger_transfers", ["debit_account_id"])
    op.create_index("ix_ledger_transfers_expires_at", "ledger_transfers", ["expires_at"])
    op.create_index(
        "ix_ledger_transfers_operation",
        "ledger_transfers",
        ["operation_id", "position"],
        unique=True,
    )
    create_triggers()


def downgrade() -> None:
    drop_triggers()
    op.drop_table("ledger_transfers")
    op.drop_table("ledger_operations")
    op.drop_table("ledger_accounts")
