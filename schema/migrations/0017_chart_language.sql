-- depends: 0016_all_time
-- Chart transformers carry their language too (issue 16): 'python', or 'typescript' with
-- the JavaScript tsc emitted for it (what the chart stage runs). Every kept version keeps
-- its own, so a rollback across a change of language runs what that version was proven as.
ALTER TABLE chart_transformers
    ADD COLUMN language text NOT NULL DEFAULT 'python'
        CHECK (language IN ('python', 'typescript')),
    ADD COLUMN compiled_code text,
    ADD CONSTRAINT chart_transformers_compiled
        CHECK (language = 'python' OR compiled_code IS NOT NULL);

ALTER TABLE chart_transformer_versions
    ADD COLUMN language text NOT NULL DEFAULT 'python'
        CHECK (language IN ('python', 'typescript')),
    ADD COLUMN compiled_code text;

CREATE OR REPLACE FUNCTION keep_chart_transformer_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO chart_transformer_versions (dashboard_metric_id, version, organization_id, code,
        chart_type, date_range_days, aggregation, preferences, user_prompt, generator, created_at,
        language, compiled_code)
    VALUES (OLD.dashboard_metric_id, OLD.version, OLD.organization_id, OLD.code, OLD.chart_type,
        OLD.date_range_days, OLD.aggregation, OLD.preferences, OLD.user_prompt, OLD.generator,
        OLD.updated_at, OLD.language, OLD.compiled_code)
    ON CONFLICT (dashboard_metric_id, version) DO NOTHING;
    NEW.updated_at := now();
    RETURN NEW;
END $$;
