"""Writing a transformer: ask the generator, validate, feed the rejection back.

The model (or the offline generator) only *proposes* code. Every proposal is validated
before anything is saved (``agents/validation.py``): static checks, then a run in the
sandbox on a REAL sample and the pydantic models on its output. A rejection goes back to
the generator with the reason, a bounded number of times (``METRICLOOM_MODEL__MAX_ATTEMPTS``).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, TypeVar

import structlog

from agents.fetch_client import Budget, fetch_payload, provider_of, request_for, scope_of
from agents.generators import ChartCodeTask, Generator, MetricCodeTask, Proposal
from agents.generators.exceptions import ModelAnswerError, ModelRefusedError
from agents.services import Services
from agents.transforming import endpoint_config
from agents.validation import InvalidCodeError, validate_chart_code, validate_metric_proposal
from sandbox.protocol import Language
from schema.exceptions import MetricloomError
from schema.models import ChartConfig, Connection, MetricTemplate, TransformerLanguage
from streams.settings import Settings

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
    language: Language = "python"
    compiled: str | None = None
    """TypeScript's compiled JavaScript (what the sandbox runs); None for Python."""


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
            feedback.append(f'{exc}; answer with JSON {{"code": "<the transformer code>"}} only')
            continue
        except ModelRefusedError as exc:  # a setting to fix: asking again cannot help
            raise GenerationFailedError(str(exc)) from exc
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


def language_for(settings: Settings, template: MetricTemplate) -> TransformerLanguage:
    """What a template's transformer is written in: its own choice, else the deployment's
    (``METRICLOOM_TRANSFORMER_LANGUAGE``)."""
    return template.transformer_language or settings.transformer_language


async def generate_metric(
    services: Services,
    generator: Generator,
    template: MetricTemplate,
    sample: Any,
    config: dict[str, Any],
    language: Language,
    previous_code: str | None = None,
    errors: list[str] | None = None,
) -> Outcome:
    """A validated MetricTransformer for ``template`` in ``language``, proven on
    ``sample`` (TypeScript type-checked and compiled first)."""
    code, attempts, calls, seconds, (points, compiled) = await _repair_loop(
        services,
        f"transformer for {template.id}",
        lambda feedback: generator.metric_code(
            MetricCodeTask(template, sample, config, previous_code, feedback, language)
        ),
        lambda code: validate_metric_proposal(services, template, code, sample, config, language),
        list(errors or []),
    )
    output = [p.model_dump(mode="json") for p in points]
    return Outcome(code, generator.name, attempts, calls, seconds, output, language, compiled)


async def generate_chart(
    services: Services,
    generator: Generator,
    task: ChartCodeTask,
    preferences: dict[str, Any],
) -> tuple[Outcome, ChartConfig]:
    """A validated ChartTransformer for ``task``, in ``task.language``, proven on its
    sample series (TypeScript type-checked and compiled first)."""
    code, attempts, calls, seconds, (config, compiled) = await _repair_loop(
        services,
        "chart transformer",
        lambda feedback: generator.chart_code(replace(task, feedback=feedback)),
        lambda code: validate_chart_code(services, code, task.sample, preferences, task.language),
        list(task.feedback),
    )
    output = config.model_dump(by_alias=True)
    outcome = Outcome(
        code, generator.name, attempts, calls, seconds, output, task.language, compiled
    )
    return outcome, config


async def fetch_sample(
    services: Services,
    template: MetricTemplate,
    params: dict[str, str],
    connection: Connection | None = None,
    organization_id: str | None = None,
    budget: Budget | None = None,
) -> tuple[Any, dict[str, Any]]:
    """A real, fresh payload from the template's polling endpoint, and the endpoint config
    a transformer is told about: what generation validates the code against. Fetched as
    the metric's organisation (its connection, or the default token if it may use it),
    spending from the same rate ``budget`` as its polls."""
    request = request_for(
        services.settings, template, template.polling, params, connection, organization_id
    )
    fetched_at = datetime.now(UTC)
    payload = await fetch_payload(
        services.http,
        request,
        services.settings.fetch,
        budget,
        pagination=template.polling.pagination,
        scope=scope_of(services.settings, template, connection),
        rate_limit=provider_of(services.settings, template).rate_limit,
    )
    return payload, endpoint_config(template.id, template.polling.path, params, fetched_at)


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
