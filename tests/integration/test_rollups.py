"""Rollups: maintained tables on the Apache build (the project's database), continuous
aggregates on a community-license TimescaleDB (PGlite + timescaledb, WASM), and the two
agreeing on the same data."""

from __future__ import annotations

import asyncio
import math
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from yoyo import get_backend, read_migrations

from schema import rollups
from schema.models import DataPoint
from schema.points import MetricPoints, write_points
from tests.conftest import ROOT, free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]

START = datetime(2025, 3, 3, tzinfo=UTC)  # a Monday: weekly buckets start here


def sample(metric_id: uuid.UUID) -> list[DataPoint]:
    """Two weeks of 15-minute points with a numeric and a text dimension."""
    return [
        DataPoint(
            timestamp=START + timedelta(minutes=15 * i),
            value=round(100 + 10 * math.sin(i / 7) + i * 0.01, 6),
            dimensions={"forks": i // 10, "region": "emea" if i % 2 else "amer"},
        )
        for i in range(14 * 96)
    ]


@pytest.fixture(scope="module")
def community_url() -> Iterator[str]:
    """A community-license TimescaleDB (one session at a time; no COPY)."""
    port = free_port()
    proc = subprocess.Popen(
        ["node", "server.mjs", str(port)],
        cwd=ROOT / "tools" / "pglite",
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None
        line = (
            proc.stdout.readline()
        )  # "ready PORT" once it listens (a probe would take its one session)
        assert line.startswith(b"ready"), line
        url = f"postgresql://postgres:any@127.0.0.1:{port}/postgres?sslmode=disable"
        _migrate_single_session(url)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


def _migrate_single_session(url: str) -> None:
    """Run the project's migrations on one connection: yoyo opens a second connection per
    migration, which a single-session server refuses, so the steps are applied directly."""
    backend = get_backend(url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        for migration in read_migrations(str(ROOT / "schema" / "migrations")):
            migration.process_steps(backend, "apply")
            backend.connection.commit()
    finally:
        backend.connection.close()


@pytest.fixture
async def community(community_url: str) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    # The server takes a moment to release the previous session before it takes another,
    # and all clients share its one backend: no server-side prepared statements.
    for attempt in range(50):
        try:
            conn = await psycopg.AsyncConnection.connect(
                community_url, autocommit=True, row_factory=dict_row, prepare_threshold=None
            )
            break
        except psycopg.OperationalError:
            if attempt == 49:
                raise
            await asyncio.sleep(0.2)
    yield conn
    await conn.close()


async def _insert_plain(
    conn: psycopg.AsyncConnection[Any], metric_id: uuid.UUID, points: list[DataPoint]
) -> None:
    """The community server closes the connection on COPY: insert row by row there."""
    async with conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO metric_data_points (metric_id, ts, value, dimensions) VALUES (%s, %s, %s, %s)"
            " ON CONFLICT (metric_id, ts) DO UPDATE SET value = EXCLUDED.value, dimensions = EXCLUDED.dimensions",
            [(metric_id, p.timestamp, p.value, Jsonb(p.dimensions)) for p in points],
        )


async def _rollup_rows(
    conn: psycopg.AsyncConnection[Any], relation: str, metric_id: uuid.UUID
) -> list[dict[str, Any]]:
    cur = await conn.execute(
        psycopg.sql.SQL(
            "SELECT bucket, count, sum, avg, min, max, last, last_ts, last_dimensions FROM {}"
            " WHERE metric_id = %s ORDER BY bucket"
        ).format(psycopg.sql.Identifier(relation)),
        (metric_id,),
    )
    return list(await cur.fetchall())


def _same(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> None:
    assert len(a) == len(b) and a, (len(a), len(b))
    for left, right in zip(a, b, strict=True):
        assert left["bucket"] == right["bucket"]
        assert left["count"] == right["count"]
        assert left["last_ts"] == right["last_ts"]
        assert left["last_dimensions"] == right["last_dimensions"]
        for column in ("sum", "avg", "min", "max", "last"):
            assert math.isclose(left[column], right[column], rel_tol=1e-9), (column, left, right)


async def test_continuous_aggregates_are_created_where_the_license_allows(
    community: psycopg.AsyncConnection[Any], db_conn: Any
) -> None:
    """The same migration makes real-time continuous aggregates on the community build and
    plain tables on the Apache build."""
    cur = await community.execute(
        "SELECT view_name, materialized_only FROM timescaledb_information.continuous_aggregates ORDER BY 1"
    )
    assert [(r["view_name"], r["materialized_only"]) for r in await cur.fetchall()] == [
        ("metric_data_points_daily", False),
        ("metric_data_points_hourly", False),
        ("metric_data_points_weekly", False),
    ]
    assert await rollups.detect_mode(community) == "continuous"
    assert await rollups.detect_mode(db_conn) == "maintained"


async def test_continuous_and_maintained_rollups_agree(
    community: psycopg.AsyncConnection[Any], db_conn: Any
) -> None:
    """The same points give the same hourly, daily and weekly rows both ways."""
    metric_id = uuid.uuid4()
    points = sample(metric_id)
    async with db_conn.transaction():
        await write_points(db_conn, [MetricPoints(metric_id, points[:700])])
    async with db_conn.transaction():  # a second batch overlapping the first one's buckets
        await write_points(db_conn, [MetricPoints(metric_id, points[650:])])
    await _insert_plain(community, metric_id, points)
    await rollups.refresh(community, points[0].timestamp, points[-1].timestamp)
    for rollup in rollups.ROLLUPS:
        maintained = await _rollup_rows(db_conn, rollup.relation, metric_id)
        continuous = await _rollup_rows(community, rollup.relation, metric_id)
        _same(maintained, continuous)
    daily = await _rollup_rows(db_conn, "metric_data_points_daily", metric_id)
    assert [r["count"] for r in daily] == [96] * 14


async def test_backfilled_point_shows_up_in_both(
    community: psycopg.AsyncConnection[Any], db_conn: Any
) -> None:
    """A point written months before the rest lands in the rollups (refresh of the window
    the write touched, on the community build; same transaction, on the Apache one)."""
    metric_id = uuid.uuid4()
    recent = [DataPoint(timestamp=START + timedelta(days=200), value=5.0)]
    old = [DataPoint(timestamp=START, value=7.0, dimensions={"k": 1})]
    async with db_conn.transaction():
        await write_points(db_conn, [MetricPoints(metric_id, recent)])
    await _insert_plain(community, metric_id, recent)
    await rollups.refresh(community, recent[0].timestamp, recent[0].timestamp)
    async with db_conn.transaction():
        await write_points(db_conn, [MetricPoints(metric_id, old)])
    await _insert_plain(community, metric_id, old)
    await rollups.refresh(community, old[0].timestamp, old[0].timestamp)
    for relation in ("metric_data_points_hourly", "metric_data_points_weekly"):
        maintained = await _rollup_rows(db_conn, relation, metric_id)
        continuous = await _rollup_rows(community, relation, metric_id)
        _same(maintained, continuous)
        assert [r["last"] for r in maintained] == [7.0, 5.0]


async def test_snapshot_replace_empties_stale_buckets(db_conn: Any) -> None:
    """Replacing a snapshot metric's series drops the rollup rows of buckets left empty."""
    metric_id = uuid.uuid4()
    async with db_conn.transaction():
        await write_points(db_conn, [MetricPoints(metric_id, sample(metric_id)[:200])])
    fresh = [DataPoint(timestamp=START + timedelta(days=30), value=1.0)]
    async with db_conn.transaction():
        await write_points(db_conn, [MetricPoints(metric_id, fresh, replace=True)])
    daily = await _rollup_rows(db_conn, "metric_data_points_daily", metric_id)
    assert [(r["bucket"], r["count"], r["last"]) for r in daily] == [
        (START + timedelta(days=30), 1, 1.0)
    ]


async def test_chart_reads_pick_the_coarsest_rollup_that_fits(db_conn: Any) -> None:
    """Two days read hourly rows, a month daily rows, a year weekly rows; values follow
    the chart's aggregation."""
    assert [rollups.pick(d).name for d in (1, 2, 3, 92, 93, 365)] == [
        "hourly",
        "hourly",
        "daily",
        "daily",
        "weekly",
        "weekly",
    ]
    metric_id = uuid.uuid4()
    async with db_conn.transaction():
        await write_points(db_conn, [MetricPoints(metric_id, sample(metric_id))])
    series = await rollups.read_series(db_conn, metric_id, START, rollups.pick(30), "max")
    assert len(series) == 14
    assert all(row["value"] == row["max"] and row["count"] == 96 for row in series)
