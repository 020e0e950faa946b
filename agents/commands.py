"""Command stage: other services drive metricloom by producing to the commands topic.

Each command gets exactly one answer on ``command-results`` (accepted or rejected, with a
reason a person can act on); a bad command is also dead-lettered, and stops nothing.
Commands are idempotent: ids derive from the command id, so a re-delivered command
changes nothing and answers the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal
from uuid import UUID, uuid5

import orjson
from pydantic import TypeAdapter, ValidationError

from agents.backfill import backfill_ticks
from agents.chart_requests import ChartRequestError, read_change, settings_of, understood_words
from agents.charting import redraw
from agents.exceptions import CommandRejectedError
from agents.fetch_client import unsafe_params
from agents.management import manage
from agents.pipeline import Incoming, MalformedRecordError, Send, Stage, dead_letter
from agents.services import Services
from agents.validation import is_number
from schema import catalog, jobs, ledger, lifecycle, rollups
from schema.db import Conn, savepoint
from schema.exceptions import InvalidDataError
from schema.models import ChartSettings, DashboardMetric, Metric, MetricTemplate
from streams.messages import (
    COMMAND_ADAPTER,
    COMMAND_NAMESPACE,
    OPERATOR,
    OPERATOR_ADAPTER,
    RECORD_TYPES,
    AnyCommand,
    ChangeChart,
    CodegenRequest,
    Command,
    CommandResult,
    CreateDashboardMetric,
    CreateMetric,
    DeleteMetric,
    GenerateTransformer,
    PauseMetric,
    PollDue,
    RefreshMetric,
    RegenerateTransformer,
    RemoveChart,
    RemoveConnection,
    ResumeMetric,
    RollbackTemplateTransformer,
    RollbackTransformer,
    SetMetricFrequency,
    TenantCommand,
    Tombstone,
)
from templates import TemplateError, get_template


class CommandStage(Stage[AnyCommand]):
    name = "commands"

    adapter: TypeAdapter[Any] = COMMAND_ADAPTER

    def received(self, message: Incoming) -> Received:
        """The tenant record behind a ``command-inbox`` message: its organisation (the
        topic it was produced to), its bytes and its coordinates."""
        envelope = TenantCommand.model_validate_json(message.body())
        return Received(
            envelope.organization_id,
            envelope.body(),
            envelope.topic,
            envelope.partition,
            envelope.offset,
        )

    def decode(self, message: Incoming) -> AnyCommand:
        received = self.received(message)
        if not received.body:
            raise MalformedRecordError("the record has no value (null or empty)")
        try:
            doc = orjson.loads(received.body)
        except orjson.JSONDecodeError as exc:
            raise MalformedRecordError(f"Invalid JSON: {exc}") from exc
        if isinstance(doc, dict):
            named = doc.get("organization_id")
            if named is None:
                doc["organization_id"] = received.organization_id
            elif named != received.organization_id:
                raise MalformedRecordError(
                    f"the command names organisation {named!r} but was produced to"
                    f" {received.organization_id!r}'s topic {received.topic}"
                )
            if doc.get("command_id") is None:
                # No id given: the record's own coordinates name it, so the same record
                # delivered twice is the same command (a record sent again is a new one).
                doc["command_id"] = str(received.natural_id())
        command: AnyCommand = self.adapter.validate_python(doc)
        return command

    async def execute(self, services: Services, conn: Conn, command: Any) -> list[Send]:
        """Carry out one command in the caller's transaction; raise CommandRejectedError."""
        return await execute(conn, command, with_model=services.settings.model.api_key is not None)

    def rejected(self, message: Incoming, error: Exception) -> list[Send]:
        try:
            received = self.received(message)
        except ValueError:  # not even an envelope: nobody to answer (the dead letter stays)
            return []
        envelope = _best_effort_envelope(received)
        result = CommandResult(
            command_id=envelope.get("command_id"),
            organization_id=received.organization_id,
            type=envelope.get("type"),
            status="rejected",
            error=describe_validation_error(error),
            partition=received.partition,
            offset=received.offset,
        )
        return [answer(result)]

    async def handle(
        self, services: Services, batch: list[tuple[Incoming, AnyCommand]]
    ) -> list[Send]:
        sends: list[Send] = []
        seen: set[tuple[UUID, str]] = set()
        for message, command in batch:
            source = self.received(message).source()
            if (command.command_id, source) in seen:
                continue  # the same record twice in one batch (the ingress passed it on twice)
            seen.add((command.command_id, source))
            async with services.db.transaction() as conn:
                logged = await ledger.logged_command(conn, command.command_id)
                if logged is not None and logged.source == source:
                    # the same record delivered again: answer as before, or not at all
                    if not logged.delivered:
                        sends += [stored_send(item) for item in logged.sends]
                    continue
                if logged is not None:  # the same command sent again: its first answer
                    sends += [
                        stored_send(item)
                        for item in logged.sends
                        if item["topic"] in ("command-results", "operator-results")
                    ]
                    continue
                try:
                    async with savepoint(conn):  # a rejection undoes all the command did
                        out = await self.execute(services, conn, command)
                    status = "accepted"
                except (CommandRejectedError, InvalidDataError) as exc:
                    out = self._rejection(message, command, str(exc))
                    status = "rejected"
                await ledger.log_command(
                    conn,
                    command.command_id,
                    command.organization_id,
                    command.type,
                    status,
                    source,
                    [storable(send) for send in out],
                )
            sends += out
            if status == "accepted" and isinstance(command, DeleteMetric):
                await _refresh_after_delete(services, command)
        return sends

    async def delivered(self, services: Services, batch: Sequence[Incoming]) -> None:
        """Every answer and follow-up of these commands is on Kafka: a later delivery of
        the same command sends nothing again."""
        ids = []
        for message in batch:
            try:
                ids.append(self.decode(message).command_id)
            except ValueError:
                continue
        async with services.db.transaction() as conn:
            await ledger.mark_delivered(conn, ids)

    def _rejection(self, message: Incoming, command: AnyCommand, error: str) -> list[Send]:
        result = CommandResult(
            command_id=command.command_id,
            organization_id=command.organization_id,
            type=command.type,
            status="rejected",
            error=error,
        )
        return [
            answer(result),
            dead_letter(
                self.name,
                message,
                CommandRejectedError(error),
                organization_id=command.organization_id,
            ),
        ]


