"""Hourly, daily and weekly rollups of ``metric_data_points``: the relations charts read.

Two ways to the same relations (same names, same columns):

* **continuous** — with a community-license TimescaleDB, real-time continuous aggregates
  (``materialized_only = false``: rows past the watermark are computed on read). The
  writer refreshes the window it touched after each commit, so a backfilled point months
  in the past shows up too.
* **maintained** — with the Apache-2 build (Debian's, these machines'), continuous
  aggregates are unavailable; the writer keeps tables of the same shape current inside
  the batch's own transaction: points newer than everything stored for their metric
  have their aggregates added to their buckets; any other change (an overlapping or
  replayed batch, an older backfill chunk, a replaced snapshot) has the buckets it
  touched recomputed from the hypertable. A bucket left empty (snapshot replaced) is
  deleted.

Columns: ``metric_id, bucket, count, sum, avg, min, max, last, last_ts, last_dimensions``.
Dimensions are carried as the bucket's last value (``last(dimensions, ts)``): a continuous
aggregate cannot unnest jsonb keys, and one definition must serve both modes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal
from uuid import UUID

from psycopg import sql

from schema.db import Conn

Mode = Literal["continuous", "maintained"]


@dataclass(frozen=True)
class Rollup:
    """One granularity. ``chunk`` is the hypertable chunk interval of a maintained rollup,
    or None for a plain table: the daily and weekly rollups stay small (one row per metric
    per day or week), and a plain table skips the chunk expansion that dominates planning
    a read of a few dozen rows."""

    name: str
    width: timedelta
    chunk: timedelta | None

    @property
    def relation(self) -> str:
        return f"metric_data_points_{self.name}"


ROLLUPS = (
    Rollup("hourly", timedelta(hours=1), timedelta(days=30)),
    Rollup("daily", timedelta(days=1), None),
    Rollup("weekly", timedelta(weeks=1), None),
)

_AGGREGATES = """count(*) AS count, sum(value) AS sum, avg(value) AS avg, min(value) AS min,
       max(value) AS max, last(value, ts) AS last, max(ts) AS last_ts,
       last(dimensions, ts) AS last_dimensions"""


def pick(date_range_days: int) -> Rollup:
    """The coarsest rollup that still draws the range well (and reads the fewest rows):
    hours up to two days, days up to about three months, weeks beyond."""
    if date_range_days <= 2:
        return ROLLUPS[0]
    if date_range_days <= 92:
        return ROLLUPS[1]
    return ROLLUPS[2]


def create_statements(mode: Mode) -> list[sql.Composed]:
    """DDL for the three rollups in the given mode; every statement is idempotent."""
    out: list[sql.Composed] = []
    for rollup in ROLLUPS:
        name = sql.Identifier(rollup.relation)
        if mode == "continuous":
            out.append(
                sql.SQL(
                    "CREATE MATERIALIZED VIEW IF NOT EXISTS {name}"
                    " WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS"
                    " SELECT metric_id, time_bucket({width}, ts) AS bucket, " + _AGGREGATES + ""
                    " FROM metric_data_points GROUP BY metric_id, bucket WITH NO DATA"
                ).format(name=name, width=sql.Literal(rollup.width))
            )
        else:
            out.append(
                sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {name} ("
                    " metric_id uuid NOT NULL, bucket timestamptz NOT NULL, count bigint NOT NULL,"
                    " sum double precision, avg double precision, min double precision,"
                    " max double precision, last double precision, last_ts timestamptz,"
                    " last_dimensions jsonb, PRIMARY KEY (metric_id, bucket))"
                ).format(name=name)
            )
            if rollup.chunk is not None:
                out.append(
                    sql.SQL(
                        "SELECT create_hypertable({rel}, by_range('bucket', {chunk}),"
                        " if_not_exists => true)"
                    ).format(rel=sql.Literal(rollup.relation), chunk=sql.Literal(rollup.chunk))
                )
    return out


async def detect_mode(conn: Conn) -> Mode:
    """Which kind of rollups the migrations created in this database."""
    cur = await conn.execute(
        "SELECT count(*) AS n FROM timescaledb_information.continuous_aggregates"
        " WHERE view_name = 'metric_data_points_hourly'"
    )
    row = await cur.fetchone()
    return "continuous" if row and row["n"] else "maintained"


_MERGE = """
count = r.count + EXCLUDED.count, sum = r.sum + EXCLUDED.sum,
avg = (r.sum + EXCLUDED.sum) / (r.count + EXCLUDED.count),
min = least(r.min, EXCLUDED.min), max = greatest(r.max, EXCLUDED.max),
last = CASE WHEN EXCLUDED.last_ts > r.last_ts THEN EXCLUDED.last ELSE r.last END,
last_dimensions = CASE WHEN EXCLUDED.last_ts > r.last_ts
                       THEN EXCLUDED.last_dimensions ELSE r.last_dimensions END,
