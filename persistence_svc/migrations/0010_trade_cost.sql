-- What a confirmed swap cost (issue 11, item 7): a serialized orderengine.v1.TradeCost (network fee,
-- priority fee, rent, the wallet's balance change per mint; integers in base units), set with the
-- confirmed event. NULL before confirmation, and for orders confirmed before this migration.
ALTER TABLE orders ADD COLUMN cost bytea CHECK (octet_length(cost) <= 4096);
