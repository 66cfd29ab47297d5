-- Orders and idempotency keys belong to the API key that made them (issue 10, "the edge").
-- `owner` is the gateway's non-reversible id of the key (a SHA-256 prefix, never the key itself);
-- '' = no owner (an engine without API_KEYS, internal callers).

ALTER TABLE orders ADD COLUMN owner text NOT NULL DEFAULT '' CHECK (length(owner) <= 64);

-- One owner's history, newest first (ListOrders with an owner).
CREATE INDEX orders_owner_history_idx ON orders (owner, created_at DESC, id DESC) WHERE owner <> '';

-- An idempotency key is unique per owner: two keys never see (or collide with) each other's.
ALTER TABLE idempotency_keys ADD COLUMN owner text NOT NULL DEFAULT '';
ALTER TABLE idempotency_keys DROP CONSTRAINT idempotency_keys_pkey;
ALTER TABLE idempotency_keys ADD PRIMARY KEY (owner, key);
