-- Replays of dead letters: each is replayed once (metricloom dead-letter replay), so a
-- replay run twice, or by two operators, re-runs nothing twice.
-- depends: 0007_generation_jobs

CREATE TABLE dead_letter_replays (
    dead_letter_id  uuid PRIMARY KEY,
    topic           text NOT NULL,
    replayed_at     timestamptz NOT NULL DEFAULT now()
);
