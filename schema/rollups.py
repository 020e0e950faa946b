"""Hourly, daily and weekly rollups of ``metric_data_points``: the relations charts read.

Two families per granularity, with the same names and columns in both modes:

* ``metric_data_points_<g>``: per metric and bucket, ``count, sum, avg, min, max, last``
  of the value, ``last_ts`` and the bucket's last ``dimensions`` object
  (``last_dimensions``: what a text dimension such as a region reads as);
* ``metric_dimensions_<g>``: per metric, bucket and numeric dimension key, the same
  ``count, sum, avg, min, max, last, last_ts`` of that dimension's values.

Two ways to keep them:

* **continuous** — with a community-license TimescaleDB, real-time continuous aggregates
  (``materialized_only = false``: rows past the watermark are computed on read). The
  writer refreshes the window it touched after each commit, so a backfilled point months
  in the past shows up too.
* **maintained** — with the Apache-2 build (Debian's, these machines'), continuous
  aggregates are unavailable; the writer keeps tables of the same shape current inside
  each batch's transaction (``schema/rollup_maintenance.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal
from uuid import UUID

import orjson
from psycopg import sql
from psycopg.rows import tuple_row

from schema.db import Conn
from schema.models import MAX_RAW_POINTS

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

    @property
    def dimensions(self) -> str:
        return f"metric_dimensions_{self.name}"


ROLLUPS = (
    Rollup("hourly", timedelta(hours=1), timedelta(days=30)),
    Rollup("daily", timedelta(days=1), None),
    Rollup("weekly", timedelta(weeks=1), None),
)

NUMERIC_DIMENSIONS = (
    "CROSS JOIN LATERAL jsonb_each(p.dimensions) AS d(key, raw)"
    " CROSS JOIN LATERAL (SELECT d.raw::double precision AS v) AS x"
    " WHERE jsonb_typeof(d.raw) = 'number'"
)
"""Over points ``p``: one row per numeric dimension (``d.key``, value ``x.v``); text,
boolean and null dimensions are not aggregated."""


RAW_RANGE_DAYS = 1
"""A chart of at most this many days that asks for no buckets reads the points themselves
(at most 96 for the frequent tier): the design's raw points for short ranges."""
RAW_FOR_SHORT_RANGES = frozenset({"last", "avg", "min", "max"})
"""The aggregations a point drawn alone answers as its bucket would (the latest, an
average, a bound). A summed or counted chart keeps its hourly buckets: a raw point's own
``sum`` and ``count`` are not an hour's total or number of points."""


def for_chart(date_range_days: int | None, granularity: str | None, aggregation: str) -> Rollup:
    """What a chart with these settings reads: the raw points for aggregation ``none`` and
    for a short range without buckets asked for (last/avg/min/max), else :func:`pick`'s
    rollup."""
    if aggregation == "none":
        return RAW
    short = date_range_days is not None and date_range_days <= RAW_RANGE_DAYS
    if granularity is None and short and aggregation in RAW_FOR_SHORT_RANGES:
        return RAW
    return pick(date_range_days, granularity)


def pick(date_range_days: int | None, granularity: str | None = None) -> Rollup:
    """The rollup a chart reads: the one its settings ask for, else the coarsest that still
    draws the range well (and reads the fewest rows): hours up to two days, days up to about
    three months, weeks beyond (and for all time)."""
    if granularity is not None:
        return next(r for r in (*ROLLUPS, MONTHLY) if r.name == granularity)
    if date_range_days is None:
        return ROLLUPS[2]
    if date_range_days <= 2:
        return ROLLUPS[0]
    if date_range_days <= 92:
        return ROLLUPS[1]
    return ROLLUPS[2]


