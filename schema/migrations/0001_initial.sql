-- metricloom initial schema: metrics, transformers, dashboard metrics, the points hypertable.
-- depends:

CREATE EXTENSION IF NOT EXISTS timescaledb;

-- One transformer per template, shared by every organisation.
CREATE TABLE metric_transformers (
    template_id     text PRIMARY KEY,
    code            text NOT NULL,
    version         integer NOT NULL DEFAULT 1,
    status          text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'failed')),
    generator       text NOT NULL,
    input_example   jsonb,
    output_example  jsonb,
    failure_count   integer NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE metrics (
    id               uuid PRIMARY KEY,
    organization_id  text NOT NULL,
    template_id      text NOT NULL,
    params           jsonb NOT NULL DEFAULT '{}',
    poll_frequency   text NOT NULL
                     CHECK (poll_frequency IN ('frequent', 'hourly', 'daily', 'weekly', 'manual')),
    next_poll_at     timestamptz,
    last_fetched_at  timestamptz,
    last_error       text,
    last_error_at    timestamptz,
    failure_count    integer NOT NULL DEFAULT 0,
    status           text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'paused', 'failed')),
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX metrics_organization ON metrics (organization_id);
-- The scheduler's claim query walks this index in due order.
CREATE INDEX metrics_due ON metrics (next_poll_at)
    WHERE status = 'active' AND poll_frequency <> 'manual';

CREATE TABLE dashboard_metrics (
    id               uuid PRIMARY KEY,
    organization_id  text NOT NULL,
    dashboard_id     text NOT NULL,
    metric_id        uuid NOT NULL REFERENCES metrics (id) ON DELETE CASCADE,
    title            text NOT NULL,
    chart_type       text NOT NULL,
    date_range_days  integer NOT NULL,
    aggregation      text NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX dashboard_metrics_metric ON dashboard_metrics (metric_id);
CREATE INDEX dashboard_metrics_organization ON dashboard_metrics (organization_id, dashboard_id);

-- One chart transformer per dashboard metric: each user's chart is independent.
CREATE TABLE chart_transformers (
    dashboard_metric_id  uuid PRIMARY KEY REFERENCES dashboard_metrics (id) ON DELETE CASCADE,
    code                 text NOT NULL,
    version              integer NOT NULL DEFAULT 1,
    generator            text NOT NULL,
    preferences          jsonb NOT NULL DEFAULT '{}',
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE metric_data_points (
    metric_id   uuid NOT NULL,
    ts          timestamptz NOT NULL,
    value       double precision NOT NULL,
    dimensions  jsonb NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now(),
    -- Also the (metric_id, ts) index every per-metric range read uses, in either direction.
    CONSTRAINT metric_data_points_metric_ts UNIQUE (metric_id, ts)
);
DO $$ BEGIN
    PERFORM create_hypertable('metric_data_points', by_range('ts', INTERVAL '7 days'));
END $$;
