-- What a management command removed (delete_metric, remove_chart): a row per removed
-- metric or dashboard metric, with its organisation. Records still on their way when it was
-- removed (a poll tick, a payload, points, a chart request) are recognised by it and
-- skipped with a log line, instead of being dead-lettered as naming an unknown id; a
-- delete sent again finds it and answers as the first did.
-- depends: 0011_drop_old_chunks

CREATE TABLE removed_rows (
    id               uuid PRIMARY KEY,
    kind             text NOT NULL CHECK (kind IN ('metric', 'dashboard_metric')),
    organization_id  text NOT NULL,
    first_ts         timestamptz,  -- a metric's points spanned [first_ts, last_ts]: the
    last_ts          timestamptz,  -- window continuous aggregates refresh after its delete
    removed_at       timestamptz NOT NULL DEFAULT now()
);
