"""Codegen stage: transformers are written once, proven, saved — and healed.

The model (or the offline generator) is called here only: when a template's first metric
is created, when a chart is placed or changed, and when a transformer keeps failing. Never
on the polling path. How a proposal is written and proven is ``agents/generation.py``.

Every owed generation of a template's transformer is a job (``schema/jobs.py``) with a
deadline, so no state is without an exit:

* the first transformer's sample fetch fails (a 202 while GitHub computes, a 429, a 5xx,
  a typo in a parameter): the job is postponed (to the provider's ``Retry-After`` when it
  gave one), the template's metrics say so in ``last_error``, and the scheduler sends the
  request again; past the bound the job is given up with an alert naming the
  organisations affected;
* a heal (``regenerating``) that does not finish, whatever happened to its request, is
  sent again at its deadline, and past the bound the transformer is marked ``failed``
  with an alert; a ``failed`` transformer's metrics are not fetched until an operator's
  ``transformer regenerate`` (or a new version) brings it back;
* a historical sample that cannot be fetched yet does not throw the proven polling code
  away: it is saved, and the history follows when its own job succeeds.

A healed candidate is promoted only if it passes a fresh sample and does no worse than
the current version on the stored input example; then the version goes up (history keeps
the old one) and the template's metrics are polled again.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import structlog

from agents.backfill import backfill_ticks
from agents.chart_requests import settings_of
from agents.charting import redraw
from agents.fetch_client import FetchError, RetryLaterError, provider_of
from agents.fetching import SharedBudget, budget_key, connection_for
from agents.generation import (
    GenerationFailedError,
    Outcome,
    fetch_sample,
    generate_chart,
    generate_metric,
    language_for,
    shape,
)
from agents.generators import ChartCodeTask, Generator, generator_for
from agents.pipeline import Incoming, Send, Stage, dead_letter
from agents.services import Services
from agents.validation import InvalidCodeError, validate_metric_code
from schema import catalog, jobs, lifecycle, rollups
from schema.models import (
    ChartTransformer,
    Metric,
    MetricTemplate,
    MetricTransformer,
    TransformerLanguage,
    range_start,
)
from streams.messages import Alert, BackfillProgress, CodegenRequest, PollDue
from templates import get_template

log = structlog.get_logger(__name__)


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
            if request.kind == "chart":
                sends += await self._chart(services, message, request)
            elif request.historical:
                sends += await self._historical(services, request)
            else:
                sends += await self._metric(services, message, request)
        return sends

    # --- a template's MetricTransformer -------------------------------------------------

    async def _metric(
        self, services: Services, message: Incoming, request: CodegenRequest
    ) -> list[Send]:
        template = get_template(request.template_id or "")
        target = jobs.metric_target(template.id)
        async with services.db.transaction() as conn:
            current = await catalog.get_metric_transformer(conn, template.id)
            metric = await _sample_metric(conn, template, request)
            if current is not None and not _still_owed(request, current):
                await jobs.close(conn, target)  # done before: say what followed, again
                if request.reason == "created":
                    waiting = await catalog.unpolled_metrics_of_template(conn, template.id)
                    return _first_polls(template, current, waiting)
                if current.status != "active":  # given up: its metrics wait for an operator
                    return []
                return await _after_heal(conn, template, current)
            if metric is None:
                await jobs.close(conn, target)
                return [dead_letter(self.name, message, f"template {template.id!r} has no metric")]
        try:
            sample, config = await self._sample(services, template, metric)
        except (FetchError, RetryLaterError) as exc:
            return await self._later(services, template, request, exc)
        language = language_for(services.settings, template)
        # The current code helps a repair only in the language asked for: shown beside a
        # prompt for the other, it invites an answer in the wrong one.
        previous = current.code if current and current.language == language else None
        try:
            outcome = await generate_metric(
                services,
                self.generator(services),
                template,
                sample,
                config,
                language,
                previous_code=previous,
                errors=request.errors,
            )
        except GenerationFailedError as exc:
            return await self._give_up(services, template, current, str(exc))
        log.info(
            "codegen.metric",
            template_id=template.id,
            reason=request.reason,
            attempts=outcome.attempts,
            model_calls=outcome.model_calls,
            seconds=round(outcome.seconds, 3),
        )
        candidate = MetricTransformer(
            template_id=template.id,
            polling_endpoint=template.polling,
            historical_endpoint=template.historical,
            code=outcome.code,
            historical_code=current.historical_code if current else None,
            generator=outcome.generator,
            input_example=sample,
            output_example=outcome.output,
            language=language,
            compiled_code=outcome.compiled,
            historical_compiled_code=current.historical_compiled_code if current else None,
        )
        if current is None:
            return await self._first(services, template, metric, candidate, sample)
        if current.language != language and current.historical_code:
            # The history's own transformer is rewritten in the new language too: one
            # version never mixes two.
            try:
                history = await self._historical_code(services, template, metric, sample, language)
            except (FetchError, RetryLaterError) as exc:
                return await self._later(services, template, request, exc)
            except GenerationFailedError as exc:
                return await self._give_up(services, template, current, f"history: {exc}")
            candidate = candidate.model_copy(update=_historical_fields(history))
        if not await self._no_worse(services, template, current, candidate):
            why = "regenerated code does worse than the current version on its stored example"
            return await self._give_up(services, template, current, why)
        async with services.db.transaction() as conn:
            version = await catalog.promote_metric_transformer(conn, candidate)
            await jobs.close(conn, target)
            healed = await catalog.get_metric_transformer(conn, template.id)
            assert healed is not None
            log.info("codegen.healed", template_id=template.id, version=version)
            return await _after_heal(conn, template, healed)

    async def _first(
        self,
        services: Services,
        template: MetricTemplate,
        metric: Metric,
        candidate: MetricTransformer,
        sample: Any,
    ) -> list[Send]:
        """Save a template's first transformer and poll its metrics. Where the history
        answers in another shape, its own transformer is written from its own sample
        first; if that sample cannot be fetched yet, the polling code is saved anyway and
        the history follows (its own job)."""
        pending: FetchError | RetryLaterError | None = None
        if template.historical is not None:
            try:
                history = await self._historical_code(
                    services, template, metric, sample, candidate.language
                )
                candidate = candidate.model_copy(update=_historical_fields(history))
            except (FetchError, RetryLaterError) as exc:
                pending = exc
            except GenerationFailedError as exc:
                return await self._give_up(services, template, None, f"history: {exc}")
        async with services.db.transaction() as conn:
            if pending is not None:
                candidate = candidate.model_copy(update={"historical_pending": True})
            await catalog.insert_metric_transformer(conn, candidate)
            await jobs.close(conn, jobs.metric_target(template.id))
            saved = await catalog.get_metric_transformer(conn, template.id)
            waiting = await catalog.unpolled_metrics_of_template(conn, template.id)
        assert saved is not None
        sends = _first_polls(template, saved, waiting)
        if pending is not None:
            request = CodegenRequest(
                kind="metric", reason="created", template_id=template.id, historical=True
            )
            sends += await self._later(services, template, request, pending)
        return sends

    async def _historical(self, services: Services, request: CodegenRequest) -> list[Send]:
        """The historical transformer a first generation could not write yet."""
        template = get_template(request.template_id or "")
        target = jobs.metric_target(template.id, historical=True)
        async with services.db.transaction() as conn:
            current = await catalog.get_metric_transformer(conn, template.id)
            metric = await _sample_metric(conn, template, request)
            if current is None or not current.historical_pending or metric is None:
                await jobs.close(conn, target)
                return []
        try:
            sample, _ = await self._sample(services, template, metric)
            history = await self._historical_code(
                services, template, metric, sample, current.language
            )
        except (FetchError, RetryLaterError) as exc:
            return await self._later(services, template, request, exc)
        except GenerationFailedError as exc:
            async with services.db.transaction() as conn:
                await jobs.close(conn, target)
            return _alert(template, f"its historical transformer: {exc}", [])
        async with services.db.transaction() as conn:
            fields = _historical_fields(history)
            await catalog.set_historical_code(
                conn, template.id, fields["historical_code"], fields["historical_compiled_code"]
            )
            await jobs.close(conn, target)
            metrics = await catalog.metrics_awaiting_backfill(conn, template.id)
        sends: list[Send] = []
        for waiting in metrics:
            sends += backfill_ticks(template, [waiting.id], waiting.created_at)
        return sends

    async def _historical_code(
        self,
        services: Services,
        template: MetricTemplate,
        metric: Metric,
        polling_sample: Any,
        language: TransformerLanguage,
    ) -> Outcome | None:
        """A separate historical transformer (in ``language``) when the historical
        endpoint answers in another shape than the polling one (decided on the two real
        samples); None when the polling transformer reads both."""
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
        outcome = await generate_metric(
            services, self.generator(services), history, sample, config, language=language
        )
        log.info("codegen.historical", template_id=template.id, attempts=outcome.attempts)
        return outcome

    async def _sample(
        self, services: Services, template: MetricTemplate, metric: Metric
    ) -> tuple[Any, dict[str, Any]]:
        """A real, fresh sample from the metric's endpoint, with its own credentials and
        from its connection's rate budget (a sample is a request like any poll)."""
        connection = await connection_for(services, metric)
        rate_limit = provider_of(services.settings, template).rate_limit
        budget = SharedBudget(services.db, budget_key(metric, template.provider), rate_limit)
        return await fetch_sample(
            services, template, metric.params, connection, metric.organization_id, budget
        )

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

        async def passes(transformer: MetricTransformer) -> bool:
            example = current.input_example
            try:
                await validate_metric_code(
                    services, template, transformer.code, example, config, transformer.language
                )
            except InvalidCodeError:
                return False
            return True

        return await passes(candidate) or not await passes(current)

    async def _later(
        self,
        services: Services,
        template: MetricTemplate,
        request: CodegenRequest,
        exc: FetchError | RetryLaterError,
    ) -> list[Send]:
        """The sample could not be fetched now: the job waits (until the provider's time
        when it gave one) and the template's metrics say why they have no data yet."""
        target = jobs.metric_target(template.id, request.historical)
        now = datetime.now(UTC)
        async with services.db.transaction() as conn:
            attempts = await jobs.attempts(conn, target)
            at = exc.retry_at if isinstance(exc, RetryLaterError) else None
            at = max(at or now, now + jobs.retry_delay(attempts))
            await jobs.postpone(conn, target, request.model_dump(mode="json"), at, str(exc))
            what = "history" if request.historical else "transformer"
            for metric in await catalog.active_metrics(conn, template.id):
                await catalog.record_metric_error(
                    conn,
                    metric.id,
                    self.name,
                    f"waiting for template {template.id!r}'s {what}: its sample could not"
                    f" be fetched ({exc}); next try at {at.isoformat()}",
                )
        log.info("codegen.later", template_id=template.id, at=at.isoformat(), error=str(exc))
        return []

    async def _give_up(
        self,
        services: Services,
        template: MetricTemplate,
        current: MetricTransformer | None,
        error: str,
    ) -> list[Send]:
        """No valid transformer: a first one is not saved, a healed one is marked
        ``failed`` (its metrics are then not fetched); either way an alert names the
        organisations whose metrics wait for it."""
        log.warning("codegen.failed", template_id=template.id, error=error[:300])
        async with services.db.transaction() as conn:
            await jobs.close(conn, jobs.metric_target(template.id))
            metrics = await catalog.active_metrics(conn, template.id)
            for metric in metrics:
                await catalog.record_metric_error(conn, metric.id, self.name, error)
            if current is not None:
                await catalog.set_transformer_status(conn, template.id, "failed", error)
        organizations = sorted({m.organization_id for m in metrics})
        sends = _alert(template, error, organizations)
        if current is None:
            for metric in metrics:
                sends += _no_backfill(template, metric, error)
        return sends

    # --- a dashboard metric's ChartTransformer ------------------------------------------

    async def _chart(
        self, services: Services, message: Incoming, request: CodegenRequest
    ) -> list[Send]:
        assert request.dashboard_metric_id is not None
        async with services.db.transaction() as conn:
            found = await catalog.get_chart(
                conn, request.dashboard_metric_id, request.organization_id, refuse_foreign=True
            )
            if found is None:
                removed = await lifecycle.removed(
                    conn, "dashboard_metric", request.dashboard_metric_id
                )
                if removed == request.organization_id:  # removed while the request waited
                    log.info(
                        "codegen.skipped",
                        dashboard_metric_id=str(request.dashboard_metric_id),
                        status="removed",
                    )
                    return []
                return [dead_letter(self.name, message, "no such dashboard metric")]
            dm, current = found
            settings = request.chart or settings_of(dm, current)
            done = current is not None and (
                request.reason == "created"
                or (request.request_id is not None and current.request_id == request.request_id)
            )
            if done:  # created before, or this very change applied before
                return [redraw(dm)]
            rollup = rollups.for_chart(
                settings.date_range_days, settings.granularity, settings.aggregation
            )
            since = range_start(settings.date_range_days, datetime.now(UTC))
            series = await rollups.read_series(
                conn, dm.metric_id, since, rollup, settings.aggregation
            )
            metric = await catalog.get_metric(conn, dm.metric_id, dm.organization_id)
        template = get_template(metric.template_id) if metric else None
        stored: dict[str, Any] = {
            "chart_type": settings.chart_type,
            "date_range_days": settings.date_range_days,
            "aggregation": settings.aggregation,
            "series_dimensions": (
                list(settings.series)
                if settings.series is not None
                else list(template.chart_dimensions if template else [])
            ),
        }
        if settings.granularity is not None:  # asked for: kept; else chosen by range
            stored["granularity"] = settings.granularity
        if settings.stacked:
            stored["stacked"] = True
        preferences = {
            **stored,
            "title": dm.title,
            "granularity": rollup.name,
            "bucket_seconds": int(rollup.width.total_seconds()),
        }
        language = services.settings.transformer_language
        task = ChartCodeTask(
            title=dm.title,
            chart_type=settings.chart_type,
            aggregation=settings.aggregation,
            date_range_days=settings.date_range_days,
            granularity=rollup.name,
            sample=[{**row, "timestamp": row["timestamp"].isoformat()} for row in series],
            # the current code only in the language asked for (as for a metric's repair)
            current_code=current.code if current and current.language == language else None,
            user_prompt=request.user_prompt,
            series=tuple(stored["series_dimensions"]),
            language=language,
        )
        try:
            outcome, _ = await generate_chart(services, self.generator(services), task, preferences)
        except GenerationFailedError as exc:
            alert = Alert(
                kind="chart_transformer_failed",
                dashboard_metric_id=dm.id,
                organizations=[dm.organization_id],
                message=str(exc)[:2000],
            )
            return [
                Send("alerts", str(dm.id), alert, org=dm.organization_id),
                Send("operator-alerts", str(dm.id), alert),
                dead_letter(self.name, message, exc, dm.metric_id, dm.organization_id),
            ]
        if (
            current is not None
            and (outcome.code, outcome.language) == (current.code, current.language)
            and settings == settings_of(dm, current)
        ):  # nothing to change: no new version
            log.info("codegen.chart_unchanged", dashboard_metric_id=str(dm.id))
            return [redraw(dm)]
        chart = ChartTransformer(
            dashboard_metric_id=dm.id,
            organization_id=dm.organization_id,
            code=outcome.code,
            chart_type=settings.chart_type,
            date_range_days=settings.date_range_days,
            aggregation=settings.aggregation,
            preferences=stored,
            user_prompt=request.user_prompt or (current.user_prompt if current else None),
            generator=outcome.generator,
            request_id=request.request_id,
            language=outcome.language,
            compiled_code=outcome.compiled,
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


def _historical_fields(history: Outcome | None) -> dict[str, str | None]:
    """A transformer's history fields from its history's generation (None: the polling
    transformer reads the history too)."""
    if history is None:
        return {"historical_code": None, "historical_compiled_code": None}
    return {"historical_code": history.code, "historical_compiled_code": history.compiled}


def _still_owed(request: CodegenRequest, current: MetricTransformer) -> bool:
    """Whether a request for a template that has a transformer still needs work: a heal
    of the version it was asked against, still ``regenerating``."""
    if request.reason != "heal":
        return False
    return current.status == "regenerating" and (
        request.version is None or request.version == current.version
    )


async def _sample_metric(
    conn: Any, template: MetricTemplate, request: CodegenRequest
) -> Metric | None:
    """The metric to take a sample from: the one the request names (of the organisation it
    names: another's is ForeignIdError), else any active metric of the template (the one
    named may be gone)."""
    if request.metric_id is not None:
        metric = await catalog.get_metric(
            conn, request.metric_id, request.organization_id, refuse_foreign=True
        )
        if metric is not None and metric.status == "active":
            return metric
    metrics = await catalog.active_metrics(conn, template.id)
    return metrics[0] if metrics else None


def _first_polls(
    template: MetricTemplate, transformer: MetricTransformer, metrics: list[Metric]
) -> list[Send]:
    """New metrics' first polls, and their backfills when the template has history (and
    its historical transformer is ready): due at each metric's creation, so whichever
    stage sends them (the command stage when the transformer exists, this one when it had
    to write it) sends the same polls, and a repeat is recognised."""
    sends: list[Send] = []
    for metric in metrics:
        created = metric.created_at or datetime.now(UTC)
        tick = PollDue(metric_id=metric.id, due_at=created, reason="created")
        sends.append(Send("poll-due", str(metric.id), tick))
        if not transformer.historical_pending:
            sends += backfill_ticks(template, [metric.id], created)
    return sends


async def _after_heal(
    conn: Any, template: MetricTemplate, transformer: MetricTransformer
) -> list[Send]:
    """After a new version: every active metric polled again, and where there is history,
    the window the broken version missed fetched again; due at the version's time, so the
    same polls however often this is sent."""
    when = transformer.updated_at or datetime.now(UTC)
    metric_ids = [m.id for m in await catalog.active_metrics(conn, template.id)]
    sends = [
        Send("poll-due", str(m), PollDue(metric_id=m, due_at=when, reason="refresh"))
        for m in metric_ids
    ]
    if template.historical is not None and not transformer.historical_pending:
        sends += backfill_ticks(template, metric_ids, when)
    return sends


def _alert(template: MetricTemplate, error: str, organizations: list[str]) -> list[Send]:
    """The operators' alert, and each affected organisation's."""
    return alerts(template.id, error, organizations)


def alerts(template_id: str, error: str, organizations: list[str]) -> list[Send]:
    """A template's transformer could not be written: on the operators' topic, and on each
    organisation's whose metrics wait for it."""
    alert = Alert(
        kind="transformer_failed",
        template_id=template_id,
        organizations=organizations,
        message=error[:2000],
    )
    return [Send("operator-alerts", template_id, alert)] + [
        Send("alerts", template_id, alert, org=org) for org in organizations
    ]


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
    return [Send("backfill-progress", str(metric.id), progress, org=metric.organization_id)]
