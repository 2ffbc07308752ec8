-- Human handoff: teams, agents' presence and capacity, the queue's columns,
-- private notes, canned replies, satisfaction scores and the audit log.

-- Teams route escalations; conversations.team holds a team's name.
CREATE TABLE teams (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name        text NOT NULL CHECK (name <> ''),
    -- Business hours in the team's time zone: {"mon": "09:00-17:00", ...};
    -- an empty object means always open, a missing day means closed.
    timezone    text NOT NULL DEFAULT 'UTC',
    hours       jsonb NOT NULL DEFAULT '{}',
    -- Past this wait a queued conversation is flagged to the team.
    sla_seconds integer NOT NULL DEFAULT 300 CHECK (sla_seconds > 0),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
-- Escalations name teams without regard to case.
CREATE UNIQUE INDEX teams_name_key ON teams (lower(name));

CREATE TABLE team_members (
    team_id uuid NOT NULL REFERENCES teams ON DELETE CASCADE,
    user_id uuid NOT NULL REFERENCES users ON DELETE CASCADE,
    PRIMARY KEY (team_id, user_id)
);
-- Assignment asks which teams an agent serves.
CREATE INDEX team_members_user_idx ON team_members (user_id);

-- Presence and load of each staff user who works chats.
CREATE TABLE agents (
    user_id         uuid PRIMARY KEY REFERENCES users ON DELETE CASCADE,
    status          text NOT NULL DEFAULT 'offline' CHECK (status IN ('online', 'away', 'offline')),
    capacity        integer NOT NULL DEFAULT 3 CHECK (capacity >= 0 AND capacity <= 100),
    -- open_chats counts conversations assigned to the agent. It changes only
    -- in the transaction that assigns or unassigns, under this row's lock,
    -- so FOR UPDATE re-checks `open_chats < capacity` on the latest value.
    open_chats      integer NOT NULL DEFAULT 0,
    -- When the agent last got a chat (or came online): the longest idle
    -- agent wins a tie.
    idle_since      timestamptz NOT NULL DEFAULT now(),
    status_at       timestamptz NOT NULL DEFAULT now(),
    -- Set when the agent's last socket closed; the agent becomes away once
    -- it is older than the grace period and no socket came back.
    sockets_gone_at timestamptz
);
-- Automatic assignment looks for the least loaded online agent.
CREATE INDEX agents_online_idx ON agents (open_chats, idle_since) WHERE status = 'online';

-- One row per open agent WebSocket on any instance, refreshed by heartbeats;
-- a row whose instance died goes stale and is swept.
CREATE TABLE agent_sockets (
    id      uuid PRIMARY KEY,
    user_id uuid NOT NULL REFERENCES users ON DELETE CASCADE,
    seen_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX agent_sockets_user_idx ON agent_sockets (user_id);

ALTER TABLE conversations
    -- The handoff packet of the last escalation (reason, intent, summary,
    -- the bot's last answer and sources); shown to agents only.
    ADD COLUMN escalation     jsonb,
    ADD COLUMN escalated_at   timestamptz,
    -- When the assigned agent first wrote since the assignment; chats not
    -- yet answered go back to the queue when their agent leaves.
    ADD COLUMN answered_at    timestamptz,
    ADD COLUMN sla_flagged_at timestamptz,
    ADD COLUMN csat_pending   boolean NOT NULL DEFAULT false;
-- The queue: per team, highest priority first, then the longest waiting.
CREATE INDEX conversations_queue_idx ON conversations (team, priority DESC, queued_at) WHERE state = 'queued';
-- An agent's open chats.
CREATE INDEX conversations_assigned_idx ON conversations (assigned_to) WHERE state = 'assigned';

-- Private notes: agents only, never on the customer's socket or API, and
-- outside the seq counter so the customer's sequence has no gaps.
CREATE TABLE conversation_notes (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    conversation_id uuid NOT NULL REFERENCES conversations ON DELETE CASCADE,
    author_id       uuid REFERENCES users ON DELETE SET NULL,
    text            text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);
-- The transcript lists a conversation's notes in order.
CREATE INDEX conversation_notes_conv_idx ON conversation_notes (conversation_id, created_at);

-- Canned replies; a NULL team means every team.
CREATE TABLE canned_replies (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    team_id    uuid REFERENCES teams ON DELETE CASCADE,
    title      text NOT NULL,
    text       text NOT NULL,
    created_by uuid REFERENCES users ON DELETE SET NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
-- Agents list the replies of their teams.
CREATE INDEX canned_replies_team_idx ON canned_replies (team_id);

CREATE TABLE csat_responses (
    id              bigserial PRIMARY KEY,
    conversation_id uuid NOT NULL REFERENCES conversations ON DELETE CASCADE,
    agent_id        uuid REFERENCES users ON DELETE SET NULL,
    score           smallint NOT NULL CHECK (score BETWEEN 1 AND 5),
    comment         text NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL DEFAULT now()
);
-- Reports per conversation and per agent.
CREATE INDEX csat_responses_conv_idx ON csat_responses (conversation_id);
CREATE INDEX csat_responses_agent_idx ON csat_responses (agent_id, created_at);

-- How long each assignment waited in the queue; estimates of the wait told
-- to customers come from the recent ones.
CREATE TABLE queue_waits (
    id          bigserial PRIMARY KEY,
    team        text,
    waited_ms   bigint NOT NULL,
    assigned_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX queue_waits_recent_idx ON queue_waits (assigned_at);

-- Who did what, for admins: every conversation transition and the like.
CREATE TABLE audit_log (
    id           bigserial PRIMARY KEY,
    at           timestamptz NOT NULL DEFAULT now(),
    actor_id     uuid REFERENCES users ON DELETE SET NULL,
    actor_role   text NOT NULL,
    action       text NOT NULL,
    subject_type text NOT NULL,
    subject_id   text NOT NULL,
    data         jsonb NOT NULL DEFAULT '{}'
);
-- The admin's log is read newest first, whole or for one subject.
CREATE INDEX audit_log_at_idx ON audit_log (at);
CREATE INDEX audit_log_subject_idx ON audit_log (subject_type, subject_id, at);
