"""Codegen stage: transformers are written once, proven, saved — and healed.

The model (or the offline generator) is called here only: when a template's first metric
is created, when a chart is placed or changed, and when a transformer keeps failing. Never
on the polling path.

Every proposal is validated before it is saved: static checks (it parses, defines
``transform`` with two parameters, imports only allowed modules), then a run in the
sandbox on a REAL sample and validation of the output by the pydantic models (points:
finite, real timestamps, non-empty unless the sample is, the template's value where the
template says it is; charts: a valid ``ChartConfig``). A rejected proposal goes back to the
generator with the reason, a bounded number of times.

Healing: the transform stage counts a transformer's failures; past the threshold it asks
for regeneration (reason ``heal``). The new code is promoted only if it passes a fresh
sample and does no worse than the current version on the stored input example; then the
version goes up (history keeps the old one) and the template's metrics are polled again.
When it cannot be healed the transformer is marked ``failed`` and an alert is published.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import structlog

from agents.backfill import backfill_ticks
from agents.charting import redraw
from agents.fetch_client import FetchError, RetryLaterError, fetch_payload, request_for
from agents.fetching import connection_for
from agents.generators import ChartCodeTask, Generator, MetricCodeTask, Proposal, generator_for
from agents.generators.openai_compatible import ModelAnswerError
from agents.pipeline import Incoming, Send, Stage, dead_letter
from agents.services import Services
from agents.transforming import endpoint_config
from agents.validation import InvalidCodeError, validate_chart_code, validate_metric_code
from schema import catalog, rollups
from schema.exceptions import MetricloomError
from schema.models import (
    ChartConfig,
    ChartTransformer,
    Connection,
    Metric,
    MetricTemplate,
    MetricTransformer,
)
from streams.messages import (
    Alert,
    BackfillProgress,
    CodegenRequest,
    PollDue,
)
from templates import get_template

log = structlog.get_logger(__name__)


class GenerationFailedError(MetricloomError):
    """No valid proposal within the attempts allowed."""


@dataclass(frozen=True)
class Outcome:
    """A proven proposal, with what it cost."""

    code: str
    generator: str
    attempts: int
    model_calls: int
    seconds: float
    output: Any


# --- the generate-validate-retry loops --------------------------------------------------


T = TypeVar("T")


async def _repair_loop(
    services: Services,
    what: str,
    propose: Callable[[list[str]], Awaitable[Proposal]],
    validate: Callable[[str], Awaitable[T]],
    feedback: list[str],
) -> tuple[str, int, int, float, T]:
    """The one generate-validate-retry loop: ask, validate, feed the rejection back, at
    most ``model.max_attempts`` times. Returns (code, attempts, model calls, seconds, what
    validation produced)."""
    started = time.monotonic()
    calls = 0
    last: str | None = None
    for attempt in range(1, services.settings.model.max_attempts + 1):
        try:
            proposal = await propose(list(feedback))
        except ModelAnswerError as exc:
            calls += 1
            feedback.append(f'{exc}; answer with JSON {{"code": "<python module>"}} only')
            continue
        calls += proposal.model_calls
        try:
            validated = await validate(proposal.code)
        except InvalidCodeError as exc:
            log.info("codegen.rejected", target=what, attempt=attempt, error=str(exc)[:300])
            feedback.append(str(exc))
            if proposal.code == last:  # a deterministic generator will not change its mind
                break
            last = proposal.code
            continue
        return proposal.code, attempt, calls, time.monotonic() - started, validated
    raise GenerationFailedError(
        f"no valid {what} after {len(feedback)} rejection(s)"
        f" and {calls} model call(s): {feedback[-1]}"
    )


async def generate_metric(
    services: Services,
    generator: Generator,
    template: MetricTemplate,
    sample: Any,
    config: dict[str, Any],
    previous_code: str | None = None,
    errors: list[str] | None = None,
) -> Outcome:
    """A validated MetricTransformer for ``template``, proven on ``sample``."""
    code, attempts, calls, seconds, points = await _repair_loop(
        services,
        f"transformer for {template.id}",
        lambda feedback: generator.metric_code(
            MetricCodeTask(template, sample, config, previous_code, feedback)
        ),
        lambda code: validate_metric_code(services, template, code, sample, config),
        list(errors or []),
    )
    output = [p.model_dump(mode="json") for p in points]
    return Outcome(code, generator.name, attempts, calls, seconds, output)


async def generate_chart(
    services: Services,
    generator: Generator,
    task: ChartCodeTask,
    preferences: dict[str, Any],
) -> tuple[Outcome, ChartConfig]:
    """A validated ChartTransformer for ``task``, proven on its sample series."""
    code, attempts, calls, seconds, config = await _repair_loop(
        services,
        "chart transformer",
        lambda feedback: generator.chart_code(replace(task, feedback=feedback)),
        lambda code: validate_chart_code(services, code, task.sample, preferences),
        list(task.feedback),
    )
    outcome = Outcome(
        code, generator.name, attempts, calls, seconds, config.model_dump(by_alias=True)
    )
    return outcome, config


# --- the stage --------------------------------------------------------------------------


async def fetch_sample(
    services: Services,
    template: MetricTemplate,
    params: dict[str, str],
    connection: Connection | None = None,
) -> tuple[Any, dict[str, Any]]:
    """A real, fresh payload from the template's polling endpoint, and the endpoint config
    a transformer is told about: what generation validates the code against."""
    request = request_for(services.settings, template, template.polling, params, connection)
    fetched_at = datetime.now(UTC)
    payload = await fetch_payload(
        services.http, request, services.settings.fetch, pagination=template.polling.pagination
    )
    return payload, endpoint_config(template.id, template.polling.path, params, fetched_at)


class CodegenStage(Stage[CodegenRequest]):
    name = "codegen"

    def __init__(self, generator: Generator | None = None) -> None:
        self._generator = generator

    def generator(self, services: Services) -> Generator:
        if self._generator is None:
            self._generator = generator_for(services.settings.model)
        return self._generator

    def decode(self, message: Incoming) -> CodegenRequest:
        return CodegenRequest.model_validate_json(message.body())

    async def handle(
        self, services: Services, batch: list[tuple[Incoming, CodegenRequest]]
    ) -> list[Send]:
        sends: list[Send] = []
        for message, request in batch:
            if request.kind == "metric":
                sends += await self._metric(services, message, request)
            else:
                sends += await self._chart(services, message, request)
        return sends

    async def _metric(
        self, services: Services, message: Incoming, request: CodegenRequest
    ) -> list[Send]:
        template = get_template(request.template_id or "")
        async with services.db.transaction() as conn:
            current = await catalog.get_metric_transformer(conn, template.id)
            metric = (
                await catalog.get_metric(conn, request.metric_id) if request.metric_id else None
            )
        if request.reason == "created" and current is not None:  # generated meanwhile
            return _first_polls(template, [metric] if metric else [])
        if metric is None:
            return [dead_letter(self.name, message, "no metric to take a sample from")]
        try:
            sample, config = await self._sample(services, template, metric)
        except (FetchError, RetryLaterError) as exc:
            async with services.db.transaction() as conn:
                await catalog.record_metric_error(conn, metric.id, self.name, str(exc))
                if current is not None:
                    await catalog.set_transformer_status(conn, template.id, "active", str(exc))
            return [
                dead_letter(self.name, message, exc, metric.id),
                *_no_backfill(template, metric, str(exc)),
            ]
        try:
            outcome = await generate_metric(
                services,
                self.generator(services),
                template,
                sample,
                config,
                current.code if current else None,
                request.errors,
            )
        except GenerationFailedError as exc:
            return await self._give_up(services, message, template, metric, current, str(exc))
        log.info(
            "codegen.metric",
            template_id=template.id,
            reason=request.reason,
            attempts=outcome.attempts,
            model_calls=outcome.model_calls,
            seconds=round(outcome.seconds, 3),
        )
        historical_code = current.historical_code if current else None
        if current is None and template.historical is not None:
            try:
                historical_code = await self._historical_code(services, template, metric, sample)
            except (FetchError, RetryLaterError, GenerationFailedError) as exc:
                return await self._give_up(services, message, template, metric, None, str(exc))
        candidate = MetricTransformer(
            template_id=template.id,
            polling_endpoint=template.polling,
            historical_endpoint=template.historical,
            code=outcome.code,
            historical_code=historical_code,
            generator=outcome.generator,
            input_example=sample,
            output_example=outcome.output,
        )
        async with services.db.transaction() as conn:
            if current is None:
                await catalog.insert_metric_transformer(conn, candidate)
                return _first_polls(template, [metric])
        if not await self._no_worse(services, template, current, candidate):
            why = "regenerated code does worse than the current version on its stored example"
            return await self._give_up(services, message, template, metric, current, why)
        async with services.db.transaction() as conn:
            version = await catalog.promote_metric_transformer(conn, candidate)
            metric_ids = await catalog.active_metrics_of_template(conn, template.id)
        log.info("codegen.healed", template_id=template.id, version=version)
        # Poll now, and re-fetch the window the broken version missed where there is history.
        if template.historical is not None:
            return _poll(metric_ids, "refresh") + backfill_ticks(template, metric_ids)
        return _poll(metric_ids, "refresh")

    async def _historical_code(
        self, services: Services, template: MetricTemplate, metric: Metric, polling_sample: Any
    ) -> str | None:
        """A separate historical transformer when the historical endpoint answers in
        another shape than the polling one (decided on the two real samples); None when
        the polling transformer reads both."""
        history = template.for_history()
        window = next(
            (t.record.window for t in backfill_ticks(template, [metric.id])[-1:]),  # type: ignore[attr-defined]
            None,
        )
        params = dict(metric.params)
        if window is not None:  # sample the most recent chunk's window
            params.update(FROM=window[0].isoformat(), TO=window[1].isoformat())
        sample, config = await self._sample(
            services, history, metric.model_copy(update={"params": params})
        )
        if shape(sample) == shape(polling_sample):
            return None
        outcome = await generate_metric(services, self.generator(services), history, sample, config)
        log.info("codegen.historical", template_id=template.id, attempts=outcome.attempts)
        return outcome.code

    async def _sample(
        self, services: Services, template: MetricTemplate, metric: Metric
    ) -> tuple[Any, dict[str, Any]]:
        """A real, fresh sample from the metric's endpoint, with its own credentials."""
        connection = await connection_for(services, metric)
        return await fetch_sample(services, template, metric.params, connection)

    async def _no_worse(
        self,
        services: Services,
        template: MetricTemplate,
        current: MetricTransformer,
        candidate: MetricTransformer,
    ) -> bool:
        """On the stored input example, the candidate must pass wherever the current does."""
        if current.input_example is None:
            return True
        config = {"fetched_at": datetime.now(UTC).isoformat(), "template_id": template.id}

        async def passes(code: str) -> bool:
            try:
                await validate_metric_code(services, template, code, current.input_example, config)
            except InvalidCodeError:
                return False
            return True

        return await passes(candidate.code) or not await passes(current.code)

    async def _give_up(
        self,
        services: Services,
        message: Incoming,
        template: MetricTemplate,
        metric: Metric,
        current: MetricTransformer | None,
        error: str,
    ) -> list[Send]:
        log.warning("codegen.failed", template_id=template.id, error=error[:300])
        async with services.db.transaction() as conn:
            await catalog.record_metric_error(conn, metric.id, self.name, error)
            if current is not None:
                await catalog.set_transformer_status(conn, template.id, "failed", error)
        alert = Alert(kind="transformer_failed", template_id=template.id, message=error[:2000])
        return [
            Send("alerts", template.id, alert),
            dead_letter(self.name, message, error, metric.id),
        ]

    async def _chart(
        self, services: Services, message: Incoming, request: CodegenRequest
    ) -> list[Send]:
        assert request.dashboard_metric_id is not None
        async with services.db.transaction() as conn:
            found = await catalog.get_chart(conn, request.dashboard_metric_id)
            if found is None:
                return [dead_letter(self.name, message, "no such dashboard metric")]
            dm, current = found
            if request.reason == "created" and current is not None:
                return [redraw(dm)]
            rollup = rollups.pick(dm.date_range_days)
            since = datetime.now(UTC) - timedelta(days=dm.date_range_days)
            series = await rollups.read_series(conn, dm.metric_id, since, rollup, dm.aggregation)
            metric = await catalog.get_metric(conn, dm.metric_id)
        template = get_template(metric.template_id) if metric else None
        preferences = {
            "chart_type": dm.chart_type,
            "date_range_days": dm.date_range_days,
            "aggregation": dm.aggregation,
            "series_dimensions": list(template.chart_dimensions) if template else [],
            "title": dm.title,
            "granularity": rollup.name,
            "bucket_seconds": int(rollup.width.total_seconds()),
        }
        task = ChartCodeTask(
            title=dm.title,
            chart_type=dm.chart_type,
            aggregation=dm.aggregation,
            date_range_days=dm.date_range_days,
            granularity=rollup.name,
            sample=[{**row, "timestamp": row["timestamp"].isoformat()} for row in series],
            current_code=current.code if current else None,
            user_prompt=request.user_prompt,
        )
        try:
            outcome, config = await generate_chart(
                services, self.generator(services), task, preferences
            )
        except GenerationFailedError as exc:
            alert = Alert(
                kind="chart_transformer_failed", dashboard_metric_id=dm.id, message=str(exc)[:2000]
            )
            return [
                Send("alerts", str(dm.id), alert),
                dead_letter(self.name, message, exc, dm.metric_id),
            ]
        chart = ChartTransformer(
            dashboard_metric_id=dm.id,
            organization_id=dm.organization_id,
            code=outcome.code,
            chart_type=config.chart_type,
            date_range_days=dm.date_range_days,
            aggregation=_aggregation_of(outcome.code, dm.aggregation),
            preferences={
                k: v
                for k, v in preferences.items()
                if k not in {"title", "bucket_seconds", "granularity"}
            },
            user_prompt=request.user_prompt or (current.user_prompt if current else None),
            generator=outcome.generator,
        )
        async with services.db.transaction() as conn:
            version = await catalog.save_chart_transformer(conn, chart)
        log.info(
            "codegen.chart",
            dashboard_metric_id=str(dm.id),
            version=version,
            reason=request.reason,
            model_calls=outcome.model_calls,
        )
        return [redraw(dm)]


