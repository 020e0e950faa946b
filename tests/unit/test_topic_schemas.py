"""The checked-in topic schemas are the models' own, and real records validate against
them (as a consumer in another language would check them)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import jsonschema
import pytest

from schema.models import ChartConfig, DataPoint
from streams.messages import (
    ChartConfigMessage,
    CommandResult,
    CreateMetric,
    PointsBatch,
    PollDue,
    Record,
)
from streams.schemas import SCHEMAS_DIR, stale, topic_schemas
from streams.topics import TOPICS

NOW = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)


def _check(topic: str, document: Any) -> None:
    schema = json.loads((SCHEMAS_DIR / f"{topic}.schema.json").read_text())
    jsonschema.Draft202012Validator(schema).validate(document)


def _wire(record: Record) -> Any:
    return json.loads(record.to_bytes())


def test_every_topic_has_a_current_schema() -> None:
    assert set(topic_schemas()) == set(TOPICS)
    assert stale() == [], "run `metricloom topics schemas`"


def test_records_the_worker_writes_validate() -> None:
    metric = uuid.uuid4()
    snapshot = DataPoint(timestamp=NOW, value=2, dimensions={"rows": [["a", 1], ["b", None]]})
    points = PointsBatch(
        metric_id=metric,
        organization_id="acme",
        template_id="sheets-snapshot",
        transformer_version=1,
        fetched_at=NOW,
        replace=True,
        points=[snapshot, DataPoint(timestamp=NOW, value=1.5, dimensions=None)],
    )
    _check("points", _wire(points))
    _check("poll-due", _wire(PollDue(metric_id=metric, due_at=NOW)))
    _check(
        "command-results",
        _wire(CommandResult(command_id=uuid.uuid4(), status="accepted", metric_id=metric)),
    )
    config = ChartConfig.model_validate(
        {
            "chartType": "bar",
            "title": "Stars",
            "xAxisKey": "date",
            "dataKeys": ["value"],
            "chartData": [{"date": "2026-11-28", "value": 3}],
            "chartConfig": {"value": {"label": "Stars", "color": "var(--chart-1)"}},
        }
    )
    message = ChartConfigMessage(
        dashboard_metric_id=uuid.uuid4(),
        organization_id="acme",
        dashboard_id="main",
        metric_id=metric,
        transformer_version=2,
        config=config,
    )
    _check("chart-configs", _wire(message))


def test_a_producer_command_validates_and_a_bad_one_does_not() -> None:
    create = CreateMetric(
        organization_id="acme", template_id="github-repo-stars", params={"OWNER": "a"}
    )
    _check("commands", _wire(create))
    _check(
        "commands",
        {"type": "refresh_metric", "organization_id": "acme", "metric_id": str(uuid.uuid4())},
    )  # defaults may be left out
    bad = {
        "type": "create_dashboard_metric",
        "organization_id": "acme",
        "dashboard_id": "d",
        "metric_id": str(uuid.uuid4()),
        "chart_type": "donut",
    }
    with pytest.raises(jsonschema.ValidationError):
        _check("commands", bad)
