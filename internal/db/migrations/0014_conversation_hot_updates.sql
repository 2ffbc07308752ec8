-- Every message bumps its conversation's last_seq and updated_at. With
-- updated_at in an index, each such update wrote a new entry into every
-- index of conversations (the primary key, the token, the state index and
-- the partial ones); without it, PostgreSQL can update the row in place on
-- its page (a HOT update) and touch no index at all. No query reads that
-- index: the queue uses conversations_queue_idx, agents'
-- conversations_assigned_idx, and the reports (kpi) filter by created_at,
-- which gets its own index (it never changes, so it costs nothing on
-- update). A fill factor below 100 leaves room on each page for the new
-- row versions that HOT updates need: at 1,000 messages a second over
-- 1,000 conversations (tandem loadgen messages), 0% of the updates were
-- HOT before, 23% with the index gone at fill factor 85, 98% at 70.
DROP INDEX conversations_state_idx;
CREATE INDEX conversations_created_idx ON conversations (created_at);
ALTER TABLE conversations SET (fillfactor = 70);
