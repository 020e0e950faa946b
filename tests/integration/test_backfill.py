"""Backfill when a metric is created, end to end through Kafka: the history arrives,
is transformed by the right transformer, lands in the hypertable and the rollups, and its
progress is published."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from streams.messages import CreateMetric
from tests.conftest import WorkerProcess
from tests.integration.conftest import Kafka

pytestmark = [pytest.mark.integration, pytest.mark.slow]


async def test_new_metric_is_backfilled_from_its_historical_endpoint(
    worker: WorkerProcess, kafka: Kafka, db_conn: Any
) -> None:
    """Commit activity: the first poll gives one point, the backfill a year of weekly
    totals through the separate historical transformer; progress says fetched, then
    written with the count; the weekly rollup holds the past year."""
    create = CreateMetric(
        organization_id="backfill-org",
        template_id="github-commit-activity",
        params={"OWNER": "octocat", "REPO": "history"},
    )
    await kafka.command(create)
    metric_id = str(create.resolved_metric_id())
    _, fetched = await kafka.wait_for(
        "backfill-progress",
        lambda v: v["metric_id"] == metric_id and v["state"] == "fetched",
        90,
        "backfill-org",
    )
    _, written = await kafka.wait_for(
        "backfill-progress",
        lambda v: v["metric_id"] == metric_id and v["state"] == "written",
        90,
        "backfill-org",
    )
    assert fetched["organization_id"] == "backfill-org"
    assert written["points"] == 52
    cur = await db_conn.execute(
        "SELECT historical_code IS NOT NULL AS separate FROM metric_transformers"
        " WHERE template_id = 'github-commit-activity'"
    )
    assert (await cur.fetchone())["separate"] is True
    for _ in range(60):
        cur = await db_conn.execute(
            "SELECT count(*) AS n FROM metric_data_points WHERE metric_id = %s", (metric_id,)
        )
        if (await cur.fetchone())["n"] == 53:
            break
        await asyncio.sleep(0.5)
    else:
        raise AssertionError(f"expected 1 polled + 52 backfilled points\n{worker.output()[-3000:]}")
    cur = await db_conn.execute(
        "SELECT count(*) AS n FROM metric_data_points_weekly WHERE metric_id = %s", (metric_id,)
    )
    assert (await cur.fetchone())["n"] >= 52
    cur = await db_conn.execute("SELECT backfill FROM metrics WHERE id = %s", (metric_id,))
    assert (await cur.fetchone())["backfill"]["state"] == "written"


async def test_history_is_fetched_in_chunks(
    worker: WorkerProcess, kafka: Kafka, db_conn: Any
) -> None:
    """PostHog events: 90 days backfilled in three 30-day windows, each its own message
    and progress event; the polled days and the backfilled ones are one series."""
    create = CreateMetric(
        organization_id="backfill-org", template_id="posthog-events", params={"PROJECT_ID": "77"}
    )
    await kafka.command(create)
    metric_id = str(create.resolved_metric_id())
    chunks = set()
    for chunk in (1, 2, 3):

        def chunk_written(v: dict[str, Any], c: int = chunk) -> bool:
            return bool(v["metric_id"] == metric_id and v["state"] == "written" and v["chunk"] == c)

        _, written = await kafka.wait_for("backfill-progress", chunk_written, 90, "backfill-org")
        assert written["chunks"] == 3 and written["points"] == 30
        chunks.add(written["first_ts"][:10])
    assert len(chunks) == 3
    for _ in range(60):
        cur = await db_conn.execute(
            "SELECT count(*) AS n FROM metric_data_points WHERE metric_id = %s", (metric_id,)
        )
        if (await cur.fetchone())["n"] == 90:
            break
        await asyncio.sleep(0.5)
    else:
        raise AssertionError(f"expected 90 daily points\n{worker.output()[-3000:]}")
