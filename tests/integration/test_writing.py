"""The writer's upsert on the real hypertable."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from agents.pipeline import Incoming
from agents.services import Services
from agents.writing import WriteStage
from schema.models import DataPoint
from schema.points import MetricPoints, write_points
from streams.messages import DeadLetter, MetricUpdated, PointsBatch
from tests.integration.conftest import stored_metric

pytestmark = pytest.mark.integration


def _points(start: datetime, n: int, value: float = 1.0) -> list[DataPoint]:
    return [
        DataPoint(timestamp=start + timedelta(minutes=15 * i), value=value + i) for i in range(n)
    ]


async def _rows(conn: Any, metric_id: uuid.UUID) -> list[dict[str, Any]]:
    cur = await conn.execute(
        "SELECT ts, value, dimensions, created_at FROM metric_data_points WHERE metric_id = %s ORDER BY ts",
        (metric_id,),
    )
    return list(await cur.fetchall())


async def test_redelivered_batch_changes_nothing(db_conn: Any) -> None:
    """Writing the same batch twice leaves the same rows, not rewritten."""
    metric_id = uuid.uuid4()
    batch = [MetricPoints(metric_id, _points(datetime(2025, 1, 1, tzinfo=UTC), 10))]
    async with db_conn.transaction():
        first = await write_points(db_conn, batch)
    before = await _rows(db_conn, metric_id)
    async with db_conn.transaction():
        await write_points(db_conn, batch)
    after = await _rows(db_conn, metric_id)
    assert first[0].points == 10
    assert after == before


async def test_same_timestamp_updates_the_point(db_conn: Any) -> None:
    """A later value for the same metric and timestamp replaces the earlier one; within
    one batch the last occurrence wins."""
    metric_id = uuid.uuid4()
    ts = datetime(2025, 2, 1, tzinfo=UTC)
    async with db_conn.transaction():
        await write_points(db_conn, [MetricPoints(metric_id, [DataPoint(timestamp=ts, value=1)])])
    async with db_conn.transaction():
        await write_points(
            db_conn,
            [
                MetricPoints(metric_id, [DataPoint(timestamp=ts, value=2)]),
                MetricPoints(metric_id, [DataPoint(timestamp=ts, value=3, dimensions={"k": "v"})]),
            ],
        )
    rows = await _rows(db_conn, metric_id)
    assert [(r["value"], r["dimensions"]) for r in rows] == [(3.0, {"k": "v"})]


async def test_snapshot_replaces_the_whole_series(db_conn: Any) -> None:
    """A replace batch (snapshot template) leaves exactly its own points."""
    metric_id = uuid.uuid4()
    start = datetime(2025, 3, 1, tzinfo=UTC)
    async with db_conn.transaction():
        await write_points(db_conn, [MetricPoints(metric_id, _points(start, 5))])
    async with db_conn.transaction():
        await write_points(
            db_conn,
            [MetricPoints(metric_id, _points(start + timedelta(days=1), 2, 9), replace=True)],
        )
    rows = await _rows(db_conn, metric_id)
    assert [r["value"] for r in rows] == [9.0, 10.0]


async def test_points_for_another_organisations_metric_are_refused(
    services: Services, db_conn: Any
) -> None:
    """A points record naming an organisation that does not own its metric, or a metric
    that does not exist, is dead-lettered alone and writes nothing; the honest record in
    the same batch is written."""
    owned = await stored_metric(db_conn, f"own-{uuid.uuid4().hex[:6]}", org="owner-org")
    start = datetime(2025, 3, 1, tzinfo=UTC)

    def record(metric_id: uuid.UUID, org: str, offset: int) -> tuple[Incoming, PointsBatch]:
        points = PointsBatch(
            metric_id=metric_id,
            organization_id=org,
            template_id="github-repo-stars",
            transformer_version=1,
            fetched_at=start,
            points=_points(start, 3),
        )
        return Incoming("points", 0, offset, None, points.to_bytes()), points

    ghost = uuid.uuid4()
    batch = [
        record(owned.id, "other-org", 1),  # forged: the metric is owner-org's
        record(ghost, "other-org", 2),  # no such metric
        record(owned.id, "owner-org", 3),  # honest
    ]
    sends = await WriteStage().handle(services, batch)
    dead = [s.record for s in sends if isinstance(s.record, DeadLetter)]
    assert sorted(d.offset or 0 for d in dead) == [1, 2]
    assert {d.error_type for d in dead} == {"ForeignPointsError"}
    assert any("belongs to 'owner-org'" in d.error for d in dead)
    assert any("no such metric" in d.error for d in dead)
    assert len(await _rows(db_conn, owned.id)) == 3  # the honest record only
    assert await _rows(db_conn, ghost) == []
    updated = [s.record for s in sends if isinstance(s.record, MetricUpdated)]
    assert [(u.metric_id, u.organization_id) for u in updated] == [(owned.id, "owner-org")]