class OperatorStage(CommandStage):
    """Operator commands (topic ``operator-commands``, which only the worker's principal
    may write): what acts on every organisation at once, like a template's shared
    transformer. Same log, same answers, as tenant commands."""

    name = "operator-commands"
    adapter = OPERATOR_ADAPTER

    def received(self, message: Incoming) -> Received:
        """An operator's record, as produced (only the worker's principal may write the
        topic)."""
        return Received(
            OPERATOR, message.value, message.topic, message.partition or 0, message.offset or 0
        )

    async def execute(self, services: Services, conn: Conn, command: Any) -> list[Send]:
        if isinstance(command, RollbackTemplateTransformer):
            return await _rollback_template(conn, command)
        if isinstance(command, GenerateTransformer):
            return await _generate(conn, command)
        assert isinstance(command, RegenerateTransformer)
        return await _regenerate(conn, command)


@dataclass(frozen=True)
class Received:
    """A command record as its sender produced it."""

    organization_id: str
    body: bytes | None
    topic: str
    partition: int
    offset: int

    def natural_id(self) -> UUID:
        """The id of a command sent without one: its topic, partition and offset."""
        return natural_command_id(self.topic, self.partition, self.offset)

    def source(self) -> str:
        """Where the record is (a redelivery is the same record; a re-send is another)."""
        return f"{self.topic}:{self.partition}:{self.offset}"


def natural_command_id(topic: str, partition: int | None, offset: int | None) -> UUID:
    return uuid5(COMMAND_NAMESPACE, f"record:{topic}:{partition}:{offset}")


def storable(send: Send) -> dict[str, str | None]:
    """A send as the command log keeps it: the record's exact bytes, to send again."""
    return {
        "topic": send.topic,
        "org": send.org,
        "key": send.key,
        "value": None if isinstance(send.record, Tombstone) else send.record.to_bytes().decode(),
    }