last_ts = greatest(r.last_ts, EXCLUDED.last_ts)"""
_COLUMNS = "metric_id, bucket, count, sum, avg, min, max, last, last_ts, last_dimensions"


def _add_fresh_statement() -> sql.Composed:
    """Add the fresh points' aggregates to every granularity in one statement: the hourly
    delta is aggregated once from the staged batch, the coarser ones from it."""
    hourly, *coarser = ROLLUPS
    delta = sql.SQL(
        "WITH delta AS ("
        " SELECT metric_id, time_bucket({width}, ts) AS bucket, count(*) AS count,"
        " sum(value) AS sum, min(value) AS min, max(value) AS max, last(value, ts) AS last,"
        " max(ts) AS last_ts, last(dimensions, ts)::jsonb AS last_dimensions"
        " FROM staged_points WHERE fresh GROUP BY 1, 2)"
    ).format(width=sql.Literal(hourly.width))
    merge = " ON CONFLICT (metric_id, bucket) DO UPDATE SET " + _MERGE
    inserts = [
        sql.SQL(
            "INSERT INTO {rel} AS r (" + _COLUMNS + ")"
            " SELECT metric_id, bucket, count, sum, sum / count, min, max, last, last_ts,"
            " last_dimensions FROM delta" + merge
        ).format(rel=sql.Identifier(hourly.relation))
    ] + [
        sql.SQL(
            "INSERT INTO {rel} AS r (" + _COLUMNS + ")"
            " SELECT metric_id, time_bucket({width}, bucket), sum(count), sum(sum),"
            " sum(sum) / sum(count), min(min), max(max), last(last, last_ts), max(last_ts),"
            " last(last_dimensions, last_ts) FROM delta GROUP BY 1, 2" + merge
        ).format(rel=sql.Identifier(rollup.relation), width=sql.Literal(rollup.width))
        for rollup in coarser
    ]
    *ctes, final = inserts
    named = [
        sql.SQL(", {name} AS ({insert})").format(name=sql.Identifier(f"add_{r.name}"), insert=i)
        for r, i in zip(ROLLUPS, ctes, strict=False)
    ]
    return sql.Composed([delta, *named, sql.SQL(" "), final])


ADD_FRESH = _add_fresh_statement()
"""Fresh points did not exist before, so adding their count, sum, min and max to their
buckets is exact, and ``last`` moves only to a later timestamp."""

_FROM_POINTS = """count(p.ts) AS count, sum(p.value) AS sum, avg(p.value) AS avg,
           min(p.value) AS min, max(p.value) AS max, last(p.value, p.ts) AS last,
           max(p.ts) AS last_ts, last(p.dimensions, p.ts) AS last_dimensions"""
_FROM_ROLLUP = """coalesce(sum(p.count), 0) AS count, sum(p.sum) AS sum,
           sum(p.sum) / nullif(sum(p.count), 0) AS avg, min(p.min) AS min, max(p.max) AS max,
           last(p.last, p.last_ts) AS last, max(p.last_ts) AS last_ts,
           last(p.last_dimensions, p.last_ts) AS last_dimensions"""


def _recompute_statement(rollup: Rollup, source: Rollup | None) -> sql.Composed:
    """Recompute the buckets of ``rollup`` that stale points or a replaced series touched:
    from the points for the finest one, from the next finer rollup (already current in
    this transaction) for the others, so a week costs seven daily rows instead of 672
    points."""
    if source is None:
        origin, time_column, aggregates = sql.Identifier("metric_data_points"), "ts", _FROM_POINTS
    else:
        origin, time_column, aggregates = sql.Identifier(source.relation), "bucket", _FROM_ROLLUP
    return sql.SQL(
        """
