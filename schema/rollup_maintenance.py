"""Keeping the maintained rollups (Apache build) current inside the writer's transaction.

The writer stages its batch in ``staged_points`` (see ``schema/points.py``), each row
marked ``fresh`` (newer than every point stored for its metric, inserted without a
conflict) or not. From there, finest granularity first:

* fresh points did not exist before, so their aggregates are *added* to their buckets:
  count, sum, min and max combine exactly, ``last`` moves only to a later timestamp;
* buckets touched by stale points (rewritten or older ones) and every bucket of a
  replaced series are *recomputed*: hourly from the points, daily from hourly, weekly
  from daily (already current in this transaction), so a week costs seven daily rows
  instead of 672 points. A bucket, or a dimension key, left with no point is deleted.

Both families are kept: the value rollups and the per-key numeric dimension rollups.
"""

from __future__ import annotations

from uuid import UUID

from psycopg import sql

from schema.db import Conn
from schema.rollups import NUMERIC_DIMENSIONS, ROLLUPS, Rollup

_MERGE = """
count = r.count + EXCLUDED.count, sum = r.sum + EXCLUDED.sum,
avg = (r.sum + EXCLUDED.sum) / (r.count + EXCLUDED.count),
min = least(r.min, EXCLUDED.min), max = greatest(r.max, EXCLUDED.max),
last = CASE WHEN EXCLUDED.last_ts > r.last_ts THEN EXCLUDED.last ELSE r.last END,
last_ts = greatest(r.last_ts, EXCLUDED.last_ts)"""
_MERGE_LAST_DIMENSIONS = """,
last_dimensions = CASE WHEN EXCLUDED.last_ts > r.last_ts
                       THEN EXCLUDED.last_dimensions ELSE r.last_dimensions END"""
_REPLACE = """
count = EXCLUDED.count, sum = EXCLUDED.sum, avg = EXCLUDED.avg, min = EXCLUDED.min,
max = EXCLUDED.max, last = EXCLUDED.last, last_ts = EXCLUDED.last_ts,
last_dimensions = EXCLUDED.last_dimensions"""
_VALUE_COLUMNS = "metric_id, bucket, count, sum, avg, min, max, last, last_ts, last_dimensions"
_DIMENSION_COLUMNS = "metric_id, bucket, key, count, sum, avg, min, max, last, last_ts"

# -- adding fresh points ------------------------------------------------------------------

_DELTAS = (
    """
WITH delta AS (
    SELECT metric_id, time_bucket({width}, ts) AS bucket, count(*) AS count,
           sum(value) AS sum, min(value) AS min, max(value) AS max,
           last(value, ts) AS last, max(ts) AS last_ts,
           last(dimensions, ts)::jsonb AS last_dimensions
    FROM staged_points WHERE fresh GROUP BY 1, 2
), dimension_delta AS (
    SELECT p.metric_id, time_bucket({width}, p.ts) AS bucket, d.key, count(*) AS count,
           sum(x.v) AS sum, min(x.v) AS min, max(x.v) AS max, last(x.v, p.ts) AS last,
           max(p.ts) AS last_ts
    FROM (SELECT metric_id, ts, dimensions::jsonb AS dimensions FROM staged_points
          WHERE fresh AND dimensions <> '{{}}') p
    """
    + NUMERIC_DIMENSIONS
    + """
    GROUP BY 1, 2, 3
)"""
)
_ADD_FINEST = """
INSERT INTO {rel} AS r ({columns})
SELECT {keys}, count, sum, sum / count, min, max, last, last_ts{extra} FROM {source}
ON CONFLICT ({keys}) DO UPDATE SET {merge}"""
_ADD_COARSER = """
INSERT INTO {rel} AS r ({columns})
SELECT {bucketed}, sum(count), sum(sum), sum(sum) / sum(count), min(min), max(max),
       last(last, last_ts), max(last_ts){extra_agg}
FROM {source} GROUP BY {group}
ON CONFLICT ({keys}) DO UPDATE SET {merge}"""


