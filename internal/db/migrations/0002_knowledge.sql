-- Knowledge: documents with versions, and their chunks with what search needs.
CREATE TABLE documents (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    title       text NOT NULL,
    source_name text NOT NULL,
    format      text NOT NULL,
    tags        text[] NOT NULL DEFAULT '{}',
    version     integer NOT NULL DEFAULT 1,
    checksum    text NOT NULL,
    size_bytes  bigint NOT NULL DEFAULT 0,
    chunks      integer NOT NULL DEFAULT 0,
    created_by  uuid REFERENCES users ON DELETE SET NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_by  uuid REFERENCES users ON DELETE SET NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    -- A deleted document leaves search at once; its row and versions stay
    -- for the record.
    deleted_at  timestamptz
);
-- The editor's list shows live documents, newest first.
CREATE INDEX documents_live_idx ON documents (updated_at DESC) WHERE deleted_at IS NULL;

CREATE TABLE document_versions (
    document_id uuid NOT NULL REFERENCES documents ON DELETE CASCADE,
    version     integer NOT NULL,
    title       text NOT NULL,
    source_name text NOT NULL,
    format      text NOT NULL,
    checksum    text NOT NULL,
    size_bytes  bigint NOT NULL,
    chunks      integer NOT NULL,
    created_by  uuid REFERENCES users ON DELETE SET NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (document_id, version)
);

-- Chunks of the current version of each live document. The embedding has no
-- fixed dimension, so the model can change; an HNSW index over the cast to
-- the model's dimension is created at start-up (retrieval.EnsureIndex).
CREATE TABLE chunks (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    document_id uuid NOT NULL REFERENCES documents ON DELETE CASCADE,
    version     integer NOT NULL,
    ordinal     integer NOT NULL,
    heading     text NOT NULL DEFAULT '',
    question    text NOT NULL DEFAULT '',
    text        text NOT NULL,
    tags        text[] NOT NULL DEFAULT '{}',
    tsv         tsvector NOT NULL,
    embed_model text NOT NULL,
    embedding   vector NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
-- Full-text side of hybrid search.
CREATE INDEX chunks_tsv_idx ON chunks USING gin (tsv);
-- Listing a document's chunks, replacing and deleting a version.
CREATE INDEX chunks_document_idx ON chunks (document_id, ordinal);
-- Filtering search by tag.
CREATE INDEX chunks_tags_idx ON chunks USING gin (tags);