WITH touched AS (
    SELECT DISTINCT metric_id, time_bucket({width}, ts) AS bucket
    FROM staged_points WHERE NOT fresh
    UNION
    SELECT metric_id, bucket FROM {rel} WHERE metric_id = ANY(%(replaced)s)
), fresh AS (
    SELECT t.metric_id, t.bucket, """
        + aggregates
        + """
    FROM touched t
    LEFT JOIN {origin} p
           ON p.metric_id = t.metric_id AND p.{time} >= t.bucket AND p.{time} < t.bucket + {width}
    GROUP BY t.metric_id, t.bucket
), emptied AS (
    DELETE FROM {rel} r USING fresh f
    WHERE r.metric_id = f.metric_id AND r.bucket = f.bucket AND f.count = 0
)
INSERT INTO {rel} AS r ("""
        + _COLUMNS
        + """)
SELECT """
        + _COLUMNS
        + """
FROM fresh WHERE count > 0
ON CONFLICT (metric_id, bucket) DO UPDATE
SET count = EXCLUDED.count, sum = EXCLUDED.sum, avg = EXCLUDED.avg, min = EXCLUDED.min,
    max = EXCLUDED.max, last = EXCLUDED.last, last_ts = EXCLUDED.last_ts,
    last_dimensions = EXCLUDED.last_dimensions
"""
    ).format(
        rel=sql.Identifier(rollup.relation),
        width=sql.Literal(rollup.width),
        origin=origin,
        time=sql.Identifier(time_column),
    )


RECOMPUTE = [
    _recompute_statement(rollup, ROLLUPS[i - 1] if i else None) for i, rollup in enumerate(ROLLUPS)
]
"""Finest first: a recomputed bucket is always its points' true aggregate, whatever order
batches arrive in."""


async def maintain(conn: Conn, replaced: list[UUID], stale_changed: bool) -> None:
    """Bring the maintained rollups up to date with the staged batch (same transaction):
    add the fresh points, then recompute the buckets of stale points and of replaced
    series, unless the stale points were all identical to the stored ones (a replayed
    batch) and nothing was replaced."""
    await conn.execute(ADD_FRESH)
    if stale_changed or replaced:
        for statement in RECOMPUTE:
            await conn.execute(statement, {"replaced": replaced})


async def refresh(conn: Conn, first: datetime, last: datetime) -> None:
    """Refresh the continuous aggregates over [first, last]; needs an autocommit
    connection (TimescaleDB refuses to refresh inside a transaction)."""
    for rollup in ROLLUPS:
        await conn.execute(
            sql.SQL("CALL refresh_continuous_aggregate({rel}, {start}, {end})").format(
                rel=sql.Literal(rollup.relation),
                start=sql.Literal(first - rollup.width),
                end=sql.Literal(last + rollup.width),
            )
        )


READ = {
    rollup.name: sql.SQL(
        "SELECT bucket, count, sum, avg, min, max, last, last_dimensions FROM {rel}"
        " WHERE metric_id = %(metric_id)s AND bucket >= %(since)s ORDER BY bucket"
    )
    .format(rel=sql.Identifier(rollup.relation))
    .as_string()
    for rollup in ROLLUPS
}
"""The chart read per granularity, rendered once: composing it on every call cost about
a sixth of the read (``benchmarks/chart_read.py``)."""


async def read_series(
    conn: Conn, metric_id: UUID, since: datetime, rollup: Rollup, aggregation: str
) -> list[dict[str, Any]]:
    """One row per bucket since ``since``: ``value`` is the chart's aggregation, and the
    other aggregates ride along for the chart transformer."""
    cur = await conn.execute(READ[rollup.name], {"metric_id": metric_id, "since": since})
    return [
        {
            "timestamp": row["bucket"],
            "value": row[aggregation],
            "count": row["count"],
            "sum": row["sum"],
            "avg": row["avg"],
            "min": row["min"],
            "max": row["max"],
            "last": row["last"],
            "dimensions": row["last_dimensions"] or {},
        }
        for row in await cur.fetchall()
    ]
