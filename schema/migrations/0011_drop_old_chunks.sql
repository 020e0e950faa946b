-- The application connects as a role that owns nothing and may run no DDL (see
-- schema/roles.py), but TimescaleDB's drop_chunks needs the hypertable's owner. The leader's
-- hourly retention (the polls ledger; the points on Apache builds) goes through this
-- function instead: it runs as its owner (SECURITY DEFINER, with a search_path the caller
-- cannot redirect), drops only whole chunks older than a day or more, and only of the two
-- hypertables that have a retention. Only the application role may call it.
-- depends: 0010_tenant_keys
CREATE FUNCTION drop_old_chunks(hypertable text, older_than interval) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    dropped integer;
BEGIN
    IF hypertable NOT IN ('metric_data_points', 'polls') THEN
        RAISE EXCEPTION 'drop_old_chunks: % has no retention', hypertable;
    END IF;
    IF older_than IS NULL OR older_than < interval '1 day' THEN
        RAISE EXCEPTION 'drop_old_chunks: keeps at least a day, not %', older_than;
    END IF;
    SELECT count(*) INTO dropped FROM drop_chunks(hypertable::regclass, older_than => older_than);
    RETURN dropped;
END
$$;

REVOKE ALL ON FUNCTION drop_old_chunks(text, interval) FROM PUBLIC;
