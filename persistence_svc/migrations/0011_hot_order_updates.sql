-- Every event updates its order's row. With the status (or updated_at) in an index, none of those
-- updates could be HOT: each wrote a new tuple into every index of the table (six), four times per
-- order. Now no index holds a column an event changes on the way, only `phase`, which changes when
-- an order starts resting, starts running again or finishes, and `final_status`, set once at the
-- end; the routing, building and submitted updates are HOT (fillfactor leaves them room).
-- phase: 'active' (pending, routing, building, submitted), 'open' (resting), 'done' (terminal);
-- store._PHASE_SQL derives it from common/lifecycle.py, and a test checks these copies against it.
ALTER TABLE orders ADD COLUMN phase text NOT NULL DEFAULT 'active'
    CHECK (phase IN ('active', 'open', 'done'));
ALTER TABLE orders ADD COLUMN final_status text;
UPDATE orders SET
    phase = CASE WHEN status IN ('confirmed', 'failed', 'cancelled', 'expired') THEN 'done'
                 WHEN status IN ('open') THEN 'open' ELSE 'active' END,
    final_status = CASE WHEN status IN ('confirmed', 'failed', 'cancelled', 'expired') THEN status END;
ALTER TABLE orders SET (fillfactor = 80);

-- History by status: finished orders by final_status; running and resting ones are few and are
-- found through the two partial indexes below.
DROP INDEX orders_status_history_idx;
CREATE INDEX orders_final_history_idx ON orders (final_status, created_at DESC, id DESC)
    WHERE final_status IS NOT NULL;
-- Recovery reads the running orders (neither finished nor resting).
DROP INDEX orders_unfinished_idx;
CREATE INDEX orders_active_idx ON orders (created_at, id) WHERE phase = 'active';
-- The trigger loop and the sniper watch read every open order.
DROP INDEX orders_open_idx;
CREATE INDEX orders_open_idx ON orders (input_mint, output_mint, trigger_price) WHERE phase = 'open';
