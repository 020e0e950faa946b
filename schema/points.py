"""Writing points into the ``metric_data_points`` hypertable.

Every batch is deduplicated in memory (the last point for a metric and timestamp wins),
sent by one binary COPY into a per-connection staging table and moved into the
hypertable in the caller's transaction. A point for the same metric and timestamp is
updated, never duplicated, so a re-delivered batch changes nothing. Two ways in, chosen
per point:

* **fresh** points, newer than everything stored for their metric (each poll of a current
  value, a first backfill), go in by a plain ``INSERT``: nothing can conflict, and with
  maintained rollups their aggregates are *added* to the buckets they fall in;
* **stale** points (an overlapping poll, a replayed batch, an older backfill chunk, a
  snapshot replace) go in by ``INSERT … ON CONFLICT DO UPDATE``, and the rollup buckets
  they change are recomputed from the points.

The fresh path costs roughly half to two thirds of the stale one (``benchmarks/writer.py``:
about 2.5 against 3.7 µs of server time per point for the insert, 3.2 against 5.9 s per
million points for the value rollups). "Newer
than everything stored" is read from the weekly rollup's ``last_ts``, which the writer
keeps in the same transactions as the points; it is known only with maintained rollups,
so with continuous aggregates every point takes the upsert. Writers of one metric
serialise on a transaction-level advisory lock, so neither that probe nor the rollup
arithmetic races another worker (a rebalance can briefly give one metric's partition to
two consumers). If a fresh insert conflicts anyway (points written behind the writer's
back), the batch falls back to the upsert for every point: slower, still exact.

Dimensions are staged as JSON text serialised by orjson and cast by the server: psycopg's
jsonb dumper (``json.dumps`` behind a Python-level call per row) was the costliest part
of the write on the client.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast
from uuid import UUID

import orjson
from psycopg import AsyncCursor, errors

from schema import rollup_maintenance
from schema.db import Conn
from schema.models import DataPoint
from schema.rollups import Mode

CREATE_STAGING = (
    "CREATE TEMP TABLE IF NOT EXISTS staged_points ("
    " metric_id uuid, ts timestamptz, value double precision, dimensions text, fresh boolean"
    ") ON COMMIT DELETE ROWS"
)
"""The batch, unique per (metric, ts); ``fresh``: newer than every point stored for the
metric before this batch."""

COPY_STAGED = (
    "COPY staged_points (metric_id, ts, value, dimensions, fresh) FROM STDIN (FORMAT BINARY)"
)
NO_DIMENSIONS = "{}"
EARLIEST = datetime.min.replace(tzinfo=UTC)
LATEST = datetime.max.replace(tzinfo=UTC)
"""A point is fresh when it is later than its metric's newest stored point: after
EARLIEST when none is stored; never, after LATEST (replaced series, continuous mode)."""

LOCK_METRICS = "SELECT pg_advisory_xact_lock(k) FROM unnest(%s::bigint[]) AS k"
"""Keys arrive sorted, and ``unnest`` keeps their order: writers take the locks in the same
order and cannot deadlock on them."""

STORED_UNTIL = """
SELECT m AS metric_id,
       (SELECT w.last_ts FROM metric_data_points_weekly w
        WHERE w.metric_id = m ORDER BY w.bucket DESC LIMIT 1) AS stored_until
FROM unnest(%s::uuid[]) AS m
"""
"""The newest week of a metric holds its newest point: one index probe per metric."""

INSERT_FRESH = """
INSERT INTO metric_data_points (metric_id, ts, value, dimensions)
SELECT metric_id, ts, value, dimensions::jsonb FROM staged_points WHERE fresh
"""

UPSERT_STALE = """
INSERT INTO metric_data_points AS p (metric_id, ts, value, dimensions)
SELECT metric_id, ts, value, dimensions::jsonb FROM staged_points WHERE NOT fresh
ON CONFLICT (metric_id, ts) DO UPDATE
SET value = EXCLUDED.value, dimensions = EXCLUDED.dimensions, created_at = now()
WHERE (p.value, p.dimensions) IS DISTINCT FROM (EXCLUDED.value, EXCLUDED.dimensions)
"""
"""Identical rows are not rewritten, so a replayed batch writes nothing."""

DELETE_REPLACED = """
DELETE FROM metric_data_points p
WHERE p.metric_id = ANY(%s)
  AND NOT EXISTS (SELECT 1 FROM staged_points s WHERE s.metric_id = p.metric_id AND s.ts = p.ts)
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


