-- The chosen route, typed (issue 9): a serialized orderengine.v1.Route, which the worker resumes
-- from. `route` (jsonb) keeps the display form the API shows (quotes and route); the routing
-- event's data holds the same display JSON. NULL before routing.
--
-- Orders routed before this migration have no route_proto: a worker that resumes one of them
-- starts a new attempt, and the executor's store-before-send guard (one live execution per order)
-- makes it follow the stored transaction instead of signing a second one.
ALTER TABLE orders ADD COLUMN route_proto bytea CHECK (octet_length(route_proto) <= 65536);
