"""Writer benchmark: the writer's path against the two ways people write it by hand.

On the real TimescaleDB (a scratch database, migrated like production), writes N points
over 1,000 metrics in transactions of ``--batch`` points, each path into an empty
hypertable:

* ``writer``: ``schema.points.write_points`` as the worker runs it on this (Apache)
  build: maintained rollups, kept current in each batch's transaction. The time spent in
  ``rollups.maintain`` is measured on its own (``rollup_maintenance_seconds``), and
  ``writer_points_only`` is the writer's rate without it;
* ``writer_continuous_mode``: the same function as it runs next to continuous aggregates
  (no rollup work, and no newest-point probe: every point takes the upsert);
* ``executemany``: ``INSERT … ON CONFLICT DO UPDATE`` through ``cursor.executemany``;
* ``bare_copy_upsert``: COPY into a temporary table then ``INSERT … SELECT … ON CONFLICT``,
  written inline here (the floor the writer's own overhead is measured against).

Every path runs ``--repeat`` times, in rounds; prints JSON with the median points per
second, their range, and the ratios the targets are stated in (each taken within a round).

    python -m benchmarks.writer [--sizes 100000 1000000] [--batch 10000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from schema import rollup_maintenance, rollups
from schema.migrate import apply_migrations
from schema.models import DataPoint
from schema.points import MetricPoints, write_points
from tests.conftest import admin_url

DB = "metricloom_bench_writer"
ADMIN = admin_url()
URL = admin_url(DB)  # its own database, as its owner
METRICS = [uuid.uuid5(uuid.NAMESPACE_OID, f"bench-{n}") for n in range(1000)]
START = datetime(2025, 1, 1, tzinfo=UTC)

Conn = psycopg.AsyncConnection[dict[str, Any]]
Row = tuple[uuid.UUID, datetime, float, dict[str, Any]]


def make_rows(count: int) -> list[Row]:
    """Points round-robin over the metrics, 15 minutes apart per metric."""
    return [
        (
            METRICS[i % 1000],
            START + timedelta(minutes=15 * (i // 1000)),
            float(i % 997),
            {"forks": i % 13},
        )
        for i in range(count)
    ]


def as_batches(rows: list[Row]) -> list[MetricPoints]:
    """The writer's input as the points topic delivers it: validated points per metric
    (built before the clock starts, like the other paths' tuples)."""
    by_metric: dict[uuid.UUID, list[DataPoint]] = {}
    for metric_id, ts, value, dims in rows:
        by_metric.setdefault(metric_id, []).append(
            DataPoint.model_construct(timestamp=ts, value=value, dimensions=dims)
        )
    return [MetricPoints(m, points) for m, points in by_metric.items()]


async def path_writer(conn: Conn, batches: list[MetricPoints], mode: rollups.Mode) -> None:
    async with conn.transaction():
        await write_points(conn, batches, mode)


class MaintainClock:
    """Wraps ``rollup_maintenance.maintain`` (which the writer calls through the module) to
    add up the time spent in it; the behaviour is untouched."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._maintain = rollup_maintenance.maintain

    async def __call__(self, *args: Any, **kwargs: Any) -> None:
        start = time.perf_counter()
        try:
            await self._maintain(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - start


async def path_executemany(conn: Conn, rows: list[Row]) -> None:
    async with conn.transaction(), conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO metric_data_points (metric_id, ts, value, dimensions)"
            " VALUES (%s, %s, %s, %s) ON CONFLICT (metric_id, ts) DO UPDATE"
            " SET value = EXCLUDED.value, dimensions = EXCLUDED.dimensions",
            [(m, ts, v, Jsonb(d)) for m, ts, v, d in rows],
        )


async def path_bare_copy(conn: Conn, rows: list[Row]) -> None:
    async with conn.transaction(), conn.cursor() as cur:
        await cur.execute(
            "CREATE TEMP TABLE IF NOT EXISTS bare_stage"
            " (metric_id uuid, ts timestamptz, value float8, dimensions jsonb) ON COMMIT DELETE ROWS"
        )
        async with cur.copy("COPY bare_stage FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(["uuid", "timestamptz", "float8", "jsonb"])
            for m, ts, v, d in rows:
                await copy.write_row((m, ts, v, Jsonb(d)))
        await cur.execute(
            "INSERT INTO metric_data_points (metric_id, ts, value, dimensions)"
            " SELECT metric_id, ts, value, dimensions FROM bare_stage"
            " ON CONFLICT (metric_id, ts) DO UPDATE"
            " SET value = EXCLUDED.value, dimensions = EXCLUDED.dimensions"
        )


async def reset(conn: Conn) -> None:
    relations = [r.relation for r in rollups.ROLLUPS] + [r.dimensions for r in rollups.ROLLUPS]
    await conn.execute("TRUNCATE metric_data_points, " + ", ".join(relations))
    await conn.commit()


async def timed(
    conn: Conn, chunks: list[Any], expected: int, write: Callable[[Conn, Any], Awaitable[None]]
) -> float:
    await reset(conn)
    start = time.perf_counter()
    for chunk in chunks:
        await write(conn, chunk)
    elapsed = time.perf_counter() - start
    cur = await conn.execute("SELECT count(*) AS n FROM metric_data_points")
    row = await cur.fetchone()
    assert row is not None and row["n"] == expected, row
    return elapsed


async def one_round(
    conn: Conn, size: int, chunks: list[list[Row]], point_batches: list[list[MetricPoints]]
) -> dict[str, float]:
    """Seconds per path for one pass over the points, each into an empty hypertable."""
    clock = MaintainClock()
    rollup_maintenance.maintain = clock
    try:
        writer = await timed(
            conn, point_batches, size, lambda c, b: path_writer(c, b, "maintained")
        )
    finally:
        rollup_maintenance.maintain = clock._maintain
    return {
        "writer": writer,
        "writer_points_only": writer - clock.seconds,
        "rollup_maintenance": clock.seconds,
        "writer_continuous_mode": await timed(
            conn, point_batches, size, lambda c, b: path_writer(c, b, "continuous")
        ),
        "bare_copy_upsert": await timed(conn, chunks, size, path_bare_copy),
        "executemany": await timed(conn, chunks, size, path_executemany),
    }


RATIOS = {  # name: (numerator path, denominator path), as rates
    "writer_vs_executemany": ("writer", "executemany"),
    "writer_points_only_vs_executemany": ("writer_points_only", "executemany"),
    "bare_copy_vs_writer_points_only": ("bare_copy_upsert", "writer_points_only"),
}


def summarise(size: int, rounds: list[dict[str, float]]) -> dict[str, Any]:
    """Medians over the rounds; each ratio is taken within a round (paths measured minutes
    apart on a shared machine drift apart), then its median and range reported."""
    paths = [k for k in rounds[0] if k != "rollup_maintenance"]
    rates = [{k: size / r[k] for k in paths} for r in rounds]
    rate = {k: round(statistics.median(r[k] for r in rates)) for k in paths}
    ratios = {name: [r[top] / r[bottom] for r in rates] for name, (top, bottom) in RATIOS.items()}
    ratio = {name: round(statistics.median(v), 2) for name, v in ratios.items()}
    return {
        "points_per_second": rate,
        "points_per_second_range": {
            k: [round(min(r[k] for r in rates)), round(max(r[k] for r in rates))] for k in paths
        },
        "rollup_maintenance_seconds": round(
            statistics.median(r["rollup_maintenance"] for r in rounds), 2
        ),
        **ratio,
        "ratio_ranges": {name: [round(min(v), 2), round(max(v), 2)] for name, v in ratios.items()},
        "targets": {
            "writer_with_rollups_at_least_5x_executemany": ratio["writer_vs_executemany"] >= 5,
            "writer_points_only_at_least_5x_executemany": ratio["writer_points_only_vs_executemany"]
            >= 5,
            "writer_points_only_within_1.3x_of_bare_copy": ratio["bare_copy_vs_writer_points_only"]
            <= 1.3,
        },
    }


async def run(sizes: list[int], batch: int, repeat: int) -> dict[str, Any]:
    with psycopg.connect(ADMIN, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {DB}")
    apply_migrations(URL)
    report: dict[str, Any] = {
        "benchmark": "writer",
        "batch_points": batch,
        "metrics": 1000,
        "rounds": repeat,
        "sizes": {},
    }
    async with await psycopg.AsyncConnection.connect(URL, row_factory=dict_row) as conn:
        for size in sizes:
            rows = make_rows(size)
            chunks = [rows[o : o + batch] for o in range(0, size, batch)]
            point_batches = [as_batches(chunk) for chunk in chunks]
            rounds = [await one_round(conn, size, chunks, point_batches) for _ in range(repeat)]
            report["sizes"][str(size)] = summarise(size, rounds)
    with psycopg.connect(ADMIN, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
    return report


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3, help="rounds of every path")
    args = parser.parse_args()
    report = asyncio.run(run(args.sizes, args.batch, args.repeat))
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
