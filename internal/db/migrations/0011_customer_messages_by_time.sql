-- The sweep of unanswered bot turns (handoff/owed.go) reads the customers'
-- messages of a recent window of time. messages only ever grows, so this
-- costs one index entry per customer message, appended at the end, and
-- leaves conversations' in-place (HOT) updates alone (see 0014).
CREATE INDEX messages_customer_time_idx ON messages (created_at) WHERE role = 'customer';
