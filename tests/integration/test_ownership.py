"""One organisation cannot steer another's rows by naming their ids in its commands."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from streams.messages import ChangeChart, CommandBase, CreateDashboardMetric, CreateMetric
from tests.conftest import WorkerProcess
from tests.integration.conftest import Kafka

pytestmark = [pytest.mark.integration, pytest.mark.slow]


async def _answer(kafka: Kafka, command: CommandBase) -> dict[str, Any]:
    await kafka.command(command)
    _, result = await kafka.wait_for(
        "command-results",
        lambda v: v.get("command_id") == str(command.command_id),
        60,
        command.organization_id,
    )
    return result


async def _chart_row(db_conn: Any, dashboard_metric_id: uuid.UUID) -> dict[str, Any]:
    cur = await db_conn.execute(
        "SELECT d.organization_id, d.metric_id, d.title, c.version, c.user_prompt"
        " FROM dashboard_metrics d LEFT JOIN chart_transformers c"
        " ON c.dashboard_metric_id = d.id WHERE d.id = %s",
        (dashboard_metric_id,),
    )
    row: dict[str, Any] = await cur.fetchone()
    return row


async def test_another_organisations_dashboard_metric_id_is_refused(
    worker: WorkerProcess, kafka: Kafka, db_conn: Any
) -> None:
    """A chart id another organisation owns, named in a create or a change, is rejected;
    the owner's chart keeps its metric, title and transformer version."""
    mine = await _answer(
        kafka,
        CreateMetric(
            organization_id="owner-org",
            template_id="github-repo-stars",
            params={"OWNER": "octocat", "REPO": "owned-chart"},
        ),
    )
    chart_id = uuid.uuid4()
    placed = await _answer(
        kafka,
        CreateDashboardMetric(
            organization_id="owner-org",
            dashboard_id="main",
            metric_id=mine["metric_id"],
            title="owner's chart",
            dashboard_metric_id=chart_id,
        ),
    )
    assert placed["status"] == "accepted"
    await kafka.wait_for(  # the owner's chart is drawn: its transformer exists
        "chart-configs", lambda v: v["dashboard_metric_id"] == str(chart_id), 90, "owner-org"
    )
    theirs = await _answer(
        kafka,
        CreateMetric(
            organization_id="other-org",
            template_id="github-repo-stars",
            params={"OWNER": "octocat", "REPO": "intruder"},
        ),
    )
    before = await _chart_row(db_conn, chart_id)

    taken = await _answer(
        kafka,
        CreateDashboardMetric(
            organization_id="other-org",
            dashboard_id="main",
            metric_id=theirs["metric_id"],
            title="taken over",
            dashboard_metric_id=chart_id,
        ),
    )
    assert (
        taken["status"] == "rejected"
        and f"dashboard metric id {chart_id} is taken" in (taken["error"])
    )
    changed = await _answer(
        kafka,
        ChangeChart(
            organization_id="other-org", dashboard_metric_id=chart_id, request="make it a pie"
        ),
    )
    assert changed["status"] == "rejected" and str(chart_id) in changed["error"]

    after = await _chart_row(db_conn, chart_id)
    assert after == before
    assert after["organization_id"] == "owner-org" and str(after["metric_id"]) == mine["metric_id"]
    assert after["title"] == "owner's chart" and after["user_prompt"] is None
    assert after["version"] == 1
