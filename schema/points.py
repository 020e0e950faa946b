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


async def write_points(
    conn: Conn, batches: list[MetricPoints], mode: Mode = "maintained"
) -> list[WriteSummary]:
    """Upsert the batches in the caller's transaction; one summary per metric. With
    maintained rollups, they are brought up to date in the same transaction."""
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
    if mode == "maintained":
        await rollups.maintain(conn, replaced)
    written = {
        row["metric_id"]: WriteSummary(row["metric_id"], row["n"], row["first_ts"], row["last_ts"])  # type: ignore[arg-type]
        for row in rows
    }
    return [
        written.get(b.metric_id, WriteSummary(b.metric_id, 0, None, None))
        for b in {b.metric_id: b for b in batches}.values()
    ]
