"""Management commands: pause, resume, delete and re-tier a metric, remove a chart, remove
a connection. Part of the command stage (``agents/commands.py`` dispatches here).

Each handler runs in the command's transaction, acts only on its organisation's rows (an
id of another organisation is "not found", like an id that never existed) and returns an
:class:`Outcome`: the ids its answer names and what follows on Kafka. Each is idempotent:
the command log answers a redelivered command as before, and the same change asked again
(pause a paused metric, delete a deleted one) is accepted and changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import structlog

from agents.backfill import backfill_ticks
from agents.exceptions import CommandRejectedError
from agents.pipeline import Send
from schema import catalog, lifecycle, rollups
from schema.db import Conn
from streams.messages import (
    DeleteMetric,
    ManagementCommand,
    PauseMetric,
    PollDue,
    RemoveChart,
    RemoveConnection,
    ResumeMetric,
    SetMetricFrequency,
    Tombstone,
)
from templates import get_template

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Outcome:
    """What a carried-out command answers with (``ids``: fields of its CommandResult) and
    the records that follow it."""

    ids: dict[str, Any] = field(default_factory=dict)
    follow: list[Send] = field(default_factory=list)


async def manage(conn: Conn, command: ManagementCommand) -> Outcome:
    """Carry out one management command; raise CommandRejectedError."""
    if isinstance(command, PauseMetric):
        return await _pause(conn, command)
    if isinstance(command, ResumeMetric):
        return await _resume(conn, command)
    if isinstance(command, DeleteMetric):
        return await _delete(conn, command)
    if isinstance(command, SetMetricFrequency):
        return await _set_frequency(conn, command)
    if isinstance(command, RemoveChart):
        return await _remove_chart(conn, command)
    return await _remove_connection(conn, command)


def chart_removed(dashboard_metric_id: UUID, organization_id: str) -> Send:
    """The tombstone of a removed chart on the organisation's compacted chart-configs."""
    return Send("chart-configs", str(dashboard_metric_id), Tombstone(), org=organization_id)


def _no_metric(org: str, metric_id: UUID) -> CommandRejectedError:
    return CommandRejectedError(f"organisation {org!r} has no metric {metric_id}")


async def _pause(conn: Conn, command: PauseMetric) -> Outcome:
    before = await lifecycle.set_status(conn, command.metric_id, command.organization_id, "paused")
    if before is None:
        raise _no_metric(command.organization_id, command.metric_id)
    if before not in ("active", "paused"):
        raise CommandRejectedError(
            f"metric {command.metric_id} is {before}: only an active metric can be paused"
        )
    return Outcome({"metric_id": command.metric_id})


async def _resume(conn: Conn, command: ResumeMetric) -> Outcome:
    """Active again and on its tier's grid from now; a manual metric waits for a refresh."""
    before = await lifecycle.set_status(conn, command.metric_id, command.organization_id, "active")
    if before is None:
        raise _no_metric(command.organization_id, command.metric_id)
    if before != "paused":  # an active metric keeps its schedule
        return Outcome({"metric_id": command.metric_id})
    await lifecycle.reschedule(
        conn, command.metric_id, command.organization_id, None, datetime.now(UTC)
    )
    return Outcome({"metric_id": command.metric_id}, await _missed(conn, command.metric_id))


async def _missed(conn: Conn, metric_id: UUID) -> list[Send]:
    """What a metric paused before its first poll or its backfill was fetched never had:
    those ticks again, with their first identity (due at the metric's creation), so one
    that did run is recognised by the fetch stage's poll ledger and not fetched twice.
    Nothing while its template has no working transformer: the codegen stage polls the
    metric once there is one."""
    metric = await catalog.get_metric(conn, metric_id)
    if metric is None:
        return []
    template = get_template(metric.template_id)
    transformer = await catalog.get_metric_transformer(conn, template.id)
    if transformer is None or transformer.status == "failed":
        return []
    created = metric.created_at or datetime.now(UTC)
    sends: list[Send] = []
    if metric.last_fetched_at is None:
        tick = PollDue(metric_id=metric.id, due_at=created, reason="created")
        sends.append(Send("poll-due", str(metric.id), tick))
    awaiting = {m.id for m in await catalog.metrics_awaiting_backfill(conn, template.id)}
    if metric.id in awaiting and not transformer.historical_pending:
        sends += backfill_ticks(template, [metric.id], created)
    return sends


async def _delete(conn: Conn, command: DeleteMetric) -> Outcome:
    mode = await rollups.detect_mode(conn)
    deleted = await lifecycle.delete_metric(conn, command.metric_id, command.organization_id, mode)
    if deleted is None:
        if await lifecycle.removed(conn, "metric", command.metric_id) == command.organization_id:
            return Outcome({"metric_id": command.metric_id})  # deleted before: nothing to do
        raise _no_metric(command.organization_id, command.metric_id)
    follow = [
        chart_removed(chart, command.organization_id) for chart in deleted.dashboard_metric_ids
    ]
    log.info(
        "metric.deleted",
        metric_id=str(deleted.metric_id),
        organization_id=command.organization_id,
        points=deleted.points,
        charts=[str(chart) for chart in deleted.dashboard_metric_ids],
    )
    return Outcome({"metric_id": command.metric_id}, follow)


async def _set_frequency(conn: Conn, command: SetMetricFrequency) -> Outcome:
    moved = await lifecycle.reschedule(
        conn, command.metric_id, command.organization_id, command.frequency, datetime.now(UTC)
    )
    if moved is False:
        raise _no_metric(command.organization_id, command.metric_id)
    return Outcome({"metric_id": command.metric_id})


async def _remove_chart(conn: Conn, command: RemoveChart) -> Outcome:
    metric_id = await lifecycle.remove_chart(
        conn, command.dashboard_metric_id, command.dashboard_id, command.organization_id
    )
    if metric_id is None:
        owner = await lifecycle.removed(conn, "dashboard_metric", command.dashboard_metric_id)
        if owner == command.organization_id:  # removed before
            return Outcome({"dashboard_metric_id": command.dashboard_metric_id})
        raise CommandRejectedError(
            f"organisation {command.organization_id!r} has no chart"
            f" {command.dashboard_metric_id} on dashboard {command.dashboard_id!r}"
        )
    return Outcome(
        {"metric_id": metric_id, "dashboard_metric_id": command.dashboard_metric_id},
        [chart_removed(command.dashboard_metric_id, command.organization_id)],
    )


async def _remove_connection(conn: Conn, command: RemoveConnection) -> Outcome:
    users = await lifecycle.connection_users(conn, command.connection_id, command.organization_id)
    if users:
        shown = ", ".join(str(u) for u in users[:5]) + (" ..." if len(users) > 5 else "")
        raise CommandRejectedError(
            f"connection {command.connection_id} is used by {len(users)} metric(s) ({shown}):"
            " delete them first (`metricloom metric delete`)"
        )
    if not await lifecycle.remove_connection(conn, command.connection_id, command.organization_id):
        raise CommandRejectedError(
            f"organisation {command.organization_id!r} has no connection {command.connection_id}"
        )
    return Outcome()
