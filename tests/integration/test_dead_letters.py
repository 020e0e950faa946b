"""``metricloom dead-letter list/show/replay`` against the session's worker: a poll that
failed (a 404) is listed, shown, replayed once its cause is fixed (its point is then
stored), and a second replay does nothing."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from schema.models import PollFrequency
from streams.settings import Settings
from tests.conftest import WorkerProcess, run_cli
from tests.integration.conftest import Kafka, stored_metric

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _cli(settings: Settings, *args: str) -> list[dict[str, Any]]:
    done = run_cli(settings, "dead-letter", *args, timeout=60)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


async def test_a_failed_poll_is_listed_shown_and_replayed_once_fixed(
    worker: WorkerProcess, kafka: Kafka, settings: Settings, db_conn: Any
) -> None:
    """The 404 goes to dead-letter; after the metric is pointed at a repository that exists,
    replay re-runs the poll and its point is written; replaying again is refused."""
    metric = await stored_metric(
        db_conn,
        "missing",
        org="dl-org",
        next_poll_at=datetime.now(UTC) - timedelta(seconds=1),
        frequency=PollFrequency.DAILY,
    )
    await kafka.wait_for("dead-letter", lambda v: v.get("metric_id") == str(metric.id), 60)
    listed = [
        d for d in _cli(settings, "list", "--stage", "fetch") if d["metric_id"] == str(metric.id)
    ]
    assert len(listed) == 1 and "HTTP 404" in listed[0]["error"] and listed[0]["replayable"]
    [shown] = _cli(settings, "show", listed[0]["id"][:8])
    assert shown["topic"] == "poll-due" and json.loads(shown["original"])["metric_id"] == str(
        metric.id
    )

    await db_conn.execute(
        "UPDATE metrics SET params = %s WHERE id = %s",
        (json.dumps({"OWNER": "octocat", "REPO": "fixed"}), metric.id),
    )
    [replayed] = _cli(settings, "replay", listed[0]["id"])
    assert replayed["outcome"] == "replayed"
    for _ in range(60):
        cur = await db_conn.execute(
            "SELECT count(*) AS n FROM metric_data_points WHERE metric_id = %s", (metric.id,)
        )
        if (await cur.fetchone())["n"] == 1:
            break
        await asyncio.sleep(0.5)
    else:
        raise AssertionError(f"the replayed poll stored nothing\n{worker.output()[-3000:]}")
    [again] = _cli(settings, "replay", listed[0]["id"])
    assert again["outcome"].startswith("already replayed")


def test_replay_without_a_selection_is_one_clear_line(settings: Settings) -> None:
    """No ids and no filter: refused in one line, exit 2, nothing replayed."""
    done = run_cli(settings, "dead-letter", "replay", timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "name dead letters" in done.stderr
