-- The outbox holds only events not yet published (normally a handful, those in flight), and the
-- relay reads it in (order_id, seq) order by its primary key, filtering on `at` as it goes. The
-- index on `at` cost every event an index insert (and its delete) for a scan that never needed it.
DROP INDEX IF EXISTS event_outbox_at_idx;
