-- Metric transformers carry their language (issue 16): 'python', or 'typescript' with the
-- JavaScript tsc emitted for it (what the sandbox runs; the TypeScript is what people read
-- and what a model repairs). Every kept version keeps its own, so a rollback across a
-- change of language runs the code that version was proven with.
ALTER TABLE metric_transformers
    ADD COLUMN language text NOT NULL DEFAULT 'python'
        CHECK (language IN ('python', 'typescript')),
    ADD COLUMN compiled_code text,
    ADD COLUMN historical_compiled_code text,
    ADD CONSTRAINT metric_transformers_compiled
        CHECK (language = 'python' OR compiled_code IS NOT NULL);

ALTER TABLE metric_transformer_versions
    ADD COLUMN language text NOT NULL DEFAULT 'python'
        CHECK (language IN ('python', 'typescript')),
    ADD COLUMN compiled_code text,
    ADD COLUMN historical_compiled_code text;

CREATE OR REPLACE FUNCTION keep_metric_transformer_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO metric_transformer_versions (template_id, version, code, historical_code,
        input_example, output_example, status, generator, created_at, language,
        compiled_code, historical_compiled_code)
    VALUES (OLD.template_id, OLD.version, OLD.code, OLD.historical_code, OLD.input_example,
        OLD.output_example, OLD.status, OLD.generator, OLD.updated_at, OLD.language,
        OLD.compiled_code, OLD.historical_compiled_code)
    ON CONFLICT (template_id, version) DO NOTHING;
    NEW.updated_at := now();
    RETURN NEW;
END $$;
