-- The bot: intents as data, settings, and the questions it could not answer.
CREATE TABLE intents (
    name       text PRIMARY KEY,
    examples   text[] NOT NULL DEFAULT '{}',
    action     text NOT NULL DEFAULT 'answer' CHECK (action IN ('answer', 'escalate')),
    team       text NOT NULL DEFAULT '',
    priority   integer NOT NULL DEFAULT 0,
    builtin    boolean NOT NULL DEFAULT false,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Settings that admins change at run time (thresholds and the like), as JSON.
CREATE TABLE settings (
    key        text PRIMARY KEY,
    value      jsonb NOT NULL,
    updated_by uuid REFERENCES users ON DELETE SET NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Questions the bot escalated or could not answer, grouped so that
-- near-duplicates count together (by the embedding of the first wording).
CREATE TABLE unanswered (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    text            text NOT NULL,
    embed_model     text NOT NULL,
    embedding       vector NOT NULL,
    count           integer NOT NULL DEFAULT 1,
    last_reason     text NOT NULL,
    last_confidence double precision NOT NULL DEFAULT 0,
    conversation_id uuid REFERENCES conversations ON DELETE SET NULL,
    examples        text[] NOT NULL DEFAULT '{}',
    first_seen      timestamptz NOT NULL DEFAULT now(),
    last_seen       timestamptz NOT NULL DEFAULT now(),
    resolved_at     timestamptz
);
-- The report lists open groups, most asked first.
CREATE INDEX unanswered_open_idx ON unanswered (count DESC, last_seen DESC) WHERE resolved_at IS NULL;