def stored_send(item: dict[str, str | None]) -> Send:
    topic = str(item["topic"])
    if item["value"] is None:
        return Send(topic, str(item["key"]), Tombstone(), org=item.get("org"))
    record = RECORD_TYPES[topic].model_validate_json(str(item["value"]))
    return Send(topic, str(item["key"]), record, org=item.get("org"))


MANAGEMENT = (
    PauseMetric,
    ResumeMetric,
    DeleteMetric,
    SetMetricFrequency,
    RemoveChart,
    RemoveConnection,
)


async def execute(conn: Conn, command: Command, *, with_model: bool = False) -> list[Send]:
    """Carry out one command in the caller's transaction; raise CommandRejectedError.
    ``with_model``: a model writes chart code (a change request may then ask for what only
    code can do, such as colours)."""
    if isinstance(command, MANAGEMENT):
        outcome = await manage(conn, command)
        return [_accepted(command, **outcome.ids), *outcome.follow]
    if isinstance(command, CreateMetric):
        return await _create_metric(conn, command)
    if isinstance(command, CreateDashboardMetric):
        return await _create_dashboard_metric(conn, command)
    if isinstance(command, ChangeChart):
        return await _change_chart(conn, command, with_model)
    if isinstance(command, RollbackTransformer):
        return await _rollback(conn, command)
    return await _refresh_metric(conn, command)


async def _refresh_after_delete(services: Services, command: DeleteMetric) -> None:
    """Continuous aggregates keep the deleted points' buckets until refreshed over them
    (maintained rollup rows went in the delete's own transaction)."""
    if await services.rollup_mode() != "continuous":
        return
    async with services.db.transaction() as conn:
        window = await lifecycle.removed_window(conn, command.metric_id)
    if window is not None:
        async with services.db.autocommit() as conn:
            await rollups.refresh(conn, *window)


def _accepted(command: Any, **ids: Any) -> Send:
    result = CommandResult(
        command_id=command.command_id,
        organization_id=command.organization_id,
        type=command.type,
        status="accepted",
        **ids,
    )
    return answer(result)


def answer(result: CommandResult) -> Send:
    """Where a command's result goes: its organisation's results topic, or the operators'."""
    if result.organization_id == OPERATOR:
        return Send("operator-results", str(result.command_id), result)
    return Send("command-results", str(result.command_id), result, org=result.organization_id)


async def _create_metric(conn: Conn, command: CreateMetric) -> list[Send]:
    try:
        template = get_template(command.template_id)
    except TemplateError as exc:
        raise CommandRejectedError(str(exc)) from exc
    missing = [p for p in template.param_names if not command.params.get(p, "").strip()]
    if missing:
        raise CommandRejectedError(
            f"template {template.id!r} needs parameter(s) {', '.join(missing)}"
        )
    unsafe = unsafe_params(command.params)
    if unsafe:
        raise CommandRejectedError(f"template {template.id!r}: {'; '.join(unsafe)}")
    unknown = sorted(set(command.params) - set(template.param_names))
    if unknown:
        raise CommandRejectedError(
            f"template {template.id!r} takes no parameter(s) {', '.join(unknown)};"
            f" it takes {', '.join(template.param_names)}"
        )
    refused = template.param_refusals(command.params)
    if refused:
        raise CommandRejectedError(f"template {template.id!r}: {'; '.join(refused)}")
    if command.connection_id is not None:
        connection = await catalog.get_connection(
            conn, command.connection_id, command.organization_id
        )
        if connection is None:
            raise CommandRejectedError(
                f"organisation {command.organization_id!r} has no connection {command.connection_id}"
            )
        if connection.provider != template.provider:
            raise CommandRejectedError(
                f"connection {connection.id} is for {connection.provider};"
                f" template {template.id!r} needs {template.provider}"
            )
    frequency = command.poll_frequency or template.default_poll_frequency
    now = datetime.now(UTC)
    metric_id = command.resolved_metric_id()
    metric = Metric(
        id=metric_id,
        organization_id=command.organization_id,
        template_id=template.id,
        params=command.params,
        poll_frequency=frequency,
        next_poll_at=frequency.first_poll_after(metric_id, now),
        connection_id=command.connection_id,
        created_at=now,
    )
    inserted = await catalog.insert_metric(conn, metric)
    if not inserted:
        existing = await catalog.get_metric(conn, metric.id, command.organization_id)
        if existing is None or existing.template_id != template.id:
            raise CommandRejectedError(f"metric id {metric.id} is taken")
        metric = existing  # its first poll was sent already: the same poll again is nothing
    created_at = metric.created_at or now
    transformer = await catalog.get_metric_transformer(conn, template.id)
    if transformer is None:
        # The template's first metric: its transformer is written from a real sample by the
        # codegen stage, which polls the metric once the code is proven. The job gives the
        # generation an owner and a deadline (a second metric meanwhile joins the first).
        request = CodegenRequest(
            kind="metric",
            reason="created",
            template_id=template.id,
            metric_id=metric.id,
            organization_id=metric.organization_id,
        )
        await jobs.open_job(
            conn, jobs.metric_target(template.id), request.model_dump(mode="json"), now
        )
        follow = [Send("codegen-requests", template.id, request)]
    else:
        created = PollDue(metric_id=metric.id, due_at=created_at, reason="created")
        follow = [
            Send("poll-due", str(metric.id), created),
            *backfill_ticks(template, [metric.id], created_at),
        ]
    return [_accepted(command, metric_id=metric.id), *follow]


