-- metricloom core schema: connections, metrics, transformers (with history), dashboards.
-- Tenant-owned rows carry organization_id; metric transformers are per template and
-- shared by every organisation, so they carry none.

CREATE EXTENSION IF NOT EXISTS timescaledb;

-- How a metric reaches its provider: a direct token, the Nango proxy, or nothing (public).
CREATE TABLE integration_connections (
    id                         uuid PRIMARY KEY,
    organization_id            text NOT NULL,
    provider                   text NOT NULL CHECK (provider IN ('github', 'youtube', 'posthog', 'sheets')),
    auth                       text NOT NULL CHECK (auth IN ('none', 'token', 'nango')),
    token                      text,
    nango_connection_id        text,
    nango_provider_config_key  text,
    created_at                 timestamptz NOT NULL DEFAULT now(),
    CHECK (auth <> 'token' OR token IS NOT NULL),
    CHECK (auth <> 'nango' OR (nango_connection_id IS NOT NULL AND nango_provider_config_key IS NOT NULL))
);
CREATE INDEX integration_connections_organization ON integration_connections (organization_id);

CREATE TABLE metrics (
    id               uuid PRIMARY KEY,
    organization_id  text NOT NULL,
    template_id      text NOT NULL,
    connection_id    uuid REFERENCES integration_connections (id),
    params           jsonb NOT NULL DEFAULT '{}',     -- the endpoint config: template parameters
    poll_frequency   text NOT NULL
                     CHECK (poll_frequency IN ('frequent', 'hourly', 'daily', 'weekly', 'manual')),
    next_poll_at     timestamptz,
    last_fetched_at  timestamptz,
    last_error       text,
    last_error_at    timestamptz,
    failure_count    integer NOT NULL DEFAULT 0,
    failure_state    text NOT NULL DEFAULT 'ok' CHECK (failure_state IN ('ok', 'retrying', 'failed')),
    next_retry_at    timestamptz,
    status           text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'paused', 'failed')),
    backfill         jsonb,                             -- progress of the historical backfill
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX metrics_organization ON metrics (organization_id);
-- The scheduler's claim walks this index in due order.
CREATE INDEX metrics_due ON metrics (next_poll_at)
    WHERE status = 'active' AND poll_frequency <> 'manual';

-- One transformer per template, shared by every organisation.
CREATE TABLE metric_transformers (
    template_id              text PRIMARY KEY,
    polling_endpoint         jsonb NOT NULL DEFAULT '{}',   -- path, method, query, body
    historical_endpoint      jsonb,
    code                     text NOT NULL,
    historical_code          text,                          -- when the historical shape differs
    input_example            jsonb,
    output_example           jsonb,
    version                  integer NOT NULL DEFAULT 1,
    status                   text NOT NULL DEFAULT 'active'
                             CHECK (status IN ('active', 'regenerating', 'failed')),
    generator                text NOT NULL,
    failure_count            integer NOT NULL DEFAULT 0,
    last_error               text,
    created_at               timestamptz NOT NULL DEFAULT now(),
    updated_at               timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE metric_transformer_versions (
    template_id      text NOT NULL REFERENCES metric_transformers (template_id) ON DELETE CASCADE,
    version          integer NOT NULL,
    code             text NOT NULL,
    historical_code  text,
    input_example    jsonb,
    output_example   jsonb,
    status           text NOT NULL,
    generator        text NOT NULL,
    created_at       timestamptz NOT NULL,
    replaced_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (template_id, version)
);

CREATE TABLE dashboard_metrics (
    id               uuid PRIMARY KEY,
    organization_id  text NOT NULL,
    dashboard_id     text NOT NULL,
    metric_id        uuid NOT NULL REFERENCES metrics (id) ON DELETE CASCADE,
    title            text NOT NULL,
    preferences      jsonb NOT NULL DEFAULT '{}',       -- as requested: chart type, range, aggregation
    graph_config     jsonb,                             -- the last ChartConfig published
    graph_config_at  timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX dashboard_metrics_metric ON dashboard_metrics (metric_id);
CREATE INDEX dashboard_metrics_organization ON dashboard_metrics (organization_id, dashboard_id);

-- One chart transformer per dashboard metric: each user's chart is independent.
CREATE TABLE chart_transformers (
    dashboard_metric_id  uuid PRIMARY KEY REFERENCES dashboard_metrics (id) ON DELETE CASCADE,
    organization_id      text NOT NULL,
    code                 text NOT NULL,
    chart_type           text NOT NULL,
    date_range_days      integer NOT NULL,
    aggregation          text NOT NULL,
    preferences          jsonb NOT NULL DEFAULT '{}',
    user_prompt          text,
    version              integer NOT NULL DEFAULT 1,
    generator            text NOT NULL,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE chart_transformer_versions (
    dashboard_metric_id  uuid NOT NULL REFERENCES chart_transformers (dashboard_metric_id) ON DELETE CASCADE,
    version              integer NOT NULL,
    organization_id      text NOT NULL,
    code                 text NOT NULL,
    chart_type           text NOT NULL,
    date_range_days      integer NOT NULL,
    aggregation          text NOT NULL,
    preferences          jsonb NOT NULL,
    user_prompt          text,
    generator            text NOT NULL,
    created_at           timestamptz NOT NULL,
    replaced_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (dashboard_metric_id, version)
);

-- Every earlier version is kept, whatever code path bumps the version.
CREATE FUNCTION keep_metric_transformer_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO metric_transformer_versions (template_id, version, code, historical_code,
        input_example, output_example, status, generator, created_at)
    VALUES (OLD.template_id, OLD.version, OLD.code, OLD.historical_code, OLD.input_example,
        OLD.output_example, OLD.status, OLD.generator, OLD.updated_at)
    ON CONFLICT (template_id, version) DO NOTHING;
    NEW.updated_at := now();
    RETURN NEW;
END $$;
CREATE TRIGGER metric_transformers_history BEFORE UPDATE ON metric_transformers
    FOR EACH ROW WHEN (OLD.version IS DISTINCT FROM NEW.version)
    EXECUTE FUNCTION keep_metric_transformer_version();

CREATE FUNCTION keep_chart_transformer_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO chart_transformer_versions (dashboard_metric_id, version, organization_id, code,
        chart_type, date_range_days, aggregation, preferences, user_prompt, generator, created_at)
    VALUES (OLD.dashboard_metric_id, OLD.version, OLD.organization_id, OLD.code, OLD.chart_type,
        OLD.date_range_days, OLD.aggregation, OLD.preferences, OLD.user_prompt, OLD.generator,
        OLD.updated_at)
    ON CONFLICT (dashboard_metric_id, version) DO NOTHING;
    NEW.updated_at := now();
    RETURN NEW;
END $$;
CREATE TRIGGER chart_transformers_history BEFORE UPDATE ON chart_transformers
    FOR EACH ROW WHEN (OLD.version IS DISTINCT FROM NEW.version)
    EXECUTE FUNCTION keep_chart_transformer_version();
