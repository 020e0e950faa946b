"""The offline generator's code, run in-process (it is our own code, not a model's; the
sandbox runs it in production) against recorded real-shaped payloads."""

from __future__ import annotations

from typing import Any

from agents.generators.offline import chart_code_for, metric_code_for
from demo_api.github import repository
from schema.models import ChartConfig, DataPoint
from templates import load_templates


def _load(code: str) -> Any:
    namespace: dict[str, Any] = {}
    exec(compile(code, "<generated>", "exec"), namespace)
    return namespace["transform"]


def test_every_template_yields_a_transformer_that_parses() -> None:
    """The offline generator writes compilable code for every shipped template."""
    for template in load_templates().values():
        compile(metric_code_for(template), template.id, "exec")


def test_github_stars_transformer_extracts_value_and_dimensions() -> None:
    """On a GitHub repository payload: stars as the value, the rest as dimensions."""
    from datetime import UTC, datetime

    template = load_templates()["github-repo-stars"]
    payload = repository("octocat", "hello-world", datetime(2025, 6, 1, tzinfo=UTC))
    transform = _load(metric_code_for(template))
    out = transform(payload, {"fetched_at": "2025-06-01T00:00:00+00:00"})
    points = [DataPoint.model_validate(p) for p in out]
    assert len(points) == 1
    assert points[0].value == payload["stargazers_count"]
    assert points[0].dimensions == {
        "forks": payload["forks_count"],
        "open_issues": payload["open_issues_count"],
        "watchers": payload["subscribers_count"],
    }


def test_missing_value_yields_no_points() -> None:
    """An error body without the value gives an empty list, not a crash."""
    template = load_templates()["github-repo-stars"]
    transform = _load(metric_code_for(template))
    assert transform({"message": "Not Found"}, {"fetched_at": "2025-06-01T00:00:00+00:00"}) == []


def test_chart_transformer_output_is_a_valid_chart_config() -> None:
    """Each chart type's generated code returns a ChartConfig that validates."""
    series = [
        {"timestamp": f"2025-01-{d:02d}T00:00:00+00:00", "value": d * 1.5, "avg": d * 1.5}
        for d in range(1, 8)
    ]
    for chart_type in ("line", "bar", "area", "pie", "radar", "radial", "kpi"):
        transform = _load(chart_code_for(chart_type, "avg", "Stars"))
        config = ChartConfig.model_validate(transform(series, {"bucket_seconds": 86400}))
        assert config.chart_type == chart_type
        expected_rows = 1 if chart_type in ("kpi", "radial") else 7
        assert len(config.chart_data) == expected_rows
