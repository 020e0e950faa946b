-- The points hypertable.
-- depends: 0001_core

CREATE TABLE metric_data_points (
    metric_id   uuid NOT NULL,
    ts          timestamptz NOT NULL,
    value       double precision NOT NULL,
    dimensions  jsonb NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now()
);
DO $$ BEGIN
    PERFORM create_hypertable('metric_data_points', by_range('ts', INTERVAL '7 days'));
END $$;
-- Unique on (metric, timestamp), stored newest first: the writer's ON CONFLICT target and
-- the index every per-metric range read uses, in one index rather than two.
CREATE UNIQUE INDEX metric_data_points_metric_ts ON metric_data_points (metric_id, ts DESC);
