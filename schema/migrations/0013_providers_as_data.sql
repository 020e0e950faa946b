-- Providers are data (providers/*.json, and METRICLOOM_PROVIDERS_DIR): a connection may be
-- for any declared provider, so the list of four in 0001's CHECK goes. What stays checked
-- here is the name's shape (the one schema.models.PROVIDER_NAME gives, so that its
-- settings are plain environment variables); whether the name is declared is the
-- application's to check, against the files it loaded, when a connection is added.
-- depends: 0011_drop_old_chunks
ALTER TABLE integration_connections DROP CONSTRAINT integration_connections_provider_check;
ALTER TABLE integration_connections ADD CONSTRAINT integration_connections_provider_name
    CHECK (provider ~ '^[a-z][a-z0-9_]{0,63}$');