def _add_statement() -> sql.Composed:
    """Add the fresh points' aggregates to every granularity of both families in one
    statement: the hourly deltas are aggregated once from the staged batch, the coarser
    ones from them."""
    hourly = ROLLUPS[0]
    inserts: list[sql.Composed] = []
    for family in ("values", "dimensions"):
        values = family == "values"
        keys = "metric_id, bucket" if values else "metric_id, bucket, key"
        for rollup in ROLLUPS:
            fields = {
                "rel": sql.Identifier(rollup.relation if values else rollup.dimensions),
                "columns": sql.SQL(_VALUE_COLUMNS if values else _DIMENSION_COLUMNS),
                "keys": sql.SQL(keys),
                "source": sql.Identifier("delta" if values else "dimension_delta"),
                "merge": sql.SQL(_MERGE + (_MERGE_LAST_DIMENSIONS if values else "")),
            }
            if rollup is hourly:
                statement = sql.SQL(_ADD_FINEST).format(
                    extra=sql.SQL(", last_dimensions" if values else ""), **fields
                )
            else:
                bucketed = "metric_id, time_bucket({width}, bucket)" + ("" if values else ", key")
                statement = sql.SQL(_ADD_COARSER).format(
                    bucketed=sql.SQL(bucketed).format(width=sql.Literal(rollup.width)),
                    group=sql.SQL("1, 2" if values else "1, 2, 3"),
                    extra_agg=sql.SQL(", last(last_dimensions, last_ts)" if values else ""),
                    **fields,
                )
            inserts.append(statement)
    *ctes, final = inserts
    named = [
        sql.SQL(", {name} AS ({insert})").format(name=sql.Identifier(f"add_{n}"), insert=i)
        for n, i in enumerate(ctes)
    ]
    deltas = sql.SQL(_DELTAS).format(width=sql.Literal(hourly.width))
    return sql.Composed([deltas, *named, sql.SQL(" "), final])


ADD_FRESH = _add_statement()

# -- recomputing touched buckets ----------------------------------------------------------

_TOUCHED = """
WITH touched AS (
    SELECT DISTINCT metric_id, time_bucket({width}, ts) AS bucket
    FROM staged_points WHERE NOT fresh
    UNION
    SELECT metric_id, bucket FROM {rel} WHERE metric_id = ANY(%(replaced)s)
)"""
_RECOMPUTE_VALUES = (
    _TOUCHED
    + """, fresh AS (
    SELECT t.metric_id, t.bucket, {aggregates}
    FROM touched t
    LEFT JOIN {origin} p
           ON p.metric_id = t.metric_id AND p.{time} >= t.bucket AND p.{time} < t.bucket + {width}
    GROUP BY t.metric_id, t.bucket
), emptied AS (
    DELETE FROM {rel} r USING fresh f
    WHERE r.metric_id = f.metric_id AND r.bucket = f.bucket AND f.count = 0
)
INSERT INTO {rel} AS r ("""
    + _VALUE_COLUMNS
    + ") SELECT "
    + _VALUE_COLUMNS
    + """ FROM fresh WHERE count > 0
ON CONFLICT (metric_id, bucket) DO UPDATE SET """
    + _REPLACE
)
_FROM_POINTS = """count(p.ts) AS count, sum(p.value) AS sum, avg(p.value) AS avg,
    min(p.value) AS min, max(p.value) AS max, last(p.value, p.ts) AS last,
    max(p.ts) AS last_ts, last(p.dimensions, p.ts) AS last_dimensions"""
_FROM_ROLLUP = """coalesce(sum(p.count), 0) AS count, sum(p.sum) AS sum,
    sum(p.sum) / nullif(sum(p.count), 0) AS avg, min(p.min) AS min, max(p.max) AS max,
    last(p.last, p.last_ts) AS last, max(p.last_ts) AS last_ts,
    last(p.last_dimensions, p.last_ts) AS last_dimensions"""

