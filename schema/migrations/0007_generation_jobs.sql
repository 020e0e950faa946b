-- Every transformer state has an exit: a generation that is owed has a row here, with the
-- time the scheduler sends its request again (a retry after a failed sample fetch, or the
-- deadline of a request in flight), and a bound on how often.
-- depends: 0006_delivery

CREATE TABLE generation_jobs (
    target      text PRIMARY KEY,           -- 'metric:<template>' or 'historical:<template>'
    request     jsonb NOT NULL,             -- the CodegenRequest to send again
    attempts    integer NOT NULL DEFAULT 1, -- requests sent so far
    due_at      timestamptz NOT NULL,       -- when the scheduler sends it again
    last_error  text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX generation_jobs_due ON generation_jobs (due_at);

-- The historical transformer could not be written yet (its sample fetch failed): the
-- polling transformer is in use, and backfills wait for it.
ALTER TABLE metric_transformers ADD COLUMN historical_pending boolean NOT NULL DEFAULT false;

-- The request (a chart change) a chart transformer's version came from: the same change
-- delivered again is recognised instead of making another version.
ALTER TABLE chart_transformers ADD COLUMN request_id uuid;
