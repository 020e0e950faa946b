"""Which language a template's transformer is written in, and which code the sandbox runs
for a stored one."""

from __future__ import annotations

from agents.generation import language_for
from schema.models import MetricTransformer
from streams.settings import Settings
from templates import get_template


def test_the_template_overrides_the_deployment() -> None:
    template = get_template("github-repo-stars")
    assert language_for(Settings(transformer_language="python"), template) == "python"
    deployment = Settings(transformer_language="typescript")
    assert language_for(deployment, template) == "typescript"
    pinned = template.model_copy(update={"transformer_language": "python"})
    assert language_for(deployment, pinned) == "python"


def test_typescript_runs_its_compiled_javascript() -> None:
    template = get_template("github-commit-activity")
    stored = MetricTransformer(
        template_id=template.id,
        polling_endpoint=template.polling,
        code="function transform(a: any, c: EndpointConfig): DataPoint[] { return []; }",
        historical_code="function transform(a: any, c: EndpointConfig): DataPoint[] { return [] }",
        compiled_code="function transform(a, c) { return []; }",
        historical_compiled_code="function transform(a, c) { return [] }",
        generator="test",
        language="typescript",
    )
    assert stored.runnable() == ("function transform(a, c) { return []; }", "javascript")
    assert stored.runnable(historical=True) == (
        "function transform(a, c) { return [] }",
        "javascript",
    )
    python = stored.model_copy(update={"language": "python", "historical_code": None})
    assert python.runnable(historical=True) == (python.code, "python")
