"""A metric through every stage on real Kafka, TimescaleDB and Docker, driven by commands
produced to the commands topic, observed by independent Kafka consumers."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from schema.models import ChartConfig
from streams.messages import CreateDashboardMetric, CreateMetric
from streams.settings import Settings
from tests.conftest import WorkerProcess
from tests.integration.conftest import Kafka

pytestmark = [pytest.mark.integration, pytest.mark.slow]


async def test_command_to_chart_config_end_to_end(
    worker: WorkerProcess, kafka: Kafka, db_conn: Any, demo_api_url: str, settings: Settings
) -> None:
    """create_metric → points in the hypertable → create_dashboard_metric → a ChartConfig
    on chart-configs keyed by the dashboard metric id, within a bounded time; the chart's
    transformer in the deployment's language (TypeScript by default: the chart stage ran
    its compiled JavaScript)."""
    org = "e2e-org"
    create = CreateMetric(
        organization_id=org,
        template_id="github-repo-stars",
        params={"OWNER": "octocat", "REPO": "hello-world"},
    )
    before = datetime.now(UTC)
    await kafka.command(create)
    _, result = await kafka.wait_for(
        "command-results", lambda v: v["command_id"] == str(create.command_id), 60, org
    )
    assert result["status"] == "accepted", result
    metric_id = result["metric_id"]
    assert metric_id == str(create.resolved_metric_id())

    points: list[dict[str, Any]] = []
    for _ in range(120):
        cur = await db_conn.execute(
            "SELECT ts, value, dimensions FROM metric_data_points WHERE metric_id = %s",
            (metric_id,),
        )
        points = await cur.fetchall()
        if points:
            break
        await asyncio.sleep(0.5)
    assert len(points) == 1, f"expected one point, got {points}\n{worker.output()[-3000:]}"
    after = datetime.now(UTC)
    point = points[0]
    assert before <= point["ts"] <= after
    # The demo API's value for this repository at about that time (it grows slowly).
    repo = httpx.get(f"{demo_api_url}/github/repos/octocat/hello-world").json()
    assert abs(point["value"] - repo["stargazers_count"]) <= 5
    assert set(point["dimensions"]) == {"forks", "open_issues", "watchers"}

    place = CreateDashboardMetric(
        organization_id=org, dashboard_id="main", metric_id=metric_id, chart_type="bar"
    )
    await kafka.command(place)
    _, placed = await kafka.wait_for(
        "command-results", lambda v: v["command_id"] == str(place.command_id), 60, org
    )
    assert placed["status"] == "accepted", placed
    dm_id = placed["dashboard_metric_id"]

    key, message = await kafka.wait_for(
        "chart-configs", lambda v: v["dashboard_metric_id"] == dm_id, 90, org
    )
    assert key == dm_id.encode()
    assert message["organization_id"] == org
    config = ChartConfig.model_validate(message["config"])
    assert config.chart_type == "bar"
    assert config.data_keys == ["value"]
    assert config.chart_data[-1]["value"] == point["value"]
    cur = await db_conn.execute(
        "SELECT language, code, compiled_code FROM chart_transformers"
        " WHERE dashboard_metric_id = %s",
        (dm_id,),
    )
    chart = await cur.fetchone()
    assert chart["language"] == settings.transformer_language
    if chart["language"] == "typescript":
        assert "preferences: ChartPreferences): ChartConfig" in chart["code"]
        assert "function transform(" in chart["compiled_code"]


async def test_chart_configs_topic_is_compacted(kafka: Kafka) -> None:
    """Subscribers can rebuild every current chart from an organisation's chart-configs:
    it is compacted."""
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    from streams.admin import admin_client
    from streams.topics import topic_name

    admin = admin_client(kafka.settings)
    await admin.start()
    try:
        name = topic_name(kafka.settings, "chart-configs", "e2e-org")
        described = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, name)])
    finally:
        await admin.close()
    entries = {entry[0]: entry[1] for entry in described[0].resources[0][4]}
    assert entries["cleanup.policy"] == "compact"
