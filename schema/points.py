"""Writing points into the ``metric_data_points`` hypertable and reading chart series.

The write path is COPY into a per-connection temporary table, then one
``INSERT … ON CONFLICT (metric_id, ts) DO UPDATE`` into the hypertable, all in the
caller's transaction: a point for the same metric and timestamp is updated, never
duplicated, so a re-delivered batch changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from psycopg.types.json import Jsonb

from schema.db import Conn
from schema.models import DataPoint

CREATE_STAGING = """
CREATE TEMP TABLE IF NOT EXISTS incoming_points (
    seq bigint, metric_id uuid, ts timestamptz, value double precision, dimensions jsonb
) ON COMMIT DELETE ROWS
"""

UPSERT = """
INSERT INTO metric_data_points AS p (metric_id, ts, value, dimensions)
SELECT DISTINCT ON (metric_id, ts) metric_id, ts, value, dimensions
FROM incoming_points
ORDER BY metric_id, ts, seq DESC
ON CONFLICT (metric_id, ts) DO UPDATE
SET value = EXCLUDED.value, dimensions = EXCLUDED.dimensions, created_at = now()
WHERE (p.value, p.dimensions) IS DISTINCT FROM (EXCLUDED.value, EXCLUDED.dimensions)
"""
"""Keeps the last of duplicate (metric, ts) pairs within a batch (``DISTINCT ON`` … ``seq
DESC``: ON CONFLICT cannot touch one row twice) and skips rewriting identical rows, so a
replayed batch writes nothing."""

SUMMARY = """
SELECT metric_id, count(*) AS n, min(ts) AS first_ts, max(ts) AS last_ts
FROM incoming_points GROUP BY metric_id
"""


@dataclass(frozen=True)
class MetricPoints:
    """The points of one metric to write; ``replace`` swaps the metric's whole series
    (snapshot templates such as a sheet column)."""

    metric_id: UUID
    points: list[DataPoint]
    replace: bool = False


@dataclass(frozen=True)
class WriteSummary:
    metric_id: UUID
    points: int
    first_ts: datetime | None
    last_ts: datetime | None


async def write_points(conn: Conn, batches: list[MetricPoints]) -> list[WriteSummary]:
    """Upsert the batches in the caller's transaction; one summary per metric."""
    await conn.execute(CREATE_STAGING)
    seq = 0
    async with conn.cursor() as cur:
        async with cur.copy(
            "COPY incoming_points (seq, metric_id, ts, value, dimensions) FROM STDIN"
        ) as copy:
            for batch in batches:
                for point in batch.points:
                    seq += 1
                    await copy.write_row(
                        (
                            seq,
                            batch.metric_id,
                            point.timestamp,
                            point.value,
                            Jsonb(point.dimensions),
                        )
                    )
        replaced = [b.metric_id for b in batches if b.replace]
        if replaced:
            await cur.execute(
                "DELETE FROM metric_data_points WHERE metric_id = ANY(%s)"
                " AND (metric_id, ts) NOT IN (SELECT metric_id, ts FROM incoming_points)",
                (replaced,),
            )
        await cur.execute(UPSERT)
        await cur.execute(SUMMARY)
        rows = await cur.fetchall()
    written = {
        row["metric_id"]: WriteSummary(row["metric_id"], row["n"], row["first_ts"], row["last_ts"])  # type: ignore[arg-type]
        for row in rows
    }
    return [
        written.get(b.metric_id, WriteSummary(b.metric_id, 0, None, None))
        for b in {b.metric_id: b for b in batches}.values()
    ]


def bucket_for(date_range_days: int) -> timedelta:
    """The coarsest bucket that still draws the range well: hours up to two days,
    days up to ~three months, weeks beyond."""
    if date_range_days <= 2:
        return timedelta(hours=1)
    if date_range_days <= 92:
        return timedelta(days=1)
    return timedelta(weeks=1)


READ_SERIES = """
SELECT time_bucket(%(bucket)s, ts) AS bucket,
       count(*) AS count, sum(value) AS sum, avg(value) AS avg,
       min(value) AS min, max(value) AS max, last(value, ts) AS last,
       last(dimensions, ts) AS dimensions
FROM metric_data_points
WHERE metric_id = %(metric_id)s AND ts >= %(since)s
GROUP BY bucket
ORDER BY bucket
"""


async def read_series(
    conn: Conn, metric_id: UUID, since: datetime, bucket: timedelta, aggregation: str
) -> list[dict[str, Any]]:
    """The metric's points since ``since``, one row per bucket, ``value`` being the
    chart's chosen aggregation; the other aggregates are included for the transformer."""
    cur = await conn.execute(
        READ_SERIES, {"bucket": bucket, "metric_id": metric_id, "since": since}
    )
    rows = await cur.fetchall()
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
            "dimensions": row["dimensions"] or {},
        }
        for row in rows
    ]