_DELETE_DIMENSIONS = (
    _TOUCHED
    + """
DELETE FROM {dims} r USING touched t WHERE r.metric_id = t.metric_id AND r.bucket = t.bucket"""
)
_RECOMPUTE_DIMENSIONS_FROM_POINTS = (
    _TOUCHED
    + """
INSERT INTO {dims} ("""
    + _DIMENSION_COLUMNS
    + """)
SELECT t.metric_id, t.bucket, d.key, count(*), sum(x.v), avg(x.v), min(x.v), max(x.v),
       last(x.v, p.ts), max(p.ts)
FROM touched t
JOIN metric_data_points p
  ON p.metric_id = t.metric_id AND p.ts >= t.bucket AND p.ts < t.bucket + {width} """
    + NUMERIC_DIMENSIONS
    + """
GROUP BY 1, 2, 3"""
)
_RECOMPUTE_DIMENSIONS_FROM_ROLLUP = (
    _TOUCHED
    + """
INSERT INTO {dims} ("""
    + _DIMENSION_COLUMNS
    + """)
SELECT t.metric_id, t.bucket, p.key, sum(p.count), sum(p.sum), sum(p.sum) / sum(p.count),
       min(p.min), max(p.max), last(p.last, p.last_ts), max(p.last_ts)
FROM touched t
JOIN {origin} p
  ON p.metric_id = t.metric_id AND p.bucket >= t.bucket AND p.bucket < t.bucket + {width}
GROUP BY 1, 2, 3"""
)


def _recompute_statements(rollup: Rollup, source: Rollup | None) -> list[sql.Composed]:
    """Recompute the touched buckets of one granularity, both families. The dimension
    rows of a touched bucket are deleted and rewritten (in two statements: a statement's
    unreferenced data-modifying CTE runs after its main query)."""
    fields = {
        "rel": sql.Identifier(rollup.relation),
        "dims": sql.Identifier(rollup.dimensions),
        "width": sql.Literal(rollup.width),
    }
    if source is None:
        values = sql.SQL(_RECOMPUTE_VALUES).format(
            aggregates=sql.SQL(_FROM_POINTS),
            origin=sql.Identifier("metric_data_points"),
            time=sql.Identifier("ts"),
            **fields,
        )
        dimensions = sql.SQL(_RECOMPUTE_DIMENSIONS_FROM_POINTS).format(**fields)
    else:
        values = sql.SQL(_RECOMPUTE_VALUES).format(
            aggregates=sql.SQL(_FROM_ROLLUP),
            origin=sql.Identifier(source.relation),
            time=sql.Identifier("bucket"),
            **fields,
        )
        dimensions = sql.SQL(_RECOMPUTE_DIMENSIONS_FROM_ROLLUP).format(
            origin=sql.Identifier(source.dimensions), **fields
        )
    # Dimensions first: their touched buckets include a replaced series' old buckets,
    # which the value recompute deletes when they are left empty.
    return [sql.SQL(_DELETE_DIMENSIONS).format(**fields), dimensions, values]


RECOMPUTE = [
    statement
    for i, rollup in enumerate(ROLLUPS)
    for statement in _recompute_statements(rollup, ROLLUPS[i - 1] if i else None)
]
"""Finest first: a recomputed bucket is always its points' true aggregate, whatever order
batches arrive in."""


async def maintain(conn: Conn, replaced: list[UUID], fresh: bool, stale_changed: bool) -> None:
    """Bring the maintained rollups up to date with the staged batch (same transaction):
    add the fresh points, then recompute the buckets of stale points and of replaced
    series, unless the stale points were all identical to the stored ones (a replayed
    batch) and nothing was replaced."""
    if fresh:
        await conn.execute(ADD_FRESH)
    if stale_changed or replaced:
        for statement in RECOMPUTE:
            await conn.execute(statement, {"replaced": replaced})
