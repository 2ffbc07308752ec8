-- Retention: closed conversations older than the configured number of days
-- are deleted or anonymised (handoff/retention.go), daily.

-- When a conversation's personal data was removed; it is kept for the
-- figures (counts, times, scores) and never anonymised twice.
ALTER TABLE conversations ADD COLUMN anonymised_at timestamptz;

-- The daily run looks for closed conversations by age.
CREATE INDEX conversations_closed_at_idx ON conversations (closed_at)
    WHERE state = 'closed' AND anonymised_at IS NULL;

-- Removing a conversation's personal data scrubs its audit records.
-- (audit_log_subject_idx on (subject_type, subject_id, at) serves it.)
