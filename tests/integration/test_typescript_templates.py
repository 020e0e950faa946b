"""Every shipped template's transformer in TypeScript (the offline generator's, proposed
through the scripted model server and generated in the model's repair loop: type-checked by
``tsc`` in the sandbox, then run under QuickJS) gives the same points as its Python twin on
the same sample (fetched from the demo API), polling and history endpoints alike; and a
type error goes back to the generator like any other rejection."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from agents.generation import fetch_sample, generate_metric
from agents.generators import ChartCodeTask, Generator, MetricCodeTask, Proposal
from agents.generators.offline import OfflineGenerator, metric_code_for
from agents.generators.offline_ts import metric_code_ts
from agents.generators.openai_compatible import OpenAICompatibleGenerator
from agents.services import Services
from agents.validation import InvalidCodeError, validate_metric_code
from schema.models import DataPoint, MetricTemplate
from templates import load_templates
from tests.conftest import DEMO_PARAMS
from tests.integration.model_server import ScriptedModel

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _variants() -> list[tuple[str, MetricTemplate]]:
    """Each template, and its history endpoint where it has one of its own."""
    out: list[tuple[str, MetricTemplate]] = []
    for template_id, template in sorted(load_templates().items()):
        out.append((template_id, template))
        if template.historical is not None:
            out.append((f"{template_id}/history", template.for_history()))
    return out


VARIANTS = _variants()


def _points(values: Any) -> list[DataPoint]:
    assert isinstance(values, list), values
    return [DataPoint.model_validate(p) for p in values]


@pytest.mark.parametrize(("name", "template"), VARIANTS, ids=[name for name, _ in VARIANTS])
async def test_typescript_and_python_give_the_same_points(
    services: Services,
    model: ScriptedModel,
    generator: OpenAICompatibleGenerator,
    name: str,
    template: MetricTemplate,
) -> None:
    params = {p: DEMO_PARAMS[p] for p in template.param_names}
    params.setdefault("FROM", "2026-01-01")
    params.setdefault("TO", "2026-01-31")
    sample, config = await fetch_sample(services, template, params)
    config = {**config, "fetched_at": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC).isoformat()}
    model.script(metric_code_ts(template))
    outcome = await generate_metric(
        services, generator, template, sample, config, language="typescript"
    )
    assert outcome.attempts == 1 and outcome.language == "typescript"
    assert "TypeScript" in model.requests[0]["messages"][0]["content"]
    javascript = outcome.compiled
    assert javascript is not None
    [python] = await services.sandbox.run(
        metric_code_for(template), "transform", [(sample, config)]
    )
    [typescript] = await services.sandbox.run(
        javascript, "transform", [(sample, config)], None, "javascript"
    )
    assert python.error is None, python.error
    assert typescript.error is None, typescript.error
    expected = _points(python.value)
    assert expected, f"{name}: the Python transformer found no points"
    assert _points(typescript.value) == expected


async def test_the_validated_typescript_is_proven_on_the_sample(services: Services) -> None:
    """Generation in TypeScript passes the same validation on its first attempt."""
    template = load_templates()["github-code-frequency"]
    sample, config = await fetch_sample(
        services, template, {p: DEMO_PARAMS[p] for p in template.param_names}
    )
    outcome = await generate_metric(
        services, OfflineGenerator(), template, sample, config, language="typescript"
    )
    assert outcome.attempts == 1 and "function transform(" in outcome.code
    assert len(outcome.output) == 52


class _TypoFirst(Generator):
    """Proposes a transformer with a type error, then the offline one: what a model that
    is told of its mistake does."""

    name = "typo-first"

    def __init__(self) -> None:
        self.feedback: list[list[str]] = []

    async def metric_code(self, task: MetricCodeTask) -> Proposal:
        self.feedback.append(list(task.feedback))
        code = metric_code_ts(task.template)
        if not task.feedback:
            code = code.replace("value: first,", 'value: "first",', 1)
        return Proposal(code, model_calls=1)

    async def chart_code(self, task: ChartCodeTask) -> Proposal:
        raise NotImplementedError


async def test_a_type_error_goes_back_to_the_generator(services: Services) -> None:
    template = load_templates()["github-repo-stars"]
    sample, config = await fetch_sample(
        services, template, {p: DEMO_PARAMS[p] for p in template.param_names}
    )
    bad = metric_code_ts(template).replace("value: first,", 'value: "first",', 1)
    with pytest.raises(InvalidCodeError, match="Type 'string' is not assignable to type 'number'"):
        await validate_metric_code(services, template, bad, sample, config, "typescript")
    generator = _TypoFirst()
    outcome = await generate_metric(
        services, generator, template, sample, config, language="typescript"
    )
    assert outcome.attempts == 2
    assert "TypeScript type check failed" in generator.feedback[1][0]
