-- The transactional outbox, and at most one live execution per order.

-- Every event is also written here, by the same statement that writes it into order_events, and
-- deleted once it was handed to Redis. What stays (the process died between commit and publish,
-- Redis was down) is published by the relay in (order_id, seq) order. A separate table keeps
-- order_events append-only (its trigger refuses any UPDATE) and small to scan: it holds only the
-- events not yet published.
CREATE TABLE event_outbox (
    order_id uuid NOT NULL,
    seq      integer NOT NULL,
    at       timestamptz NOT NULL,
    PRIMARY KEY (order_id, seq)
);

CREATE INDEX event_outbox_at_idx ON event_outbox (at);

-- A swap is never sent twice for one order: while one execution of an order may still land
-- (signed, sent) or has landed, no other execution of that order can be stored, so none can be
-- sent. Expired and failed executions do not count.
CREATE UNIQUE INDEX executions_one_live_idx ON executions (order_id)
    WHERE state IN ('signed', 'sent', 'landed');
