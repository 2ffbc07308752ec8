-- Attachments: photos and files in a conversation. The metadata lives here;
-- the bytes live in a blob store (this database by default, or an
-- S3-compatible object store), under keys recorded on the row.

CREATE TABLE attachments (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    -- Deleting a conversation (retention) deletes its attachments, and the
    -- trigger below queues their blobs for deletion.
    conversation_id uuid NOT NULL REFERENCES conversations ON DELETE CASCADE,
    -- Set when a message carries the attachment; an upload belongs to one
    -- message at most. Uploads never sent are swept after a day.
    message_id      uuid REFERENCES messages ON DELETE SET NULL,
    uploader_role   text NOT NULL CHECK (uploader_role IN ('customer', 'agent')),
    uploader_id     uuid REFERENCES users ON DELETE SET NULL,
    name            text NOT NULL,
    -- The type found by sniffing the content, never the one the client named.
    content_type    text NOT NULL,
    size            bigint NOT NULL CHECK (size >= 0),
    sha256          bytea NOT NULL,
    width           integer,
    height          integer,
    blob_key        text NOT NULL,
    thumb_key       text,
    thumb_type      text,
    created_at      timestamptz NOT NULL DEFAULT now()
);
-- A conversation's attachments, and the count that caps them.
CREATE INDEX attachments_conversation_idx ON attachments (conversation_id, created_at);
-- The sweep of uploads that no message carries.
CREATE INDEX attachments_unsent_idx ON attachments (created_at) WHERE message_id IS NULL;
CREATE INDEX attachments_message_idx ON attachments (message_id) WHERE message_id IS NOT NULL;

-- The bytes when the blob store is this database. Rows go with their
-- attachment, so a conversation's deletion takes its bytes along.
CREATE TABLE attachment_blobs (
    key           text PRIMARY KEY,
    attachment_id uuid NOT NULL REFERENCES attachments ON DELETE CASCADE,
    data          bytea NOT NULL
);
CREATE INDEX attachment_blobs_attachment_idx ON attachment_blobs (attachment_id);

-- Blobs to delete from the blob store: filled by a trigger whenever an
-- attachment row goes, however it goes (a retention DELETE of conversations
-- included), and emptied by every instance's sweeper, which deletes the
-- objects first. An object store never keeps a blob nobody can reach.
CREATE TABLE attachment_blob_deletions (
    key       text PRIMARY KEY,
    queued_at timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION attachments_queue_blob_deletion() RETURNS trigger AS $$
BEGIN
    INSERT INTO attachment_blob_deletions (key) VALUES (OLD.blob_key) ON CONFLICT DO NOTHING;
    IF OLD.thumb_key IS NOT NULL THEN
        INSERT INTO attachment_blob_deletions (key) VALUES (OLD.thumb_key) ON CONFLICT DO NOTHING;
    END IF;
    RETURN OLD;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER attachments_blob_deletion AFTER DELETE ON attachments
    FOR EACH ROW EXECUTE FUNCTION attachments_queue_blob_deletion();

-- What a message carries, as shown in the transcript: [{id, name, type,
-- size, width, height, thumbnail}]. Written once with the message, so every
-- message query (replay, transcript, webhooks) has it without a join.
ALTER TABLE messages ADD COLUMN attachments jsonb NOT NULL DEFAULT '[]';
