-- Ownership in the keys: a row that points at another tenant-owned row must belong to the
-- same organisation, and the database refuses one that does not (ForeignKeyViolation),
-- whatever code path inserts or updates it. Each referenced table gets a UNIQUE
-- (id, organization_id) (id alone stays the primary key), and each single-column foreign
-- key between tenant-owned tables becomes a composite one carrying the organisation, with
-- the same ON DELETE behaviour as before.
--
-- Left as they are, on purpose:
--  * metric_transformers / metric_transformer_versions: one per template, shared by every
--    organisation; they carry no organisation and nothing tenant-owned points at them.
--  * metric_data_points (the points hypertable) keys only by metric id and has no foreign
--    key: the writer (agents/writing.py) checks that each points record's metric belongs to
--    the organisation the record names before writing anything.
--  * dashboard_metrics.dashboard_id is free text: there is no dashboards table to refer to.
--
-- Existing rows are checked when the constraints are added: a database that already holds
-- a cross-organisation reference fails this migration (and nothing of it is applied).
-- depends: 0009_command_source

ALTER TABLE integration_connections
    ADD CONSTRAINT integration_connections_id_organization UNIQUE (id, organization_id);
ALTER TABLE metrics
    ADD CONSTRAINT metrics_id_organization UNIQUE (id, organization_id);
ALTER TABLE dashboard_metrics
    ADD CONSTRAINT dashboard_metrics_id_organization UNIQUE (id, organization_id);
ALTER TABLE chart_transformers
    ADD CONSTRAINT chart_transformers_id_organization UNIQUE (dashboard_metric_id, organization_id);

-- A metric's connection is one of its organisation's (still optional: a NULL connection_id
-- is not checked). No ON DELETE action, as before.
ALTER TABLE metrics DROP CONSTRAINT metrics_connection_id_fkey;
ALTER TABLE metrics ADD CONSTRAINT metrics_connection_organization_fkey
    FOREIGN KEY (connection_id, organization_id)
    REFERENCES integration_connections (id, organization_id);

-- A dashboard metric shows one of its organisation's metrics; deleted with it, as before.
ALTER TABLE dashboard_metrics DROP CONSTRAINT dashboard_metrics_metric_id_fkey;
ALTER TABLE dashboard_metrics ADD CONSTRAINT dashboard_metrics_metric_organization_fkey
    FOREIGN KEY (metric_id, organization_id)
    REFERENCES metrics (id, organization_id) ON DELETE CASCADE;

-- A chart transformer, and each of its kept versions, is its dashboard metric's
-- organisation's; deleted with it, as before.
ALTER TABLE chart_transformers DROP CONSTRAINT chart_transformers_dashboard_metric_id_fkey;
ALTER TABLE chart_transformers ADD CONSTRAINT chart_transformers_dashboard_metric_organization_fkey
    FOREIGN KEY (dashboard_metric_id, organization_id)
    REFERENCES dashboard_metrics (id, organization_id) ON DELETE CASCADE;

ALTER TABLE chart_transformer_versions
    DROP CONSTRAINT chart_transformer_versions_dashboard_metric_id_fkey;
ALTER TABLE chart_transformer_versions
    ADD CONSTRAINT chart_transformer_versions_chart_organization_fkey
    FOREIGN KEY (dashboard_metric_id, organization_id)
    REFERENCES chart_transformers (dashboard_metric_id, organization_id) ON DELETE CASCADE;