def _aggregation_of(code: str, default: str) -> str:
    """The aggregation an offline-generated chart declares (AGGREGATE = '...')."""
    for line in code.splitlines():
        if line.startswith("AGGREGATE = "):
            value = line.split("=", 1)[1].strip().strip("'\"")
            if value in {"sum", "avg", "min", "max", "last", "count"}:
                return value
    return default


def shape(value: Any, depth: int = 3) -> Any:
    """The structure of a JSON value (types and keys, first list element), for deciding
    whether two endpoints answer alike."""
    if depth == 0:
        return type(value).__name__
    if isinstance(value, dict):
        return {key: shape(item, depth - 1) for key, item in sorted(value.items())}
    if isinstance(value, list):
        return ["list", shape(value[0], depth - 1) if value else None]
    return type(value).__name__


def _first_polls(template: MetricTemplate, metrics: list[Metric]) -> list[Send]:
    """A new metric's first poll, and its backfill when the template has history: due at
    the metric's creation, so whichever stage sends them (the command stage when the
    transformer exists, this one when it had to write it) sends the same polls."""
    sends: list[Send] = []
    for metric in metrics:
        created = metric.created_at or datetime.now(UTC)
        tick = PollDue(metric_id=metric.id, due_at=created, reason="created")
        sends += [
            Send("poll-due", str(metric.id), tick),
            *backfill_ticks(template, [metric.id], created),
        ]
    return sends


def _no_backfill(template: MetricTemplate, metric: Metric, error: str) -> list[Send]:
    """Tell backfill followers that a new metric's history will not come (no transformer)."""
    if template.historical is None:
        return []
    progress = BackfillProgress(
        metric_id=metric.id,
        organization_id=metric.organization_id,
        state="failed",
        error=f"no transformer: {error}"[:2000],
    )
    return [Send("backfill-progress", str(metric.id), progress)]


def _poll(metric_ids: list[Any], reason: str) -> list[Send]:
    now = datetime.now(UTC)
    return [
        Send("poll-due", str(m), PollDue(metric_id=m, due_at=now, reason=reason))
        for m in metric_ids
    ]
