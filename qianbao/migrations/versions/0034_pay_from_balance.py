"""pay_from_balance: a payment by balance as one call to a PostgreSQL function

The common case of ``payments.pay_with_balance`` (the right payment password, a payable
order, no restriction, within the limits, enough money) as one statement instead of
thirteen: ``qianbao/wallet/payments/in_database.py`` calls it and explains the split.
It writes nothing unless it pays (the wallet claim aside, which the Python path repeats):
every other case returns no row and the Python path, in the same transaction, gives
the answer. PostgreSQL only; SQLite always runs the Python path.

Revision ID: 0034
Revises: 0033
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "0034"
down_revision = "0033"
branch_labels = None
depends_on = None

# Locks in the Python path's order (the payment password's row, the order, the wallet
# claim, the ledger rows by id), so the two paths cannot deadlock each other.
PAY_FROM_BALANCE = r"""
CREATE FUNCTION pay_from_balance(
    p_user uuid,
    p_order uuid,
    p_pin_hash text,          -- the entered PIN's keyed hash under the current key
    p_now timestamptz,
    p_day date,               -- the limits' day and year (Beijing time) of p_now
    p_year date,
    p_rights_keys text[],     -- 'level' or 'level/card' (a bound mainland bank card)
    p_use_balance boolean[],  -- policy.py's rights for each key
    p_per_day bigint[],
    p_per_year bigint[],
    p_operation uuid,         -- ids for the ledger operation and its transfer
    p_transfer uuid
) RETURNS TABLE (
    -- the order as paid (what payments.order_view shows) and the ledger accounts
    id uuid, merchant_id uuid, out_trade_no text, subject text, currency text,
    amount bigint, refunded bigint, status text, created_at timestamptz,
    expires_at timestamptz, paid_at timestamptz, source text, fee bigint,
    card_currency text, card_amount bigint, buyer_id uuid, payer_id uuid,
    debit_account_id uuid, credit_account_id uuid
) LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_hash text;
    v_failures integer;
    v_locked timestamptz;
    v_order payment_orders%ROWTYPE;
    v_level text;
    v_rights integer;
    v_used_day bigint;
    v_used_year bigint;
    v_debit uuid;
    v_credit uuid;
    v_credit_row uuid;
    v_account record;
    v_locked_rows integer := 0;
    v_payable boolean := true;