_CONTINUOUS = """
CREATE MATERIALIZED VIEW IF NOT EXISTS {rel}
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT p.metric_id, time_bucket({width}, p.ts) AS bucket, count(*) AS count,
       sum(p.value) AS sum, avg(p.value) AS avg, min(p.value) AS min, max(p.value) AS max,
       last(p.value, p.ts) AS last, max(p.ts) AS last_ts,
       last(p.dimensions, p.ts) AS last_dimensions
FROM metric_data_points p GROUP BY p.metric_id, bucket WITH NO DATA
"""
_CONTINUOUS_DIMENSIONS = (
    """
CREATE MATERIALIZED VIEW IF NOT EXISTS {rel}
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT p.metric_id, time_bucket({width}, p.ts) AS bucket, d.key, count(*) AS count,
       sum(x.v) AS sum, avg(x.v) AS avg, min(x.v) AS min, max(x.v) AS max,
       last(x.v, p.ts) AS last, max(p.ts) AS last_ts
FROM metric_data_points p """
    + NUMERIC_DIMENSIONS
    + """
GROUP BY p.metric_id, bucket, d.key WITH NO DATA
"""
)
_TABLE = """
CREATE TABLE IF NOT EXISTS {rel} (
    metric_id uuid NOT NULL, bucket timestamptz NOT NULL, count bigint NOT NULL,
    sum double precision, avg double precision, min double precision,
    max double precision, last double precision, last_ts timestamptz,
    last_dimensions jsonb, PRIMARY KEY (metric_id, bucket))
"""
_TABLE_DIMENSIONS = """
CREATE TABLE IF NOT EXISTS {rel} (
    metric_id uuid NOT NULL, bucket timestamptz NOT NULL, key text NOT NULL,
    count bigint NOT NULL, sum double precision, avg double precision,
    min double precision, max double precision, last double precision,
    last_ts timestamptz, PRIMARY KEY (metric_id, bucket, key))
"""
_HYPERTABLE = "SELECT create_hypertable({rel}, by_range('bucket', {chunk}), if_not_exists => true)"


def create_statements(
    mode: Mode, families: tuple[str, ...] = ("values", "dimensions")
) -> list[sql.Composed]:
    """DDL for the rollups in the given mode; every statement is idempotent."""
    out: list[sql.Composed] = []
    for rollup in ROLLUPS:
        for family in families:
            relation = rollup.relation if family == "values" else rollup.dimensions
            if mode == "continuous":
                template = _CONTINUOUS if family == "values" else _CONTINUOUS_DIMENSIONS
                out.append(
                    sql.SQL(template).format(
                        rel=sql.Identifier(relation), width=sql.Literal(rollup.width)
                    )
                )
                continue
            template = _TABLE if family == "values" else _TABLE_DIMENSIONS
            out.append(sql.SQL(template).format(rel=sql.Identifier(relation)))
            if rollup.chunk is not None:
                out.append(
                    sql.SQL(_HYPERTABLE).format(
                        rel=sql.Literal(relation), chunk=sql.Literal(rollup.chunk)
                    )
                )
    return out


