-- Core schema: staff accounts, sessions, conversations, their messages and events.
CREATE EXTENSION IF NOT EXISTS vector;

CREATE TABLE users (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    email         text NOT NULL,
    display_name  text NOT NULL DEFAULT '',
    password_hash text NOT NULL,
    roles         text[] NOT NULL DEFAULT '{}',
    disabled      boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
-- Log-in looks users up by e-mail without regard to case.
CREATE UNIQUE INDEX users_email_key ON users (lower(email));

-- Sessions and API tokens; only a SHA-256 of the token is stored.
CREATE TABLE sessions (
    token_hash bytea PRIMARY KEY,
    user_id    uuid NOT NULL REFERENCES users ON DELETE CASCADE,
    kind       text NOT NULL CHECK (kind IN ('cookie', 'api')),
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    revoked_at timestamptz
);
-- Revoking every session of a user.
CREATE INDEX sessions_user_idx ON sessions (user_id);

CREATE TABLE conversations (
    id          uuid PRIMARY KEY,
    token_hash  bytea NOT NULL,
    state       text NOT NULL DEFAULT 'bot' CHECK (state IN ('bot', 'queued', 'assigned', 'closed')),
    customer    jsonb NOT NULL DEFAULT '{}',
    external_id text,
    verified    boolean NOT NULL DEFAULT false,
    team        text,
    priority    integer NOT NULL DEFAULT 0,
    reason      text,
    assigned_to uuid REFERENCES users ON DELETE SET NULL,
    -- last_seq is the conversation's sequence counter; bumping it locks the
    -- row, which serialises writers of one conversation and orders commits.
    last_seq    bigint NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    queued_at   timestamptz,
    assigned_at timestamptz,
    closed_at   timestamptz,
    resolution  text
);
-- Customer tokens are looked up by their hash.
CREATE UNIQUE INDEX conversations_token_key ON conversations (token_hash);
-- Verified customers see their earlier conversations.
CREATE INDEX conversations_external_idx ON conversations (external_id) WHERE external_id IS NOT NULL;
-- Queue and reports filter by state and age.
CREATE INDEX conversations_state_idx ON conversations (state, updated_at);

CREATE TABLE messages (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    conversation_id uuid NOT NULL REFERENCES conversations ON DELETE CASCADE,
    seq             bigint NOT NULL,
    role            text NOT NULL CHECK (role IN ('customer', 'bot', 'agent', 'system')),
    author_id       uuid REFERENCES users ON DELETE SET NULL,
    text            text NOT NULL,
    meta            jsonb NOT NULL DEFAULT '{}',
    client_msg_id   text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (conversation_id, seq)
);
-- Retries with the same client_msg_id store one message.
CREATE UNIQUE INDEX messages_client_msg_id_key ON messages (conversation_id, client_msg_id)
    WHERE client_msg_id IS NOT NULL;

-- State changes and other transcript events share the conversation's seq
-- counter with messages, so a client resumes both from one number.
CREATE TABLE conversation_events (
    id              bigserial PRIMARY KEY,
    conversation_id uuid NOT NULL REFERENCES conversations ON DELETE CASCADE,
    seq             bigint NOT NULL,
    type            text NOT NULL,
    actor_id        uuid REFERENCES users ON DELETE SET NULL,
    actor_role      text NOT NULL DEFAULT 'system',
    data            jsonb NOT NULL DEFAULT '{}',
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (conversation_id, seq)
);
