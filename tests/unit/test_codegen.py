"""The offline generator's code, run in-process (it is our own code, not a model's; the
sandbox runs it in production) against recorded real-shaped payloads."""

from __future__ import annotations

from typing import Any

from agents.codegen import offline_chart_transformer, offline_metric_transformer
from demo_api.github import repository
from schema.models import ChartConfig, DashboardMetric, DataPoint
from templates import load_templates


def _load(code: str) -> Any:
    namespace: dict[str, Any] = {}
    exec(compile(code, "<generated>", "exec"), namespace)
    return namespace["transform"]


def test_every_template_yields_a_transformer_that_parses() -> None:
    """The offline generator writes compilable code for every shipped template."""
    for template in load_templates().values():
        transformer = offline_metric_transformer(template)
        compile(transformer.code, template.id, "exec")
        assert transformer.generator == "offline-v1"


def test_github_stars_transformer_extracts_value_and_dimensions() -> None:
    """On a GitHub repository payload: stars as the value, the rest as dimensions."""
    from datetime import UTC, datetime

    template = load_templates()["github-repo-stars"]
    payload = repository("octocat", "hello-world", datetime(2025, 6, 1, tzinfo=UTC))
    transform = _load(offline_metric_transformer(template).code)
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
    transform = _load(offline_metric_transformer(template).code)
    assert transform({"message": "Not Found"}, {"fetched_at": "2025-06-01T00:00:00+00:00"}) == []


def test_chart_transformer_output_is_a_valid_chart_config() -> None:
    """Each chart type's generated code returns a ChartConfig that validates."""
    import uuid

    series = [
        {"timestamp": f"2025-01-{d:02d}T00:00:00+00:00", "value": d * 1.5} for d in range(1, 8)
    ]
    for chart_type in ("line", "bar", "area", "pie", "radar", "radial", "kpi"):
        dm = DashboardMetric(
            id=uuid.uuid4(),
            organization_id="o",
            dashboard_id="d",
            metric_id=uuid.uuid4(),
            title="Stars",
            chart_type=chart_type,
            date_range_days=30,  # type: ignore[arg-type]
        )
        transform = _load(offline_chart_transformer(dm).code)
        config = ChartConfig.model_validate(transform(series, {"bucket_seconds": 86400}))
        assert config.chart_type == chart_type
        expected_rows = 1 if chart_type in ("kpi", "radial") else 7
        assert len(config.chart_data) == expected_rows