def drop_statements(views: set[str], family: str) -> list[sql.Composed]:
    """DDL dropping one family's relations (coarsest first); ``views`` names the
    continuous aggregates in the database, the rest are tables."""
    out = []
    for rollup in reversed(ROLLUPS):
        relation = rollup.relation if family == "values" else rollup.dimensions
        kind = "MATERIALIZED VIEW" if relation in views else "TABLE"
        out.append(
            sql.SQL("DROP {kind} IF EXISTS {rel}").format(
                kind=sql.SQL(kind), rel=sql.Identifier(relation)
            )
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


async def refresh(conn: Conn, first: datetime, last: datetime) -> None:
    """Refresh the continuous aggregates over [first, last]; needs an autocommit
    connection (TimescaleDB refuses to refresh inside a transaction)."""
    for rollup in ROLLUPS:
        for relation in (rollup.relation, rollup.dimensions):
            await conn.execute(
                sql.SQL("CALL refresh_continuous_aggregate({rel}, {start}, {end})").format(
                    rel=sql.Literal(relation),
                    start=sql.Literal(first - rollup.width),
                    end=sql.Literal(last + rollup.width),
                )
            )


STATISTICS = ("count", "sum", "avg", "min", "max", "last")
"""What every rollup row holds for the value, and for each numeric dimension; a chart's
aggregation is one of them."""

_READ = """
SELECT r.bucket, r.count, r.sum, r.avg, r.min, r.max, r.last, r.last_dimensions::text, d.key,
       d.count, d.sum, d.avg, d.min, d.max, d.last
FROM {rel} r
LEFT JOIN {dims} d
       ON d.metric_id = %(metric_id)s AND d.bucket = r.bucket AND d.bucket >= %(since)s
WHERE r.metric_id = %(metric_id)s AND r.bucket >= %(since)s ORDER BY r.bucket, d.key
"""
"""A row per bucket and numeric dimension key (one, with a NULL key, for a bucket without
any): cheaper than building the per-key objects in SQL, which tripled the read. Columns
by position, in :func:`series_from_rows`' order; ``last_dimensions`` as text, parsed by
orjson (psycopg's jsonb loader, ``json.loads`` per row, was a fifth of the read)."""

MONTHLY = Rollup("monthly", timedelta(days=30), None)
"""Calendar months, read from the daily rollup (nothing more is kept): ``width`` is
nominal, for the chart's ``bucket_seconds``."""

_READ_MONTHLY = """
WITH r AS (
    SELECT time_bucket('1 month', bucket) AS bucket, sum(count) AS count, sum(sum) AS sum,
           sum(sum) / nullif(sum(count), 0) AS avg, min(min) AS min, max(max) AS max,
           last(last, last_ts) AS last, last(last_dimensions, last_ts) AS last_dimensions
    FROM metric_data_points_daily
    WHERE metric_id = %(metric_id)s AND bucket >= time_bucket('1 month', %(since)s::timestamptz)
    GROUP BY 1
), d AS (
    SELECT time_bucket('1 month', bucket) AS bucket, key, sum(count) AS count,
           sum(sum) AS sum, sum(sum) / nullif(sum(count), 0) AS avg, min(min) AS min,
           max(max) AS max, last(last, last_ts) AS last
    FROM metric_dimensions_daily
    WHERE metric_id = %(metric_id)s AND bucket >= time_bucket('1 month', %(since)s::timestamptz)
    GROUP BY 1, key
)
SELECT r.bucket, r.count, r.sum, r.avg, r.min, r.max, r.last, r.last_dimensions::text, d.key,
       d.count, d.sum, d.avg, d.min, d.max, d.last
FROM r LEFT JOIN d ON d.bucket = r.bucket ORDER BY r.bucket, d.key
"""
"""Months from the daily rows: counts, sums, minima and maxima combine, the average is the
month's sum over its count (not an average of daily averages), ``last`` the latest day's.
The first month is read whole."""

READ = {
    rollup.name: sql.SQL(_READ)
    .format(rel=sql.Identifier(rollup.relation), dims=sql.Identifier(rollup.dimensions))
    .as_string()
    for rollup in ROLLUPS
} | {MONTHLY.name: _READ_MONTHLY}
"""The chart read per granularity, rendered once: composing it on every call cost about
a sixth of the read (``benchmarks/chart_read.py``)."""


async def read_series(
    conn: Conn, metric_id: UUID, since: datetime, rollup: Rollup, aggregation: str
) -> list[dict[str, Any]]:
    """One row per bucket since ``since``. ``value`` is the chart's aggregation of the
    value, and ``dimensions`` holds each numeric dimension under the same aggregation
    (a summed chart sums its second series too) and each other dimension's last value;
    the other aggregates ride along for the chart transformer, the dimensions' in
    ``dimension_stats``."""
    if aggregation == "none" or rollup is RAW:
        return await read_raw(conn, metric_id, since)
    async with conn.cursor(row_factory=tuple_row) as cur:  # tuples: a third cheaper to build
        await cur.execute(READ[rollup.name], {"metric_id": metric_id, "since": since})
        return series_from_rows(await cur.fetchall(), aggregation)


RAW = Rollup("raw", timedelta(0), None)
"""What a chart of the raw points (aggregation ``none``) reads: the points table."""

_READ_RAW = """
SELECT ts, value, dimensions::text FROM (
    SELECT ts, value, dimensions FROM metric_data_points
    WHERE metric_id = %(metric_id)s AND ts >= %(since)s ORDER BY ts DESC LIMIT %(limit)s
) newest ORDER BY ts
"""


async def read_raw(conn: Conn, metric_id: UUID, since: datetime) -> list[dict[str, Any]]:
    """The points themselves since ``since`` (the newest MAX_RAW_POINTS), shaped like a
    rollup series: each statistic is the point's value, ``count`` 1."""
    async with conn.cursor(row_factory=tuple_row) as cur:
        await cur.execute(
            _READ_RAW, {"metric_id": metric_id, "since": since, "limit": MAX_RAW_POINTS}
        )
        rows = await cur.fetchall()
    return [
        {
            "timestamp": ts,
            "value": value,
            **{name: value for name in STATISTICS},
            "count": 1,
            "dimensions": orjson.loads(dimensions) if dimensions is not None else {},
            "dimension_stats": {},
        }
        for ts, value, dimensions in rows
    ]


def series_from_rows(rows: Sequence[tuple[Any, ...]], aggregation: str) -> list[dict[str, Any]]:
    """Fold :data:`READ`'s rows (a row per bucket and dimension key) into one entry per
    bucket."""
    at = 1 + STATISTICS.index(aggregation)  # the value's statistics are columns 1-6
    series: list[dict[str, Any]] = []
    for row in rows:
        if not series or series[-1]["timestamp"] != row[0]:
            series.append(
                {
                    "timestamp": row[0],
                    "value": row[at],
                    **dict(zip(STATISTICS, row[1:7], strict=True)),
                    "dimensions": orjson.loads(row[7]) if row[7] is not None else {},
                    "dimension_stats": {},
                }
            )
        key = row[8]
        if key is not None:
            stats = dict(zip(STATISTICS, row[9:15], strict=True))
            series[-1]["dimension_stats"][key] = stats
            series[-1]["dimensions"][key] = stats[aggregation]
    return series