BEGIN
    -- The payment password: matching under the current key, no wrong entry counted, not
    -- locked. (Compared as hashes of the hashes: no timing tells how much of it matched.)
    SELECT password_hash, failures, locked_until INTO v_hash, v_failures, v_locked
        FROM payment_passwords WHERE user_id = p_user FOR UPDATE;
    IF NOT FOUND OR v_failures <> 0 OR (v_locked IS NOT NULL AND v_locked > p_now)
        OR sha256(convert_to(v_hash, 'UTF8')) <> sha256(convert_to(p_pin_hash, 'UTF8')) THEN
        RETURN;
    END IF;

    -- The order: waiting for this payment, nobody's yet, no card attempt under way.
    SELECT * INTO v_order FROM payment_orders WHERE id = p_order FOR UPDATE;
    IF NOT FOUND OR v_order.status <> 'WAIT_BUYER_PAY' OR v_order.expires_at <= p_now
        OR v_order.payer_id IS NOT NULL OR v_order.card_attempt_key IS NOT NULL THEN
        RETURN;
    END IF;

    -- No restriction in force; the level's rights allow paying from the balance.
    PERFORM 1 FROM account_restrictions WHERE user_id = p_user AND lifted_at IS NULL LIMIT 1;
    IF FOUND THEN
        RETURN;
    END IF;
    SELECT verification_level INTO v_level FROM users WHERE id = p_user;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    PERFORM 1 FROM bank_cards WHERE user_id = p_user AND removed_at IS NULL LIMIT 1;
    v_rights := array_position(p_rights_keys, v_level || CASE WHEN FOUND THEN '/card' ELSE '' END);
    IF v_rights IS NULL OR NOT p_use_balance[v_rights] THEN
        RETURN;
    END IF;

    -- The wallet claim (a parallel payment or transfer of this person waits here), then
    -- the day's and the year's use of the balance against the limits.
    INSERT INTO rate_buckets (key, touched_at) VALUES ('wallet:' || p_user, p_now)
        ON CONFLICT (key) DO UPDATE SET touched_at = excluded.touched_at;
    SELECT coalesce(sum(amount) FILTER (WHERE period = 'day'), 0),
           coalesce(sum(amount) FILTER (WHERE period = 'year'), 0)
        INTO v_used_day, v_used_year
        FROM usage_counters
        WHERE user_id = p_user AND measure = 'balance'
          AND ((period = 'day' AND starts_on = p_day) OR (period = 'year' AND starts_on = p_year));
    IF v_used_day + v_order.amount > p_per_day[v_rights]
        OR v_used_year + v_order.amount > p_per_year[v_rights] THEN
        RETURN;  -- (a NULL limit compares to NULL: no limit)
    END IF;

    -- The ledger: the person's balance (unsharded) to one row of the merchant's
    -- settlement account chosen at random, both rows locked in id order, the floor checked.
    SELECT account_id INTO v_debit FROM wallet_accounts
        WHERE owner_key = p_user::text AND kind = 'user_balance' AND currency = 'CNY';
    IF NOT FOUND THEN
        RETURN;
    END IF;
    SELECT settlement_account_id INTO v_credit FROM merchants WHERE id = v_order.merchant_id;
    PERFORM 1 FROM ledger_accounts WHERE shard_of = v_debit LIMIT 1;
    IF FOUND OR v_credit = v_debit THEN
        RETURN;
    END IF;
    SELECT id INTO v_credit_row FROM ledger_accounts
        WHERE id = v_credit OR shard_of = v_credit ORDER BY random() LIMIT 1;
    FOR v_account IN
        SELECT id, currency, floor, balance, pending_debits FROM ledger_accounts
            WHERE id IN (v_debit, v_credit_row) ORDER BY id FOR UPDATE
    LOOP
        v_locked_rows := v_locked_rows + 1;
        IF v_account.currency <> 'CNY' OR (v_account.id = v_debit
            AND v_account.balance - v_account.pending_debits - v_order.amount < v_account.floor)
        THEN
            v_payable := false;
        END IF;
    END LOOP;
    IF NOT v_payable OR v_locked_rows <> 2 THEN
        RETURN;
    END IF;

    -- The operation under the order's key, its request hashed as ledger.request_hash
    -- hashes it (sorted keys, no spaces), and its one transfer; the trigger moves the
    -- balances.
    INSERT INTO ledger_operations (id, idempotency_key, request_hash, result, created_at)
        VALUES (
            p_operation,
            format('order:%s:pay', p_order),  -- (no colon-word: text() would bind it)
            encode(sha256(convert_to(format(
                '{"amount":{"currency":"CNY","minor":%s},"credit":"%s","debit":"%s","op":"transfer"}',
                v_order.amount, v_credit, v_debit), 'UTF8')), 'hex'),
            format('{"result":{},"transfers":["%s"]}', p_transfer),
            p_now)
        ON CONFLICT (idempotency_key) DO NOTHING;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    INSERT INTO ledger_transfers (id, operation_id, position, debit_account_id,
            credit_account_id, amount, currency, kind, pending_id, expires_at, created_at)
        VALUES (p_transfer, p_operation, 0, v_debit, v_credit_row, v_order.amount, 'CNY',
            'posted', NULL, NULL, p_now);

    -- The limits' counters and the order, paid.
    INSERT INTO usage_counters (user_id, measure, period, starts_on, amount, count)
        VALUES (p_user, 'balance', 'day', p_day, v_order.amount, 1),
               (p_user, 'balance', 'year', p_year, v_order.amount, 1)
        ON CONFLICT (user_id, measure, period, starts_on) DO UPDATE
        SET amount = usage_counters.amount + excluded.amount,
            count = usage_counters.count + excluded.count;
    UPDATE payment_orders
        SET status = 'TRADE_SUCCESS', source = 'balance', buyer_id = p_user,
            payer_id = p_user, paid_at = p_now, ledger_operation_id = p_operation
        WHERE id = p_order
        RETURNING * INTO v_order;
    RETURN QUERY SELECT v_order.id, v_order.merchant_id, v_order.out_trade_no::text,
        v_order.subject::text, v_order.currency::text, v_order.amount, v_order.refunded,
        v_order.status::text, v_order.created_at, v_order.expires_at, v_order.paid_at,
        v_order.source::text, v_order.fee, v_order.card_currency::text, v_order.card_amount,
        v_order.buyer_id, v_order.payer_id, v_debit, v_credit;
END
$$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(PAY_FROM_BALANCE)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "DROP FUNCTION pay_from_balance(uuid, uuid, text, timestamptz, date, date, text[],"
            " boolean[], bigint[], bigint[], uuid, uuid)"
        )
