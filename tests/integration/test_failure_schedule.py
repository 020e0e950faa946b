"""The design's failure schedule at its real gaps (0, 1 h, 6 h), on the real database, with
a clock the test owns: the scheduler's claims (``due_ticks``) and the transform stage's
outcome (``record_outcome``) both take ``now``, so seven hours pass in a test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from agents.scheduling import due_ticks
from agents.transforming import record_outcome
from schema import catalog
from schema.models import MetricTransformer, PollFrequency
from streams.messages import CodegenRequest, PollDue, RawPayload
from streams.settings import HealingSettings
from tests.conftest import migrated_database
from tests.integration.conftest import stored_metric

pytestmark = pytest.mark.integration

GAPS = HealingSettings().retry_gaps_s  # what a deployment runs with
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def quiet_db(run_id: str) -> Iterator[str]:
    """A database no worker claims from: this test's clock is the only one."""
    with migrated_database(f"metricloom_test_{run_id}_{uuid.uuid4().hex[:6]}") as url:
        yield url


def _ticks(sends: list[Any], metric_id: uuid.UUID) -> list[PollDue]:
    return [
        s.record for s in sends if isinstance(s.record, PollDue) and s.record.metric_id == metric_id
    ]


async def _fail(
    conn: Any,
    metric_id: uuid.UUID,
    org: str,
    tick: PollDue,
    now: datetime,
    transformer: MetricTransformer | None = None,
) -> list[Any]:
    """The transform stage's outcome for one failed payload of ``tick``'s poll, run by
    ``transformer`` (the current one unless given)."""
    transformer = transformer or await catalog.get_metric_transformer(conn, "github-repo-stars")
    assert transformer is not None
    raw = RawPayload(
        poll_id=tick.poll_id,
        metric_id=metric_id,
        organization_id=org,
        template_id="github-repo-stars",
        fetched_at=now,
        endpoint="/repos/o/r",
        payload={"stargazers_count": "many"},
    )
    async with conn.transaction():
        return await record_outcome(conn, transformer, [], [(raw, "no number")], GAPS, now)


async def _state(conn: Any, metric_id: uuid.UUID) -> dict[str, Any]:
    cur = await conn.execute(
        "SELECT failure_count, failure_state, next_retry_at FROM metrics WHERE id = %s",
        (metric_id,),
    )
    row = await cur.fetchone()
    assert row is not None
    return dict(row)


async def _claim(conn: Any, now: datetime, metric_id: uuid.UUID) -> list[PollDue]:
    async with conn.transaction():
        return _ticks(await due_ticks(conn, now, 1000), metric_id)


async def test_retries_at_0_1h_6h_then_the_transformer_regenerates(quiet_db: str) -> None:
    """First failure: retry at once; then 1 h; then 6 h; the third failed retry makes the
    transformer's failure_count pass the gaps and asks for regeneration, once. Scheduled
    polls are held all the while; a redelivered failure counts once; a second metric
    failing in the same round is the same attempt; a fetch failure counts nothing."""
    assert GAPS == (0.0, 3600.0, 21600.0)
    org = f"org-{uuid.uuid4().hex[:6]}"
    async with await psycopg.AsyncConnection.connect(
        quiet_db, autocommit=True, row_factory=dict_row
    ) as conn:
        metric = await stored_metric(
            conn, "a", org=org, frequency=PollFrequency.HOURLY, next_poll_at=T0
        )
        other = await stored_metric(
            conn, "b", org=org, frequency=PollFrequency.DAILY, next_poll_at=T0 + timedelta(days=30)
        )

        [scheduled] = await _claim(conn, T0, metric.id)
        assert scheduled.reason == "schedule"
        now = T0 + timedelta(seconds=2)
        assert await _fail(conn, metric.id, org, scheduled, now) == []
        assert await _fail(conn, metric.id, org, scheduled, now) == []  # redelivered: once
        other_tick = PollDue(metric_id=other.id, due_at=T0, reason="refresh")
        assert await _fail(conn, other.id, org, other_tick, now) == []  # same round
        await catalog.record_metric_error(conn, metric.id, "fetch", "503")  # counts nothing
        transformer = await catalog.get_metric_transformer(conn, "github-repo-stars")
        assert transformer is not None and transformer.failure_count == 1

        regenerated: list[Any] = []
        for attempt, gap in enumerate(GAPS, start=2):
            retry_at = now + timedelta(seconds=gap)
            if gap:
                assert await _claim(conn, retry_at - timedelta(seconds=1), metric.id) == []
            [retry] = await _claim(conn, retry_at, metric.id)
            assert (retry.reason, retry.due_at) == ("retry", retry_at)
            assert await _claim(conn, retry_at, metric.id) == []  # claimed once
            now = retry_at + timedelta(seconds=3)
            sends = await _fail(conn, metric.id, org, retry, now)
            stored = await _state(conn, metric.id)
            transformer = await catalog.get_metric_transformer(conn, "github-repo-stars")
            assert transformer is not None
            assert (stored["failure_count"], transformer.failure_count) == (attempt, attempt)
            if attempt <= len(GAPS):
                assert sends == [] and transformer.status == "active"
            else:
                regenerated = sends
                assert transformer.status == "regenerating"
                assert stored["next_retry_at"] is None  # waits for the new version
        [request] = [s.record for s in regenerated]
        assert isinstance(request, CodegenRequest)
        assert (request.reason, request.metric_id) == ("heal", metric.id)
        assert now - T0 > timedelta(hours=7)  # 0 + 1 h + 6 h, not the hourly polls' pace

        # held until the new version: no scheduled poll a day later, no retry
        assert await _claim(conn, now + timedelta(days=1), metric.id) == []

        # the new version starts the schedule over, and the metric is polled on its grid
        await catalog.promote_metric_transformer(conn, transformer)
        stored = await _state(conn, metric.id)
        assert (stored["failure_state"], stored["failure_count"]) == ("ok", 0)
        [resumed] = await _claim(conn, now + timedelta(days=2), metric.id)
        assert resumed.reason == "schedule"

        # the replaced version's late failure (it ran while the new one was promoted)
        # counts nothing against the new version
        later = now + timedelta(days=2, seconds=5)
        late_tick = PollDue(metric_id=other.id, due_at=later, reason="refresh")
        assert await _fail(conn, other.id, org, late_tick, later, transformer) == []
        assert (await _state(conn, other.id))["failure_count"] > 0  # the metric's counted
        current = await catalog.get_metric_transformer(conn, "github-repo-stars")
        assert current is not None and current.version == transformer.version + 1
        assert (current.failure_count, current.status) == (0, "active")
