-- store_customer_messages keeps its plan for the life of a connection
-- (force_generic_plan, migration 0013), and a plan made while messages
-- and conversations were nearly empty, as on a new database, read them
-- whole: in the first seconds of a burst on a fresh database the tables
-- were scanned 673 and 1,722 times (486,862 and 413,545 rows read) before
-- autovacuum's first ANALYZE made the plans new, and acknowledgements took
-- up to a second. Every lookup the function makes is by primary key or a
-- unique index, which is right at any size, so it never scans a table.
ALTER FUNCTION store_customer_messages(uuid[], text[], text[], timestamptz, jsonb) SET enable_seqscan = off;