async def _create_dashboard_metric(conn: Conn, command: CreateDashboardMetric) -> list[Send]:
    metric = await catalog.get_metric(conn, command.metric_id, command.organization_id)
    if metric is None:
        raise CommandRejectedError(
            f"organisation {command.organization_id!r} has no metric {command.metric_id}"
        )
    template = _template_or_none(metric.template_id)
    if template is None:
        raise CommandRejectedError(
            f"metric {metric.id}'s template {metric.template_id!r} is no longer configured"
        )
    dm = DashboardMetric(
        id=command.resolved_dashboard_metric_id(),
        organization_id=command.organization_id,
        dashboard_id=command.dashboard_id,
        metric_id=metric.id,
        title=command.title
        or f"{template.name} ({'/'.join(metric.params.get(p, '') for p in template.param_names)})",
        chart_type=command.chart_type or template.default_chart_type,
        date_range_days=command.date_range_days,
        aggregation=command.aggregation,
    )
    if not await catalog.insert_dashboard_metric(conn, dm):  # the id exists: whose, for what?
        found = await catalog.get_chart(conn, dm.id, command.organization_id)
        if found is None or found[0].metric_id != dm.metric_id:
            raise CommandRejectedError(f"dashboard metric id {dm.id} is taken")
    return _chart_requested(command, dm, "created")


def _chart_requested(
    command: Command,
    dm: DashboardMetric,
    reason: Literal["created", "change"],
    user_prompt: str | None = None,
    settings: ChartSettings | None = None,
) -> list[Send]:
    """Accept the command and ask the codegen agent for the dashboard metric's chart
    transformer (keyed by dashboard metric, so requests for one chart are serialised)."""
    request = CodegenRequest(
        kind="chart",
        reason=reason,
        dashboard_metric_id=dm.id,
        metric_id=dm.metric_id,
        organization_id=dm.organization_id,
        user_prompt=user_prompt,
        request_id=uuid5(COMMAND_NAMESPACE, f"chart-request:{command.command_id}"),
        chart=settings,
    )
    return [
        _accepted(command, metric_id=dm.metric_id, dashboard_metric_id=dm.id),
        Send("codegen-requests", str(dm.id), request),
    ]


