"""The scheduler's claim on the real database, and scheduled polls through the worker."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from agents.generators.offline import metric_code_for
from schema import catalog
from schema.models import MetricTransformer, PollFrequency
from templates import get_template
from tests.conftest import WorkerProcess, migrated_database
from tests.integration.conftest import Kafka, stored_metric

pytestmark = pytest.mark.integration


async def _insert(
    conn: Any, org: str, due: datetime, frequency: PollFrequency, repo: str = "r"
) -> uuid.UUID:
    metric = await stored_metric(
        conn, repo, org=org, owner="sched", frequency=frequency, next_poll_at=due
    )
    return metric.id


@pytest.fixture
def quiet_db(run_id: str) -> Iterator[str]:
    """A database of its own, migrated, that no running worker polls: the claim tests
    must be the only claimers of their metrics."""
    with migrated_database(f"metricloom_test_{run_id}_{uuid.uuid4().hex[:6]}") as url:
        yield url


async def test_concurrent_claims_never_take_a_metric_twice(quiet_db: str) -> None:
    """Two workers claiming at once split the due metrics between them (SKIP LOCKED)."""
    org = f"org-{uuid.uuid4().hex[:6]}"
    now = datetime.now(UTC)
    async with await psycopg.AsyncConnection.connect(
        quiet_db, autocommit=True, row_factory=dict_row
    ) as setup:
        ids = {
            await _insert(setup, org, now - timedelta(minutes=1), PollFrequency.HOURLY)
            for _ in range(40)
        }

    async def claim() -> list[uuid.UUID]:
        async with await psycopg.AsyncConnection.connect(quiet_db, row_factory=dict_row) as conn:
            async with conn.transaction():
                claimed = await catalog.claim_due_metrics(conn, now, 25)
                await asyncio.sleep(0.3)  # hold the locks while the other claims
            return [metric_id for metric_id, _ in claimed if metric_id in ids]

    first, second = await asyncio.gather(claim(), claim())
    assert set(first).isdisjoint(second)
    assert set(first) | set(second) == ids


async def test_next_poll_is_computed_from_the_due_time(quiet_db: str) -> None:
    """A claim late by 2.5 periods moves next_poll_at to the next point of the grid."""
    org = f"org-{uuid.uuid4().hex[:6]}"
    now = datetime.now(UTC).replace(microsecond=0)
    due = now - timedelta(minutes=37, seconds=30)  # 2.5 frequent periods ago
    async with await psycopg.AsyncConnection.connect(
        quiet_db, autocommit=True, row_factory=dict_row
    ) as conn:
        metric_id = await _insert(conn, org, due, PollFrequency.FREQUENT)
        async with conn.transaction():
            claimed = dict(await catalog.claim_due_metrics(conn, now, 1000))
        assert claimed[metric_id] == due
        metric = await catalog.get_metric(conn, metric_id)
    assert metric is not None
    assert metric.next_poll_at == due + timedelta(minutes=45)


async def test_a_retrying_metric_keeps_its_grid_but_is_not_polled_on_schedule(
    quiet_db: str,
) -> None:
    """While a metric's transform is retried (0, 1 h, 6 h), its retries are its polls: the
    scheduled tick is not sent (it would count as another failure and spend quota), but
    its next poll still moves along the grid, so it is not polled late once it recovers."""
    org = f"org-{uuid.uuid4().hex[:6]}"
    now = datetime.now(UTC).replace(microsecond=0)
    due = now - timedelta(minutes=5)
    async with await psycopg.AsyncConnection.connect(
        quiet_db, autocommit=True, row_factory=dict_row
    ) as conn:
        retrying = await _insert(conn, org, due, PollFrequency.FREQUENT, repo="retrying")
        healthy = await _insert(conn, org, due, PollFrequency.FREQUENT, repo="healthy")
        await conn.execute(
            "UPDATE metrics SET failure_state = 'retrying', failure_count = 1,"
            " next_retry_at = %s WHERE id = %s",
            (now + timedelta(hours=1), retrying),
        )
        async with conn.transaction():
            claimed = dict(await catalog.claim_due_metrics(conn, now, 1000))
        assert claimed == {healthy: due}
        for metric_id in (retrying, healthy):
            metric = await catalog.get_metric(conn, metric_id)
            assert metric is not None and metric.next_poll_at == due + timedelta(minutes=15)


async def test_due_metric_is_polled_by_the_running_worker(
    worker: WorkerProcess, kafka: Kafka, database_url: str
) -> None:
    """A metric that falls due gets a scheduled tick and its point is written."""
    org = f"org-{uuid.uuid4().hex[:6]}"
    async with await psycopg.AsyncConnection.connect(
        database_url, autocommit=True, row_factory=dict_row
    ) as conn:
        template = get_template("github-repo-stars")
        await catalog.insert_metric_transformer(  # the template's code, if no test made it yet
            conn,
            MetricTransformer(
                template_id=template.id,
                polling_endpoint=template.polling,
                code=metric_code_for(template),
                generator="offline-v1",
            ),
        )
        metric_id = await _insert(
            conn, org, datetime.now(UTC) - timedelta(seconds=1), PollFrequency.DAILY
        )
        _, tick = await kafka.wait_for(
            "poll-due", lambda v: v["metric_id"] == str(metric_id), timeout=30
        )
        assert tick["reason"] == "schedule"
        for _ in range(60):
            cur = await conn.execute(
                "SELECT count(*) AS n FROM metric_data_points WHERE metric_id = %s", (metric_id,)
            )
            row = await cur.fetchone()
            if row and row["n"] == 1:
                break
            await asyncio.sleep(0.5)
        else:
            raise AssertionError(
                f"no point written for the scheduled poll\n{worker.output()[-3000:]}"
            )
        metric = await catalog.get_metric(conn, metric_id)
    assert metric is not None and metric.last_fetched_at is not None
    assert metric.next_poll_at is not None and metric.next_poll_at > datetime.now(UTC)


async def test_provider_error_is_recorded_on_the_metric(
    worker: WorkerProcess, kafka: Kafka, database_url: str
) -> None:
    """A 404 from the provider becomes the metric's last error and a dead letter; it does
    not count towards regenerating the transformer (the code did nothing wrong)."""
    org = f"org-{uuid.uuid4().hex[:6]}"
    async with await psycopg.AsyncConnection.connect(
        database_url, autocommit=True, row_factory=dict_row
    ) as conn:
        metric_id = await _insert(
            conn, org, datetime.now(UTC) - timedelta(seconds=1), PollFrequency.DAILY, repo="missing"
        )
        _, dead = await kafka.wait_for(
            "dead-letter", lambda v: v.get("metric_id") == str(metric_id), timeout=30
        )
        assert dead["stage"] == "fetch"
        assert "HTTP 404" in dead["error"]
        metric = await catalog.get_metric(conn, metric_id)
    assert metric is not None and metric.last_error is not None
    assert metric.last_error.startswith("fetch: GET ") and "HTTP 404" in metric.last_error
    assert metric.failure_count == 0  # only transform failures count towards regeneration
