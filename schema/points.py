"""Writing points into the ``metric_data_points`` hypertable and reading chart series.

The write path is COPY into a per-connection temporary table, then one
``INSERT … ON CONFLICT (metric_id, ts) DO UPDATE`` into the hypertable, all in the
caller's transaction: a point for the same metric and timestamp is updated, never
duplicated, so a re-delivered batch changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from psycopg.types.json import Jsonb

from schema import rollups
from schema.db import Conn
from schema.models import DataPoint
from schema.rollups import Mode

CREATE_STAGING = """
CREATE TEMP TABLE IF NOT EXISTS incoming_points (
    metric_id uuid, ts timestamptz, value double precision, dimensions jsonb
) ON COMMIT DELETE ROWS
"""

UPSERT = """
INSERT INTO metric_data_points AS p (metric_id, ts, value, dimensions)
SELECT metric_id, ts, value, dimensions FROM incoming_points
ON CONFLICT (metric_id, ts) DO UPDATE
SET value = EXCLUDED.value, dimensions = EXCLUDED.dimensions, created_at = now()
WHERE (p.value, p.dimensions) IS DISTINCT FROM (EXCLUDED.value, EXCLUDED.dimensions)
"""
"""Identical rows are not rewritten, so a replayed batch writes nothing. The staged rows
are unique per (metric, ts): duplicates are collapsed before COPY (ON CONFLICT cannot
touch one row twice in a statement)."""


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


async def write_points(
    conn: Conn, batches: list[MetricPoints], mode: Mode = "maintained"
) -> list[WriteSummary]:
    """Upsert the batches in the caller's transaction; one summary per metric. With
    maintained rollups, they are brought up to date in the same transaction."""
    per_metric: dict[UUID, dict[datetime, DataPoint]] = {}
    for batch in batches:  # the last point for a (metric, timestamp) wins
        stamps = {point.timestamp: point for point in batch.points}
        if batch.metric_id in per_metric:
            per_metric[batch.metric_id].update(stamps)
        else:
            per_metric[batch.metric_id] = stamps
    await conn.execute(CREATE_STAGING)
    async with conn.cursor() as cur:
        async with cur.copy(
            "COPY incoming_points (metric_id, ts, value, dimensions) FROM STDIN (FORMAT BINARY)"
        ) as copy:
            copy.set_types(["uuid", "timestamptz", "float8", "jsonb"])
            for metric_id, stamps in per_metric.items():
                for ts, point in stamps.items():
                    await copy.write_row((metric_id, ts, point.value, Jsonb(point.dimensions)))
        replaced = [b.metric_id for b in batches if b.replace]
        if replaced:
            await cur.execute(
                "DELETE FROM metric_data_points WHERE metric_id = ANY(%s)"
                " AND (metric_id, ts) NOT IN (SELECT metric_id, ts FROM incoming_points)",
                (replaced,),
            )
        await cur.execute(UPSERT)
    if mode == "maintained":
        await rollups.maintain(conn, replaced)
    return [
        WriteSummary(m, len(stamps), min(stamps), max(stamps))
        if stamps
        else WriteSummary(m, 0, None, None)
        for m, stamps in per_metric.items()
    ]
