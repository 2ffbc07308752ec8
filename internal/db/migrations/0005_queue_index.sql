-- The queue index on the expression assignment filters by: conversations
-- without a team have a NULL team and are queried as ''. With it, taking the
-- next conversation is an index scan that stops at the first row it can
-- lock, not a scan and sort of the whole queue.
DROP INDEX IF EXISTS conversations_queue_idx;
CREATE INDEX conversations_queue_idx ON conversations (coalesce(team, ''), priority DESC, queued_at, id) WHERE state = 'queued';
