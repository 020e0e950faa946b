"""Rollups: maintained tables on the Apache build (the project's database), continuous
aggregates on a community-license TimescaleDB (PGlite + timescaledb, WASM), and the two
agreeing on the same data."""

from __future__ import annotations

import asyncio
import math
import random
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
from schema.models import DataPoint, range_start
from schema.points import MetricPoints, write_points
from schema.roles import grant_application_role
from tests.conftest import ROOT, admin_url, free_port, migrated_database

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
    if relation.startswith("metric_dimensions"):
        columns, order = "bucket, key, count, sum, avg, min, max, last, last_ts", "bucket, key"
    else:
        columns, order = (
            "bucket, count, sum, avg, min, max, last, last_ts, last_dimensions",
            "bucket",
        )
    cur = await conn.execute(
        psycopg.sql.SQL("SELECT {} FROM {} WHERE metric_id = %s ORDER BY {}").format(
            psycopg.sql.SQL(columns), psycopg.sql.Identifier(relation), psycopg.sql.SQL(order)
        ),
        (metric_id,),
    )
    return list(await cur.fetchall())


def _same(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> None:
    assert len(a) == len(b), (len(a), len(b))
    for left, right in zip(a, b, strict=True):
        assert left.keys() == right.keys()
        for column, value in left.items():
            if isinstance(value, float):
                assert math.isclose(value, right[column], rel_tol=1e-9), (column, left, right)
            else:
                assert value == right[column], (column, left, right)


async def _both_families(
    conn: psycopg.AsyncConnection[Any], rollup: rollups.Rollup, metric_id: uuid.UUID
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    return (
        await _rollup_rows(conn, rollup.relation, metric_id),
        await _rollup_rows(conn, rollup.dimensions, metric_id),
    )


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
        ("metric_dimensions_daily", False),
        ("metric_dimensions_hourly", False),
        ("metric_dimensions_weekly", False),
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
        maintained = await _both_families(db_conn, rollup, metric_id)
        continuous = await _both_families(community, rollup, metric_id)
        for left, right in zip(maintained, continuous, strict=True):
            assert left
            _same(left, right)
    daily = await _rollup_rows(db_conn, "metric_data_points_daily", metric_id)
    assert [r["count"] for r in daily] == [96] * 14
    daily_forks = await _rollup_rows(db_conn, "metric_dimensions_daily", metric_id)
    assert {r["key"] for r in daily_forks} == {"forks"}  # "region" is text: not aggregated
    assert daily_forks[0]["max"] == 9.0 and daily_forks[0]["sum"] == sum(i // 10 for i in range(96))
    # the chart read is the same statement on both: tables here, continuous aggregates there
    for rollup in rollups.ROLLUPS:
        maintained_series = await rollups.read_series(db_conn, metric_id, START, rollup, "sum")
        continuous_series = await rollups.read_series(community, metric_id, START, rollup, "sum")
        assert len(maintained_series) == len(continuous_series) > 0
        for entry, other in zip(maintained_series, continuous_series, strict=True):
            assert entry["timestamp"] == other["timestamp"]
            assert math.isclose(entry["value"], other["value"], rel_tol=1e-9)
            assert entry["dimensions"].keys() == other["dimensions"].keys() == {"forks", "region"}
            assert math.isclose(
                entry["dimensions"]["forks"], other["dimensions"]["forks"], rel_tol=1e-9
            )


async def test_monthly_buckets_combine_the_daily_rows(db_conn: Any) -> None:
    """Calendar months read from the daily rollup: counts and sums add up, the average is
    the month's sum over its count (not a mean of daily means), max/min/last across days,
    a numeric dimension the same way; the first month is read whole."""
    metric_id = uuid.uuid4()
    days = [datetime(2025, 1, 30, tzinfo=UTC) + timedelta(days=d) for d in range(40)]
    points = [  # two points a day in January (uneven day counts make a mean of means differ)
        DataPoint(timestamp=day + timedelta(hours=h), value=float(d * 10 + h), dimensions={"n": d})
        for d, day in enumerate(days)
        for h in ((0, 6) if day.month == 1 else (0,))
    ]
    async with db_conn.transaction():
        await write_points(db_conn, [MetricPoints(metric_id, points)])
    since = datetime(2025, 1, 31, tzinfo=UTC)  # mid-month: January is still read whole
    series = await rollups.read_series(db_conn, metric_id, since, rollups.MONTHLY, "avg")
    months = {(p.timestamp.year, p.timestamp.month) for p in points}
    assert [(e["timestamp"].year, e["timestamp"].month) for e in series] == sorted(months)
    for entry in series:
        mine = [
            p
            for p in points
            if (p.timestamp.year, p.timestamp.month)
            == (entry["timestamp"].year, entry["timestamp"].month)
        ]
        values = [p.value for p in mine]
        assert entry["count"] == len(mine)
        assert math.isclose(entry["sum"], sum(values))
        assert math.isclose(entry["value"], sum(values) / len(values))  # avg: the chart's
        assert (entry["min"], entry["max"], entry["last"]) == (min(values), max(values), values[-1])
        assert entry["dimension_stats"]["n"]["max"] == max(
            float(str(p.dimensions["n"])) for p in mine
        )
    assert rollups.pick(30, "monthly") is rollups.MONTHLY


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
    # numeric dimensions follow the chart's aggregation, text ones keep their last value
    first_day = [p for p in sample(metric_id) if p.timestamp < START + timedelta(days=1)]
    assert series[0]["dimensions"] == {"forks": 9.0, "region": first_day[-1].dimensions["region"]}
    assert series[0]["dimension_stats"]["forks"] == {
        "count": 96, "sum": float(sum(i // 10 for i in range(96))), "avg": sum(i // 10 for i in range(96)) / 96,
        "min": 0.0, "max": 9.0, "last": 9.0,
    }  # fmt: skip
    summed = await rollups.read_series(db_conn, metric_id, START, rollups.pick(30), "sum")
    assert summed[0]["dimensions"]["forks"] == float(sum(i // 10 for i in range(96)))


async def test_all_time_reads_every_point_and_a_day_reads_the_points_themselves(
    db_conn: Any,
) -> None:
    """The design's dateRange "all" (None) has no bound: a point from 2010 is drawn, which
    the longest finite range (3,660 days) leaves out. A one-day chart without buckets asked
    for reads the raw points, fresh, when a point answers its aggregation alone (last, avg,
    min, max); a summed or counted one keeps its hourly totals."""
    metric_id = uuid.uuid4()
    now = datetime.now(UTC).replace(microsecond=0)
    old = DataPoint(timestamp=datetime(2010, 6, 1, tzinfo=UTC), value=1.0)
    recent = [DataPoint(timestamp=now - timedelta(minutes=m), value=float(m)) for m in (30, 15)]
    async with db_conn.transaction():
        await write_points(db_conn, [MetricPoints(metric_id, [old, *recent])])
    every = rollups.for_chart(None, None, "sum")
    assert every.name == "weekly"
    series = await rollups.read_series(db_conn, metric_id, range_start(None, now), every, "sum")
    assert series[0]["timestamp"] <= old.timestamp and series[0]["value"] == 1.0
    ten_years = await rollups.read_series(db_conn, metric_id, range_start(3660, now), every, "sum")
    assert sum(row["value"] for row in ten_years) == 45.0  # the 2010 point is out of range

    day = rollups.for_chart(1, None, "avg")
    assert day is rollups.RAW and rollups.for_chart(1, "hourly", "avg").name == "hourly"
    assert {rollups.for_chart(1, None, a).name for a in ("sum", "count")} == {"hourly"}
    points = await rollups.read_series(db_conn, metric_id, range_start(1, now), day, "avg")
    assert [(row["timestamp"], row["value"]) for row in points] == [
        (p.timestamp, p.value) for p in recent
    ]


async def _truth(
    conn: psycopg.AsyncConnection[Any], rollup: rollups.Rollup, metric_id: uuid.UUID
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Both rollup families recomputed from the points, as continuous aggregates would."""
    values = await conn.execute(
        "SELECT time_bucket(%s, ts) AS bucket, count(*) AS count, sum(value) AS sum,"
        " avg(value) AS avg, min(value) AS min, max(value) AS max, last(value, ts) AS last,"
        " max(ts) AS last_ts, last(dimensions, ts) AS last_dimensions"
        " FROM metric_data_points WHERE metric_id = %s GROUP BY 1 ORDER BY 1",
        (rollup.width, metric_id),
    )
    dimensions = await conn.execute(
        "SELECT time_bucket(%s, p.ts) AS bucket, d.key, count(*) AS count, sum(x.v) AS sum,"
        " avg(x.v) AS avg, min(x.v) AS min, max(x.v) AS max, last(x.v, p.ts) AS last,"
        " max(p.ts) AS last_ts FROM metric_data_points p "
        + rollups.NUMERIC_DIMENSIONS
        + " AND p.metric_id = %s GROUP BY 1, 2 ORDER BY 1, 2",
        (rollup.width, metric_id),
    )
    return list(await values.fetchall()), list(await dimensions.fetchall())


async def _assert_rollups_true(conn: psycopg.AsyncConnection[Any], metric_id: uuid.UUID) -> None:
    for rollup in rollups.ROLLUPS:
        stored = await _both_families(conn, rollup, metric_id)
        truth = await _truth(conn, rollup, metric_id)
        for left, right in zip(stored, truth, strict=True):
            _same(left, right)


async def test_rollups_equal_the_points_after_any_mix_of_writes(db_conn: Any) -> None:
    """Appends (added to their buckets), overlapping rewrites with new values, exact
    replays, an older backfill and a snapshot replace (recomputed), in one batch or mixed:
    after every write each rollup equals the aggregate of the stored points."""
    rng = random.Random(7)
    metrics = [uuid.uuid4() for _ in range(3)]

    def points(first: int, count: int, salt: int) -> list[DataPoint]:
        return [
            DataPoint(
                timestamp=START + timedelta(minutes=15 * i),
                value=float((i * 31 + salt) % 97),
                dimensions={"forks": (i + salt) % 5},
            )
            for i in range(first, first + count)
        ]

    steps: list[list[MetricPoints]] = [
        [MetricPoints(m, points(100, 40, 0)) for m in metrics],  # first write: all fresh
        [MetricPoints(m, points(140, 30, 0)) for m in metrics],  # appends into open buckets
        [MetricPoints(m, points(150, 30, 1)) for m in metrics],  # half rewrite, half append
        [MetricPoints(m, points(150, 30, 1)) for m in metrics],  # exact replay
        [MetricPoints(m, points(0, 60, 2)) for m in metrics],  # older backfill
        [MetricPoints(metrics[0], points(500, 3, 3), replace=True)],  # snapshot replace
    ]
    for _ in range(6):  # then random mixes, several batches of one metric in one write
        steps.append(
            [
                MetricPoints(
                    rng.choice(metrics),
                    points(rng.randrange(0, 700), rng.randrange(1, 50), rng.randrange(9)),
                )
                for _ in range(4)
            ]
        )
    for step in steps:
        async with db_conn.transaction():
            await write_points(db_conn, step)
        for metric_id in metrics:
            await _assert_rollups_true(db_conn, metric_id)
    cur = await db_conn.execute(
        "SELECT count(*) AS n FROM metric_data_points WHERE metric_id = %s", (metrics[0],)
    )
    assert (await cur.fetchone())["n"] >= 3


async def test_points_written_behind_the_writers_back_fall_back_to_the_upsert(
    db_conn: Any,
) -> None:
    """A point the rollups do not know of makes the plain insert conflict: the batch is
    upserted instead, the point takes the new value, and the rollups count it once."""
    metric_id = uuid.uuid4()
    ts = START + timedelta(hours=5)
    await db_conn.execute(
        "INSERT INTO metric_data_points (metric_id, ts, value) VALUES (%s, %s, 1)", (metric_id, ts)
    )
    batch = [
        DataPoint(timestamp=ts, value=2.0),
        DataPoint(timestamp=ts + timedelta(hours=1), value=3.0),
    ]
    async with db_conn.transaction():
        await write_points(db_conn, [MetricPoints(metric_id, batch)])
    cur = await db_conn.execute(
        "SELECT value FROM metric_data_points WHERE metric_id = %s ORDER BY ts", (metric_id,)
    )
    assert [r["value"] for r in await cur.fetchall()] == [2.0, 3.0]
    await _assert_rollups_true(db_conn, metric_id)


async def test_writers_of_one_metric_take_turns(db_conn: Any, database_url: str) -> None:
    """A writer recomputing a bucket waits for another writer that is adding a new point
    to the same bucket: recomputed from a snapshot without that point, the bucket would
    lose it when the adder commits."""
    metric_id = uuid.uuid4()
    hour = START + timedelta(hours=3)
    async with db_conn.transaction():
        await write_points(
            db_conn,
            [
                MetricPoints(
                    metric_id,
                    [
                        DataPoint(timestamp=hour, value=1.0),
                        DataPoint(timestamp=hour + timedelta(minutes=15), value=2.0),
                    ],
                )
            ],
        )
    adder = await psycopg.AsyncConnection.connect(database_url, row_factory=dict_row)
    try:
        async with adder.transaction():  # a fresh point, added to the hour's bucket
            await write_points(
                adder,
                [
                    MetricPoints(
                        metric_id, [DataPoint(timestamp=hour + timedelta(minutes=30), value=3.0)]
                    )
                ],
            )
            rewrite = asyncio.create_task(_rewrite(db_conn, metric_id, hour))  # a stale point
            await asyncio.sleep(0.5)
            assert not rewrite.done()
        await asyncio.wait_for(rewrite, timeout=30)
    finally:
        await adder.close()
    await _assert_rollups_true(db_conn, metric_id)
    hourly = await _rollup_rows(db_conn, "metric_data_points_hourly", metric_id)
    assert [(r["count"], r["sum"]) for r in hourly] == [(3, 15.0)]


async def _rewrite(conn: Any, metric_id: uuid.UUID, ts: datetime) -> None:
    async with conn.transaction():
        await write_points(conn, [MetricPoints(metric_id, [DataPoint(timestamp=ts, value=10.0)])])


async def test_dimension_rollups_migration_rolls_up_existing_points(run_id: str) -> None:
    """Migration 0005 on a database that already holds points (rolled back, then applied
    again): its dimension rollups equal the ones the writer kept."""
    metric_id = uuid.uuid4()
    name = f"metricloom_test_{run_id}_dims"
    with migrated_database(name) as url:
        async with await psycopg.AsyncConnection.connect(url, row_factory=dict_row) as conn:
            async with conn.transaction():
                await write_points(conn, [MetricPoints(metric_id, sample(metric_id))])
            kept = [await _rollup_rows(conn, r.dimensions, metric_id) for r in rollups.ROLLUPS]
        owner = admin_url(name).replace("postgresql://", "postgresql+psycopg://")
        backend = get_backend(owner)  # migrations run as the schema's owner
        try:
            migrations = read_migrations(str(ROOT / "schema" / "migrations"))
            with backend.lock():
                backend.rollback_migrations(
                    backend.to_rollback(
                        migrations.filter(lambda m: m.id == "0005_dimension_rollups")
                    )
                )
                assert [m.id for m in backend.to_apply(migrations)] == ["0005_dimension_rollups"]
                backend.apply_migrations(backend.to_apply(migrations))
        finally:
            backend.connection.close()
        grant_application_role(admin_url(name), url)  # as `metricloom migrate` does after
        async with await psycopg.AsyncConnection.connect(url, row_factory=dict_row) as conn:
            for rollup, before in zip(rollups.ROLLUPS, kept, strict=True):
                after = await _rollup_rows(conn, rollup.dimensions, metric_id)
                assert before
                _same(after, before)