async def _change_chart(conn: Conn, command: ChangeChart, with_model: bool) -> list[Send]:
    """Read the request into the chart's new settings (type, aggregation, range, buckets)
    and ask for the chart's code to be written to them. Without a model, a request nothing
    here understands is refused: the offline generator could only write the same chart."""
    found = await catalog.get_chart(conn, command.dashboard_metric_id, command.organization_id)
    if found is None:
        raise CommandRejectedError(
            f"organisation {command.organization_id!r} has no dashboard metric"
            f" {command.dashboard_metric_id}"
        )
    dm, current = found
    metric = await catalog.get_metric(conn, dm.metric_id, dm.organization_id)
    template = _template_or_none(metric.template_id) if metric else None
    try:
        change = read_change(command.request, template.dimension_names() if template else ())
        settings = change.applied_to(
            settings_of(dm, current), template.chart_dimensions if template else ()
        )
    except ChartRequestError as exc:
        raise CommandRejectedError(str(exc)) from exc
    asked = (*(change.series_only or ()), *change.series_add)
    if asked:
        await _refuse_undrawable(conn, dm, asked)
    if not change.understood and not with_model:
        raise CommandRejectedError(
            f"nothing in {command.request!r} can be done without a model: name "
            + understood_words()
        )
    if change.title is not None and change.title != dm.title:
        await catalog.set_chart_title(conn, dm.id, dm.organization_id, change.title)
    return _chart_requested(command, dm, "change", command.request, settings)


def _template_or_none(template_id: str) -> MetricTemplate | None:
    """A metric's template, or None when its file is gone (the chart is still changed by
    type, range and aggregation; it has no dimension names to read)."""
    try:
        return get_template(template_id)
    except TemplateError:
        return None


async def _refuse_undrawable(conn: Conn, dm: DashboardMetric, asked: Sequence[str]) -> None:
    """Refuse series that are not a number in each of the metric's latest points: the
    chart's code could not draw them (text dimensions, a label that is the value itself),
    and validation would let them pass undrawn. A metric with no points yet is not judged."""
    rows = await catalog.latest_dimensions(conn, dm.metric_id, dm.organization_id)
    if not rows:
        return
    numeric = sorted({n for n in rows[0] if all(is_number(row.get(n)) for row in rows)})
    undrawable = [n for n in dict.fromkeys(asked) if n not in numeric]
    if undrawable:
        raise CommandRejectedError(
            f"{', '.join(undrawable)} cannot be drawn: a series is a dimension that is a number"
            f" in each of the metric's latest points ({', '.join(numeric) or 'none'} here)"
        )


async def _rollback(conn: Conn, command: RollbackTransformer) -> list[Send]:
    """Make an earlier version of a chart current again, as a new version."""
    if command.template_id is not None:
        raise CommandRejectedError(
            f"template {command.template_id!r}'s transformer is shared by every organisation:"
            " rolling it back is an operator command (`metricloom transformer rollback"
            " --template`, topic operator-commands)"
        )
    if command.dashboard_metric_id is None:
        raise CommandRejectedError("name the dashboard_metric_id whose chart to roll back")
    assert command.dashboard_metric_id is not None
    found = await catalog.get_chart(conn, command.dashboard_metric_id, command.organization_id)
    chart = await catalog.get_chart_transformer_version(
        conn, command.dashboard_metric_id, command.version, command.organization_id
    )
    if found is None or chart is None:
        raise CommandRejectedError(
            f"organisation {command.organization_id!r} has no chart version {command.version}"
            f" for dashboard metric {command.dashboard_metric_id}"
        )
    await catalog.save_chart_transformer(conn, chart)
    dm = found[0]
    return [
        _accepted(command, metric_id=dm.metric_id, dashboard_metric_id=dm.id),
        redraw(dm),
    ]


async def _rollback_template(conn: Conn, command: RollbackTemplateTransformer) -> list[Send]:
    """Make an earlier version of a template's transformer current again, as a new version
    (nothing is lost); an owed regeneration is dropped."""
    old = await catalog.get_metric_transformer_version(conn, command.template_id, command.version)
    if old is None:
        raise CommandRejectedError(
            f"template {command.template_id!r} has no transformer version {command.version}"
        )
    await catalog.promote_metric_transformer(conn, old)
    await jobs.close(conn, jobs.metric_target(command.template_id))
    return [_accepted(command)]


