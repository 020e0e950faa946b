-- Exactly-once effects over at-least-once delivery: what a redelivered message must not
-- do again is remembered here, keyed by the identity its record carries.
-- depends: 0005_dimension_rollups

-- The poll ledger: one row per poll (PollDue.poll_id, derived from the metric, the due
-- time, the reason and the backfill chunk). A tick delivered again finds its row and does
-- not fetch again: it re-emits the payload it kept, or nothing once the points are stored.
-- Partitioned by due time (part of the identity), so old days are dropped a chunk at a time.
CREATE TABLE polls (
    id          uuid NOT NULL,
    due_at      timestamptz NOT NULL,
    metric_id   uuid NOT NULL,
    reason      text NOT NULL,
    state       text NOT NULL CHECK (state IN ('fetching', 'fetched', 'deferred', 'done')),
    attempts    integer NOT NULL DEFAULT 1,
    fetched_at  timestamptz,
    endpoint    text,
    payload     json,           -- kept from the fetch until its points are written (as sent: json, not jsonb, keeps its key order)
    tick        jsonb,          -- the PollDue, to send a deferred chunk again
    retry_at    timestamptz,    -- a deferred poll: when the scheduler sends it again
    error       text,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (id, due_at)
);
DO $$ BEGIN
    PERFORM create_hypertable('polls', 'due_at', chunk_time_interval => interval '1 day');
END $$;
CREATE INDEX polls_deferred ON polls (retry_at) WHERE state = 'deferred';

-- The command log: every command's answer and follow-up records, exactly as first
-- produced. A command delivered again re-sends them only if they were never confirmed
-- delivered, byte for byte (the consumers' ledgers make a repeat harmless).
CREATE TABLE command_log (
    command_id       uuid PRIMARY KEY,
    organization_id  text NOT NULL,
    type             text,
    status           text NOT NULL,
    sends            jsonb NOT NULL,
    delivered_at     timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now()
);

-- A transform failure counts once per poll, however often its payload is redelivered.
ALTER TABLE metrics ADD COLUMN last_failed_poll uuid;
