-- Sniper orders (issue 11, item 4): an order for a pair that may have no pool yet rests `open` until
-- a pool of the pair holds at least `min_liquidity` of the order's input mint (integer base units)
-- and pays at a price within `max_price` (base units of the input mint per one whole output token;
-- NULL = no price bound). It keeps an expiry like every resting order, and no trigger price.
ALTER TABLE orders DROP CONSTRAINT orders_order_type_check;
ALTER TABLE orders ADD CONSTRAINT orders_order_type_check
    CHECK (order_type IN ('market', 'limit', 'stop', 'sniper'));
ALTER TABLE orders
    ADD COLUMN min_liquidity numeric(20, 0)
        CHECK (min_liquidity > 0 AND min_liquidity <= 18446744073709551615),
    ADD COLUMN max_price numeric(20, 0)
        CHECK (max_price > 0 AND max_price <= 18446744073709551615);
ALTER TABLE orders DROP CONSTRAINT orders_resting_fields;
ALTER TABLE orders ADD CONSTRAINT orders_resting_fields CHECK (
    (order_type = 'market' AND trigger_price IS NULL AND expires_at IS NULL
        AND min_liquidity IS NULL AND max_price IS NULL)
    OR (order_type IN ('limit', 'stop') AND trigger_price IS NOT NULL AND expires_at IS NOT NULL
        AND min_liquidity IS NULL AND max_price IS NULL)
    OR (order_type = 'sniper' AND trigger_price IS NULL AND expires_at IS NOT NULL
        AND min_liquidity IS NOT NULL));
