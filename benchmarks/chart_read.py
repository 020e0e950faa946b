"""Chart-read benchmark: a 90-day chart from the daily rollup against a raw scan.

On the real TimescaleDB (a scratch database, migrated like production): a year of
15-minute points for each of ``--metrics`` metrics (default 1,000; 35 million rows),
generated server-side, and the rollups built from them. Then, for one metric among them,
the chart stage's read (``schema.rollups.read_series`` on the daily rollup: 90 rows)
against the same chart computed from the hypertable with ``time_bucket`` (8,640 rows
aggregated), each repeated with a warm cache. Prints JSON.

    python -m benchmarks.chart_read [--metrics 1000] [--runs 50] [--keep] [--reuse]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import dict_row, tuple_row

from schema import rollups
from schema.migrate import apply_migrations
from tests.conftest import admin_url

DB = "metricloom_bench_read"
ADMIN = admin_url()
URL = admin_url(DB)  # its own database, as its owner
END = datetime(2026, 1, 1, tzinfo=UTC)
START = END - timedelta(days=365)

RAW = (
    """
SELECT v.*, d.key, d.count AS d_count, d.sum AS d_sum, d.avg AS d_avg, d.min AS d_min,
       d.max AS d_max, d.last AS d_last
FROM (
    SELECT time_bucket(INTERVAL '1 day', ts) AS bucket, count(*) AS count, sum(value) AS sum,
           avg(value) AS avg, min(value) AS min, max(value) AS max, last(value, ts) AS last,
           last(dimensions, ts)::text AS last_dimensions
    FROM metric_data_points
    WHERE metric_id = %(metric_id)s AND ts >= %(since)s GROUP BY 1
) v
LEFT JOIN (
    SELECT time_bucket(INTERVAL '1 day', p.ts) AS bucket, d.key, count(*) AS count,
           sum(x.v) AS sum, avg(x.v) AS avg, min(x.v) AS min, max(x.v) AS max,
           last(x.v, p.ts) AS last
    FROM metric_data_points p """
    + rollups.NUMERIC_DIMENSIONS
    + """ AND p.metric_id = %(metric_id)s AND p.ts >= %(since)s GROUP BY 1, 2
) d USING (bucket)
ORDER BY v.bucket, d.key
"""
)
"""The same chart from the points: each day's value aggregates and per-key numeric
dimension statistics, computed with ``time_bucket`` over 8,640 points (the rollup read
returns exactly this, from 90 daily rows)."""

SERVER_LOOP = """
CREATE FUNCTION pg_temp.time_query(q text, m uuid, since timestamptz, n int)
RETURNS double precision LANGUAGE plpgsql AS $$
DECLARE started timestamptz := clock_timestamp();
BEGIN
    FOR i IN 1..n LOOP
        EXECUTE q USING m, since;
    END LOOP;
    RETURN extract(epoch FROM clock_timestamp() - started) * 1000 / n;
END $$
"""
"""Mean milliseconds per execution inside the database (planned every time, no client and
no network): the query's own cost, without the ~0.1-0.5 ms a psycopg round trip adds."""


def metric_id(n: int) -> uuid.UUID:
    return uuid.uuid5(uuid.NAMESPACE_OID, f"read-bench-{n}")