async def _stored_until(cur: AsyncCursor[Any], metrics: list[UUID]) -> dict[UUID, datetime]:
    """Per metric, the newest timestamp stored (EARLIEST: none)."""
    await cur.execute(STORED_UNTIL, (metrics,))
    return {
        cast("UUID", row["metric_id"]): cast("datetime | None", row["stored_until"]) or EARLIEST
        for row in await cur.fetchall()
    }


def _lock_key(metric_id: UUID) -> int:
    """A metric's advisory-lock key: its first 64 bits (a collision only serialises two
    metrics' writes, it never mixes them)."""
    return int.from_bytes(metric_id.bytes[:8], "big", signed=True)


async def write_points(
    conn: Conn, batches: list[MetricPoints], mode: Mode = "maintained"
) -> list[WriteSummary]:
    """Write the batches in the caller's transaction; one summary per metric. With
    maintained rollups, they are brought up to date in the same transaction."""
    per_metric: dict[UUID, dict[datetime, DataPoint]] = {}
    for batch in batches:  # the last point for a (metric, timestamp) wins
        stamps = {point.timestamp: point for point in batch.points}
        if batch.metric_id in per_metric:
            per_metric[batch.metric_id].update(stamps)
        else:
            per_metric[batch.metric_id] = stamps
    replaced = [b.metric_id for b in batches if b.replace]
    dumps = orjson.dumps
    async with conn.cursor() as cur:
        await cur.execute(CREATE_STAGING)
        stored_until: dict[UUID, datetime] = {}  # absent: nothing known, every point stale
        if mode == "maintained":
            await cur.execute(LOCK_METRICS, (sorted({_lock_key(m) for m in per_metric}),))
            stored_until = await _stored_until(cur, list(per_metric))
            stored_until.update(dict.fromkeys(replaced, LATEST))
        fresh = 0
        async with cur.copy(COPY_STAGED) as copy:
            copy.set_types(["uuid", "timestamptz", "float8", "text", "bool"])
            for metric_id, stamps in per_metric.items():
                until = stored_until.get(metric_id, LATEST)
                for ts, point in stamps.items():
                    dims = point.dimensions
                    is_fresh = ts > until
                    fresh += is_fresh
                    await copy.write_row(
                        (
                            metric_id,
                            ts,
                            point.value,
                            dumps(dims).decode() if dims else NO_DIMENSIONS,
                            is_fresh,
                        )
                    )
        stale = sum(map(len, per_metric.values())) - fresh
        if replaced:
            await cur.execute(DELETE_REPLACED, (replaced,))
        if fresh:  # statements with nothing to do are skipped: small batches are common
            try:
                async with conn.transaction():  # a savepoint
                    await cur.execute(INSERT_FRESH)
            except errors.UniqueViolation:  # written behind the writer's back: upsert all
                await cur.execute("UPDATE staged_points SET fresh = false WHERE fresh")
                fresh, stale = 0, stale + fresh
        stale_changed = False
        if stale:
            await cur.execute(UPSERT_STALE)
            stale_changed = cur.rowcount > 0
    if mode == "maintained":
        await rollup_maintenance.maintain(conn, replaced, fresh > 0, stale_changed)
    return [
        WriteSummary(m, len(stamps), min(stamps), max(stamps))
        if stamps
        else WriteSummary(m, 0, None, None)
        for m, stamps in per_metric.items()
    ]
