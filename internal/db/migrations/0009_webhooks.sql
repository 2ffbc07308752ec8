-- Outbound webhooks: the endpoints admins configure, and a durable outbox
-- of deliveries that the transactions making the events fill.
CREATE TABLE webhooks (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    url         text NOT NULL,
    -- The HMAC key of the signatures; it has to be kept to sign.
    secret      text NOT NULL,
    events      text[] NOT NULL,
    enabled     boolean NOT NULL DEFAULT true,
    description text NOT NULL DEFAULT '',
    created_by  uuid REFERENCES users ON DELETE SET NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- One row per event and endpoint, inserted in the transaction that makes the
-- event, so an event is delivered if and only if it committed. webhook_id
-- has no foreign key on purpose: a delivery is inserted by a conversation's
-- transaction, which must never fail because an admin deleted an endpoint at
-- that moment; deleting an endpoint deletes its deliveries, and the worker
-- skips any whose endpoint is gone.
CREATE TABLE webhook_deliveries (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    webhook_id      uuid NOT NULL,
    -- Shared by the deliveries of one event to several endpoints.
    event_id        uuid NOT NULL,
    event           text NOT NULL,
    -- A conversation's deletion (retention) takes its pending deliveries
    -- along: they carry its personal data.
    conversation_id uuid REFERENCES conversations ON DELETE CASCADE,
    payload         jsonb NOT NULL,
    state           text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    -- When the next attempt is due; a worker that takes a delivery moves it
    -- on by a lease, so another instance retries it if the worker dies.
    next_attempt_at timestamptz NOT NULL,
    last_status     integer,
    last_error      text,
    created_at      timestamptz NOT NULL,
    delivered_at    timestamptz
);
-- Workers take the due deliveries, oldest first.
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at) WHERE state = 'pending';
-- An endpoint's recent deliveries, for its admin page.
CREATE INDEX webhook_deliveries_webhook_idx ON webhook_deliveries (webhook_id, created_at DESC);
-- Retention deletes a conversation's deliveries through the foreign key.
CREATE INDEX webhook_deliveries_conversation_idx ON webhook_deliveries (conversation_id);