def _same_series(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> bool:
    """Equal buckets and values, dimensions and per-key statistics (floats to 1e-9)."""

    def flat(entry: dict[str, Any]) -> list[tuple[str, Any]]:
        stats = entry["dimension_stats"]
        return sorted(
            [(k, v) for k, v in entry.items() if k not in ("dimensions", "dimension_stats")]
            + [(f"dim:{k}", v) for k, v in entry["dimensions"].items()]
            + [(f"{key}:{name}", v) for key, values in stats.items() for name, v in values.items()]
        )

    if len(a) != len(b) or not a:
        return False
    for left, right in zip(a, b, strict=True):
        for (lk, lv), (rk, rv) in zip(flat(left), flat(right), strict=True):
            if lk != rk:
                return False
            if isinstance(lv, float) and isinstance(rv, float):
                if not math.isclose(lv, rv, rel_tol=1e-9):
                    return False
            elif lv != rv:
                return False
    return True


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def build(metrics: int) -> float:
    """Create, migrate and fill the scratch database; returns the seconds it took."""
    started = time.perf_counter()
    with psycopg.connect(ADMIN, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {DB}")
    apply_migrations(URL)
    ids = [metric_id(n) for n in range(metrics)]
    with psycopg.connect(URL, autocommit=True) as conn:
        conn.execute("CREATE TEMP TABLE bench_metrics (n int, id uuid)")
        with conn.cursor().copy("COPY bench_metrics FROM STDIN") as copy:
            for n, mid in enumerate(ids):
                copy.write_row((n, mid))
        for first in range(0, metrics, 25):
            conn.execute(
                "INSERT INTO metric_data_points (metric_id, ts, value, dimensions)"
                " SELECT m.id, t.ts,"
                " 1000 + (extract(epoch FROM t.ts) / 3600)::int %% 97 + m.n,"
                " jsonb_build_object('forks', m.n)"
                " FROM bench_metrics m CROSS JOIN generate_series(%s::timestamptz,"
                " %s::timestamptz - INTERVAL '15 minutes', INTERVAL '15 minutes') AS t(ts)"
                " WHERE m.n >= %s AND m.n < %s",
                (START, END, first, first + 25),
            )
        for rollup in rollups.ROLLUPS:
            conn.execute(
                psycopg.sql.SQL(
                    "INSERT INTO {rel} (metric_id, bucket, count, sum, avg, min, max, last,"
                    " last_ts, last_dimensions)"
                    " SELECT metric_id, time_bucket({width}, ts), count(*), sum(value), avg(value),"
                    " min(value), max(value), last(value, ts), max(ts), last(dimensions, ts)"
                    " FROM metric_data_points GROUP BY 1, 2"
                ).format(
                    rel=psycopg.sql.Identifier(rollup.relation),
                    width=psycopg.sql.Literal(rollup.width),
                )
            )
            conn.execute(
                psycopg.sql.SQL(
                    "INSERT INTO {rel} (metric_id, bucket, key, count, sum, avg, min, max, last,"
                    " last_ts)"
                    " SELECT p.metric_id, time_bucket({width}, p.ts), d.key, count(*), sum(x.v),"
                    " avg(x.v), min(x.v), max(x.v), last(x.v, p.ts), max(p.ts)"
                    " FROM metric_data_points p " + rollups.NUMERIC_DIMENSIONS + " GROUP BY 1, 2, 3"
                ).format(
                    rel=psycopg.sql.Identifier(rollup.dimensions),
                    width=psycopg.sql.Literal(rollup.width),
                )
            )
        conn.execute("VACUUM ANALYZE")
    return time.perf_counter() - started


async def read_raw(
    conn: psycopg.AsyncConnection[Any], target: uuid.UUID, since: datetime
) -> list[dict[str, Any]]:
    """The raw path, decoded exactly as ``read_series`` decodes the rollup read."""
    async with conn.cursor(row_factory=tuple_row) as cur:
        await cur.execute(RAW, {"metric_id": target, "since": since})
        return rollups.series_from_rows(await cur.fetchall(), "avg")


async def measure(target: uuid.UUID, runs: int) -> dict[str, Any]:
    since = END - timedelta(days=90)
    async with await psycopg.AsyncConnection.connect(URL, row_factory=dict_row) as conn:
        rollup = rollups.pick(90)
        timings: dict[str, list[float]] = {"rollup": [], "raw": []}
        rows: dict[str, list[dict[str, Any]]] = {}
        for _ in range(3):  # warm both paths' pages
            await rollups.read_series(conn, target, since, rollup, "avg")
            await read_raw(conn, target, since)
        for _ in range(runs):
            start = time.perf_counter()
            rows["rollup"] = await rollups.read_series(conn, target, since, rollup, "avg")
            timings["rollup"].append(time.perf_counter() - start)
            start = time.perf_counter()
            rows["raw"] = await read_raw(conn, target, since)
            timings["raw"].append(time.perf_counter() - start)
        back_to_back: dict[str, list[float]] = {"rollup": [], "raw": []}
        for _ in range(runs):  # each read right after the previous one of its kind
            start = time.perf_counter()
            await rollups.read_series(conn, target, since, rollup, "avg")
            back_to_back["rollup"].append(time.perf_counter() - start)
        for _ in range(runs):
            start = time.perf_counter()
            await read_raw(conn, target, since)
            back_to_back["raw"].append(time.perf_counter() - start)
        trivial: dict[str, list[float]] = {"back_to_back": [], "after_20ms_idle": []}
        for label, gap in (("back_to_back", 0.0), ("after_20ms_idle", 0.02)):
            for _ in range(runs):  # the machine's floor for any read: a SELECT 1 round trip
                await asyncio.sleep(gap)
                start = time.perf_counter()
                await conn.execute("SELECT 1")
                trivial[label].append(time.perf_counter() - start)
        await conn.execute(SERVER_LOOP)
        server = {}
        for label, statement in (("rollup", rollups.READ[rollup.name]), ("raw", RAW)):
            positional = statement.replace("%(metric_id)s", "$1").replace("%(since)s", "$2")
            cur = await conn.execute(
                "SELECT pg_temp.time_query(%s, %s, %s, %s) AS ms",
                (positional, target, since, runs),
            )
            server[label] = float((await cur.fetchone())["ms"])  # type: ignore[index]
        await conn.rollback()
    same = _same_series(rows["rollup"], rows["raw"])
    p50 = {k: statistics.median(v) for k, v in timings.items()}
    return {
        "rollup_relation": rollup.relation,
        "rows_returned": len(rows["rollup"]),
        "raw_points_scanned": len(rows["raw"]) * 96,
        "dimension_keys": sorted(rows["rollup"][0]["dimension_stats"]),
        "results_equal": same,
        "rollup_p50_ms": round(p50["rollup"] * 1000, 3),
        "rollup_p95_ms": round(percentile(timings["rollup"], 0.95) * 1000, 3),
        "raw_time_bucket_p50_ms": round(p50["raw"] * 1000, 3),
        "raw_time_bucket_p95_ms": round(percentile(timings["raw"], 0.95) * 1000, 3),
        "rollup_speedup": round(p50["raw"] / p50["rollup"], 1),
        "back_to_back_p50_ms": {
            label: round(statistics.median(v) * 1000, 3) for label, v in back_to_back.items()
        },
        "back_to_back_speedup": round(
            statistics.median(back_to_back["raw"]) / statistics.median(back_to_back["rollup"]), 1
        ),
        "select_1_p50_ms": {
            label: round(statistics.median(v) * 1000, 3) for label, v in trivial.items()
        },
        "in_database_mean_ms": {label: round(ms, 3) for label, ms in server.items()},
        "in_database_speedup": round(server["raw"] / server["rollup"], 1),
        "target_20x_end_to_end": p50["raw"] >= 20 * p50["rollup"],
        "target_20x_end_to_end_back_to_back": statistics.median(back_to_back["raw"])
        >= 20 * statistics.median(back_to_back["rollup"]),
        "target_20x_in_database": server["raw"] >= 20 * server["rollup"],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--metrics", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    parser.add_argument(
        "--reuse", action="store_true", help="measure on a database kept by --keep (same --metrics)"
    )
    args = parser.parse_args()
    build_s = 0.0 if args.reuse else build(args.metrics)
    report = {
        "benchmark": "chart_read",
        "metrics": args.metrics,
        "points": args.metrics * 365 * 96,
        "build_seconds": round(build_s, 1),
        "runs": args.runs,
        **asyncio.run(measure(metric_id(args.metrics // 2), args.runs)),
    }
    if not args.keep:
        with psycopg.connect(ADMIN, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
