-- Execute-by-quote and the price-impact guard (issue 11). `quoted_route` is the serialized
-- orderengine.v1.Route of the quote the order executes (NULL: the worker routes the order itself),
-- `quote_id` that quote's id, `max_price_impact_bps` the bound on the route's price impact the
-- order was accepted with (0: none, as for orders made before this migration).
ALTER TABLE orders
    ADD COLUMN quoted_route bytea CHECK (octet_length(quoted_route) <= 65536),
    ADD COLUMN quote_id text NOT NULL DEFAULT '' CHECK (length(quote_id) <= 64),
    ADD COLUMN max_price_impact_bps integer NOT NULL DEFAULT 0
        CHECK (max_price_impact_bps BETWEEN 0 AND 10000);
