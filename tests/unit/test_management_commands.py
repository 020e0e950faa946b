"""The management commands' records: what the dashboard and other producers send."""

from __future__ import annotations

import uuid

import pytest
from pydantic import ValidationError

from agents.commands import describe_validation_error
from streams.messages import (
    COMMAND_ADAPTER,
    DeleteMetric,
    PauseMetric,
    RemoveChart,
    RemoveConnection,
    ResumeMetric,
    SetMetricFrequency,
)

ID = str(uuid.uuid4())


@pytest.mark.parametrize(
    ("doc", "model"),
    [
        ({"type": "pause_metric", "metric_id": ID}, PauseMetric),
        ({"type": "resume_metric", "metric_id": ID}, ResumeMetric),
        ({"type": "delete_metric", "metric_id": ID}, DeleteMetric),
        (
            {"type": "set_metric_frequency", "metric_id": ID, "frequency": "hourly"},
            SetMetricFrequency,
        ),
        ({"type": "remove_chart", "dashboard_id": "main", "dashboard_metric_id": ID}, RemoveChart),
        ({"type": "remove_connection", "connection_id": ID}, RemoveConnection),
    ],
)
def test_each_management_command_decodes_by_its_type(doc: dict[str, str], model: type) -> None:
    """The commands topic's union knows each type and builds its model."""
    command = COMMAND_ADAPTER.validate_python({**doc, "organization_id": "acme"})
    assert isinstance(command, model)


def test_an_unknown_frequency_is_rejected_naming_the_tiers() -> None:
    """A bad tier is a malformed command whose answer lists the allowed ones."""
    with pytest.raises(ValidationError) as caught:
        COMMAND_ADAPTER.validate_python(
            {
                "type": "set_metric_frequency",
                "organization_id": "acme",
                "metric_id": ID,
                "frequency": "often",
            }
        )
    said = describe_validation_error(caught.value)
    assert "'frequent', 'hourly', 'daily', 'weekly' or 'manual'" in said


def test_remove_chart_names_its_dashboard() -> None:
    """A chart is removed from a named dashboard: an empty dashboard id is malformed."""
    with pytest.raises(ValidationError):
        RemoveChart(organization_id="acme", dashboard_id="", dashboard_metric_id=uuid.uuid4())
