-- Orders, their append-only events, signed executions and idempotency keys.
-- Amounts are integer base units; a u64 exceeds bigint, so they are numeric(20,0).

CREATE TABLE orders (
    id              uuid PRIMARY KEY,
    input_mint      text NOT NULL,
    input_symbol    text NOT NULL DEFAULT '',
    input_decimals  smallint NOT NULL CHECK (input_decimals BETWEEN 0 AND 18),
    output_mint     text NOT NULL,
    output_symbol   text NOT NULL DEFAULT '',
    output_decimals smallint NOT NULL CHECK (output_decimals BETWEEN 0 AND 18),
    amount_in       numeric(20, 0) NOT NULL CHECK (amount_in > 0 AND amount_in <= 18446744073709551615),
    slippage_bps    integer NOT NULL CHECK (slippage_bps BETWEEN 1 AND 5000),
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'routing', 'building', 'submitted', 'confirmed', 'failed')),
    attempts        integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    route           jsonb,
    amount_out      numeric(20, 0) CHECK (amount_out >= 0 AND amount_out <= 18446744073709551615),
    tx_hash         text,
    dex             text,
    executed_price  text,
    failure_reason  text,
    last_seq        integer NOT NULL DEFAULT 0 CHECK (last_seq >= 0),
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    -- For audit only: the key's uniqueness lives in idempotency_keys, which forgets a key after
    -- 24 h; a unique constraint here would refuse a key legitimately reused after that.
    idempotency_key text,
    request_hash    text,
    CONSTRAINT orders_distinct_mints CHECK (input_mint <> output_mint)
);

-- History, newest first, keyset-paginated on (created_at, id); and the same per status.
CREATE INDEX orders_history_idx ON orders (created_at DESC, id DESC);
CREATE INDEX orders_status_history_idx ON orders (status, created_at DESC, id DESC);
-- Recovery: unfinished orders, least recently updated first.
CREATE INDEX orders_unfinished_idx ON orders (updated_at, id)
    WHERE status NOT IN ('confirmed', 'failed');

CREATE TABLE order_events (
    order_id uuid NOT NULL REFERENCES orders (id),
    seq      integer NOT NULL CHECK (seq >= 1),
    status   text NOT NULL
             CHECK (status IN ('pending', 'routing', 'building', 'submitted', 'confirmed', 'failed')),
    data     jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(data) = 'object'),
    at       timestamptz NOT NULL,
    PRIMARY KEY (order_id, seq)
);

-- Events are an audit log: once written they never change.
CREATE FUNCTION order_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'order_events is append-only: % refused', TG_OP
        USING ERRCODE = 'restrict_violation';
END
$$;

CREATE TRIGGER order_events_no_update_delete
    BEFORE UPDATE OR DELETE ON order_events
    FOR EACH ROW EXECUTE FUNCTION order_events_append_only();

CREATE TRIGGER order_events_no_truncate
    BEFORE TRUNCATE ON order_events
    FOR EACH STATEMENT EXECUTE FUNCTION order_events_append_only();

CREATE TABLE executions (
    order_id                uuid NOT NULL REFERENCES orders (id),
    attempt                 integer NOT NULL CHECK (attempt >= 1),
    signature               text NOT NULL UNIQUE,
    signed_tx               bytea NOT NULL,
    blockhash               text NOT NULL,
    last_valid_block_height numeric(20, 0) NOT NULL
                            CHECK (last_valid_block_height BETWEEN 0 AND 18446744073709551615),
    state                   text NOT NULL CHECK (state IN ('signed', 'sent', 'landed', 'failed', 'expired')),
    created_at              timestamptz NOT NULL,
    updated_at              timestamptz NOT NULL
);

CREATE INDEX executions_order_idx ON executions (order_id, created_at, attempt);

CREATE TABLE idempotency_keys (
    key          text PRIMARY KEY,
    request_hash text NOT NULL,
    -- The key is claimed before its order is inserted, in the same transaction.
    order_id     uuid NOT NULL REFERENCES orders (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
    created_at   timestamptz NOT NULL
);

CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);
