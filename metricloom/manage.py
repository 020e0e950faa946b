"""Management verbs: pause, resume, delete and re-tier a metric, take a chart off its
dashboard, remove a connection. Each is a command on the organisation's commands topic,
answered by the worker like any other producer's (``agents/management.py``)."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

import typer

from metricloom.apps import connection_app, dashboard_app, metric_app
from metricloom.console import Json, Org, run_command
from schema.models import PollFrequency
from streams.messages import (
    CommandBase,
    DeleteMetric,
    PauseMetric,
    RemoveChart,
    RemoveConnection,
    ResumeMetric,
    SetMetricFrequency,
)
from streams.settings import get_settings

Timeout = Annotated[float, typer.Option(min=0.1, help="Seconds to wait for the worker's answer.")]
MetricId = Annotated[UUID, typer.Argument(help="The metric's id.")]


def _send(command: CommandBase, timeout: float, as_json: bool) -> None:
    run_command(get_settings(), command, timeout, as_json)


@metric_app.command("pause")
def metric_pause(
    metric_id: MetricId, org: Org, timeout: Timeout = 60.0, json: Json = False
) -> None:
    """Stop polling a metric (no provider quota spent) until `metric resume`; its points
    and charts stay."""
    _send(PauseMetric(organization_id=org, metric_id=metric_id), timeout, json)


@metric_app.command("resume")
def metric_resume(
    metric_id: MetricId, org: Org, timeout: Timeout = 60.0, json: Json = False
) -> None:
    """Poll a paused metric again, on its tier's schedule from now."""
    _send(ResumeMetric(organization_id=org, metric_id=metric_id), timeout, json)


@metric_app.command("delete")
def metric_delete(
    metric_id: MetricId, org: Org, timeout: Timeout = 60.0, json: Json = False
) -> None:
    """Delete a metric with its points, rollups, charts and schedule (not undoable)."""
    _send(DeleteMetric(organization_id=org, metric_id=metric_id), timeout, json)


@metric_app.command("set-frequency")
def metric_set_frequency(
    metric_id: MetricId,
    org: Org,
    frequency: Annotated[
        PollFrequency, typer.Option(help="The polling tier.", case_sensitive=False)
    ],
    timeout: Timeout = 60.0,
    json: Json = False,
) -> None:
    """Poll a metric on another tier; its next poll moves to the new tier's schedule."""
    command = SetMetricFrequency(organization_id=org, metric_id=metric_id, frequency=frequency)
    _send(command, timeout, json)


@dashboard_app.command("remove-chart")
def dashboard_remove_chart(
    dashboard_metric_id: Annotated[UUID, typer.Argument(help="The chart's dashboard metric id.")],
    org: Org,
    dashboard: Annotated[str, typer.Option(help="The dashboard it is on.")],
    timeout: Timeout = 60.0,
    json: Json = False,
) -> None:
    """Take a chart off a dashboard, with its chart transformer; the metric stays."""
    command = RemoveChart(
        organization_id=org, dashboard_id=dashboard, dashboard_metric_id=dashboard_metric_id
    )
    _send(command, timeout, json)


@connection_app.command("remove")
def connection_remove(
    connection_id: Annotated[UUID, typer.Argument(help="The connection's id.")],
    org: Org,
    timeout: Timeout = 60.0,
    json: Json = False,
) -> None:
    """Forget a connection and its token; refused while a metric uses it."""
    _send(RemoveConnection(organization_id=org, connection_id=connection_id), timeout, json)