async def _generate(conn: Conn, command: GenerateTransformer) -> list[Send]:
    """A template's first transformer, asked for now from a sample of its oldest active
    metric (the accepted result names it); nothing to do when it has one, or when one is
    on its way already (an open job: no second request while the first is in flight). A
    first generation that gave up has no job left, so it is tried again."""
    try:
        template = get_template(command.template_id)
    except TemplateError as exc:
        raise CommandRejectedError(str(exc)) from exc
    if await catalog.get_metric_transformer(conn, template.id) is not None:
        return [_accepted(command, note="has a transformer")]
    metrics = await catalog.active_metrics(conn, template.id)
    if not metrics:
        raise CommandRejectedError(
            f"template {template.id!r} has no active metric to take a sample from:"
            " create or import one first"
        )
    sample = min(metrics, key=lambda m: (m.created_at or datetime.now(UTC), str(m.id)))
    request = CodegenRequest(
        kind="metric",
        reason="created",
        template_id=template.id,
        metric_id=sample.id,
        organization_id=sample.organization_id,
    )
    target = jobs.metric_target(template.id)
    if not await jobs.open_job(conn, target, request.model_dump(mode="json"), datetime.now(UTC)):
        return [_accepted(command, note="being generated already")]  # its job owns retries
    return [
        _accepted(command, metric_id=sample.id),
        Send("codegen-requests", template.id, request),
    ]


async def _regenerate(conn: Conn, command: RegenerateTransformer) -> list[Send]:
    """Write a template's transformer again (the way out of ``failed``)."""
    current = await catalog.get_metric_transformer(conn, command.template_id)
    if current is None:
        raise CommandRejectedError(
            f"template {command.template_id!r} has no transformer yet: creating a metric of"
            " it writes one"
        )
    await catalog.set_transformer_status(conn, current.template_id, "regenerating")
    request = CodegenRequest(
        kind="metric",
        reason="heal",
        template_id=current.template_id,
        errors=[command.reason],
        version=current.version,
    )
    await jobs.reopen(
        conn,
        jobs.metric_target(current.template_id),
        request.model_dump(mode="json"),
        datetime.now(UTC),
    )
    return [_accepted(command), Send("codegen-requests", current.template_id, request)]


async def _refresh_metric(conn: Conn, command: RefreshMetric) -> list[Send]:
    metric = await catalog.get_metric(conn, command.metric_id, command.organization_id)
    if metric is None:
        raise CommandRejectedError(
            f"organisation {command.organization_id!r} has no metric {command.metric_id}"
        )
    if metric.status != "active":
        raise CommandRejectedError(
            f"metric {metric.id} is {metric.status}: resume it first (`metricloom metric resume`)"
        )
    tick = PollDue(metric_id=metric.id, due_at=datetime.now(UTC), reason="refresh")
    return [_accepted(command, metric_id=metric.id), Send("poll-due", str(metric.id), tick)]


def _best_effort_envelope(received: Received) -> dict[str, Any]:
    """The ids of a command that failed validation, when they can be read at all; a
    record without a usable ``command_id`` gets its natural one."""
    out: dict[str, Any] = {"command_id": str(received.natural_id())}
    try:
        doc = orjson.loads(received.body or b"")
    except orjson.JSONDecodeError:
        return out
    if not isinstance(doc, dict):
        return out
    for key in ("command_id", "type"):
        value = doc.get(key)
        if isinstance(value, str) and 0 < len(value) <= 200 and "\x00" not in value:
            out[key] = value
    try:
        CommandResult(command_id=out.get("command_id"), status="rejected")
    except ValidationError:
        out["command_id"] = str(received.natural_id())
    return out


def describe_validation_error(error: Exception) -> str:
    """A one-paragraph, actionable description of why a command is malformed."""
    if isinstance(error, ValidationError):
        problems = []
        for item in error.errors(include_url=False)[:5]:
            where = ".".join(str(p) for p in item["loc"]) or "message"
            problems.append(f"{where}: {item['msg']}")
        return "malformed command: " + "; ".join(problems)
    return f"malformed command: {error}"
