-- Resting orders (issue 11): limit and stop orders wait in status `open` for their trigger and end
-- `cancelled` or `expired` if it never comes (common/lifecycle.py). The order keeps its type, its
-- trigger price as an integer (base units of the output mint per one whole input token: the decimal
-- price the client gave, exactly) and its expiry.
ALTER TABLE orders DROP CONSTRAINT orders_status_check;
ALTER TABLE orders ADD CONSTRAINT orders_status_check CHECK (status IN
    ('pending', 'routing', 'building', 'submitted', 'confirmed', 'failed', 'open', 'cancelled', 'expired'));
ALTER TABLE order_events DROP CONSTRAINT order_events_status_check;
ALTER TABLE order_events ADD CONSTRAINT order_events_status_check CHECK (status IN
    ('pending', 'routing', 'building', 'submitted', 'confirmed', 'failed', 'open', 'cancelled', 'expired'));

ALTER TABLE orders
    ADD COLUMN order_type text NOT NULL DEFAULT 'market' CHECK (order_type IN ('market', 'limit', 'stop')),
    ADD COLUMN trigger_price numeric(20, 0) CHECK (trigger_price > 0),
    ADD COLUMN expires_at timestamptz,
    ADD CONSTRAINT orders_resting_fields CHECK (
        (order_type = 'market' AND trigger_price IS NULL AND expires_at IS NULL)
        OR (order_type <> 'market' AND trigger_price IS NOT NULL AND expires_at IS NOT NULL));

-- Recovery reads neither finished nor resting orders (the trigger loop owns the open ones).
DROP INDEX orders_unfinished_idx;
CREATE INDEX orders_unfinished_idx ON orders (updated_at, id)
    WHERE status NOT IN ('confirmed', 'failed', 'cancelled', 'expired', 'open');
-- The trigger loop reads every open order each slot.
CREATE INDEX orders_open_idx ON orders (input_mint, output_mint, trigger_price) WHERE status = 'open';
