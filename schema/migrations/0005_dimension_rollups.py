"""Per-key rollups of the numeric dimensions, beside the value rollups and kept the same
way (continuous aggregates on a community build, writer-maintained tables on Apache).
Existing points are rolled up here on the Apache build; continuous aggregates compute
them on read until refreshed."""

from typing import Any

from psycopg import sql
from yoyo import step

from schema.rollups import NUMERIC_DIMENSIONS, ROLLUPS, Mode, create_statements, drop_statements

__depends__ = {"0003_rollups", "0004_rate_budgets"}
# Continuous aggregates cannot be created inside a transaction block; every statement is
# idempotent instead, so a failed run can simply be repeated.
__transactional__ = False

_BACKFILL_HOURLY = (
    "INSERT INTO {dims} (metric_id, bucket, key, count, sum, avg, min, max, last, last_ts)"
    " SELECT p.metric_id, time_bucket({width}, p.ts), d.key, count(*), sum(x.v), avg(x.v),"
    " min(x.v), max(x.v), last(x.v, p.ts), max(p.ts) FROM metric_data_points p "
    + NUMERIC_DIMENSIONS
    + " GROUP BY 1, 2, 3 ON CONFLICT DO NOTHING"
)
_BACKFILL_COARSER = (
    "INSERT INTO {dims} (metric_id, bucket, key, count, sum, avg, min, max, last, last_ts)"
    " SELECT metric_id, time_bucket({width}, bucket), key, sum(count), sum(sum),"
    " sum(sum) / sum(count), min(min), max(max), last(last, last_ts), max(last_ts)"
    " FROM {source} GROUP BY 1, 2, 3 ON CONFLICT DO NOTHING"
)


def apply(conn: Any) -> None:
    cur = conn.cursor()
    cur.execute("SELECT current_setting('timescaledb.license', true)")
    mode: Mode = "continuous" if cur.fetchone()[0] == "timescale" else "maintained"
    for statement in create_statements(mode, families=("dimensions",)):
        cur.execute(statement)
    if mode == "maintained":
        for i, rollup in enumerate(ROLLUPS):
            template = _BACKFILL_COARSER if i else _BACKFILL_HOURLY
            cur.execute(
                sql.SQL(template).format(
                    dims=sql.Identifier(rollup.dimensions),
                    width=sql.Literal(rollup.width),
                    source=sql.Identifier(ROLLUPS[i - 1].dimensions),
                )
            )


def rollback(conn: Any) -> None:
    cur = conn.cursor()
    cur.execute("SELECT view_name FROM timescaledb_information.continuous_aggregates")
    for statement in drop_statements({row[0] for row in cur.fetchall()}, "dimensions"):
        cur.execute(statement)


steps = [step(apply, rollback)]
