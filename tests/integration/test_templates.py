"""Every shipped template, over real HTTP against the demo API: the offline generator's
transformer passes validation in the sandbox on its first attempt and extracts the values
the provider's answer holds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from agents.fetch_client import fetch_payload, request_for
from agents.generation import fetch_sample, generate_metric
from agents.generators.offline import OfflineGenerator, chart_code_for
from agents.generators.offline_ts import chart_code_ts
from agents.services import Services
from agents.validation import validate_chart_code
from schema.models import DataPoint
from templates import load_templates
from tests.conftest import DEMO_PARAMS

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PARAMS = DEMO_PARAMS
EXPECTED_POINTS = {
    "github-code-frequency": 52,
    "posthog-events": 2,
    "sheets-column": 30,
    "open-meteo-temperature": 48,
    "coingecko-coin-price": 289,
}


async def _sample(services: Services, template_id: str) -> tuple[Any, dict[str, Any]]:
    template = load_templates()[template_id]
    return await fetch_sample(services, template, {p: PARAMS[p] for p in template.param_names})


@pytest.mark.parametrize("template_id", sorted(load_templates()))
async def test_offline_transformer_extracts_every_template(
    services: Services, template_id: str
) -> None:
    """First attempt passes; the points carry the provider's values and timestamps."""
    template = load_templates()[template_id]
    sample, config = await _sample(services, template_id)
    outcome = await generate_metric(
        services, OfflineGenerator(), template, sample, config, "python"
    )
    assert outcome.attempts == 1
    points = [DataPoint.model_validate(p) for p in outcome.output]
    assert len(points) == EXPECTED_POINTS.get(template_id, 1)
    assert len({p.timestamp for p in points}) == len(points)
    if template_id == "youtube-video-views":
        stats = sample["items"][0]["statistics"]
        assert points[0].value == float(stats["viewCount"])
        assert points[0].dimensions == {
            "likes": float(stats["likeCount"]),
            "comments": float(stats["commentCount"]),
        }
    if template_id == "github-code-frequency":
        assert [p.value for p in points] == [float(w[1]) for w in sample]
        assert [p.dimensions["deletions"] for p in points] == [float(w[2]) for w in sample]
        assert points[0].timestamp == datetime.fromtimestamp(sample[0][0], tz=UTC)
    if template_id == "sheets-column":
        assert points[-1].value == float(sample["values"][-1][1].replace(",", ""))
        assert points[-1].dimensions["region"] == sample["values"][-1][2]
        assert not template.is_time_series
    if template_id == "sheets-snapshot":  # one point of all the rows, stamped at the poll
        assert points[0].value == len(sample["values"]) - 1
        assert points[0].dimensions == {"rows": sample["values"][1:]}
        assert points[0].timestamp == datetime.fromisoformat(config["fetched_at"])
    if template_id == "posthog-events":
        assert [p.value for p in points] == [float(r[1]) for r in sample["results"]]


@pytest.mark.parametrize("language", ["python", "typescript"])
async def test_code_frequency_draws_a_multi_line_chart(services: Services, language: str) -> None:
    """Dimensions the template names become extra series of the chart, in either language."""
    write = chart_code_ts if language == "typescript" else chart_code_for
    series = [
        {
            "timestamp": f"2026-01-{d:02d}T00:00:00+00:00",
            "last": float(d * 10),
            "value": float(d * 10),
            "dimensions": {"deletions": -float(d)},
        }
        for d in range(1, 8)
    ]
    config, compiled = await validate_chart_code(
        services,
        write("line", "last", "Code frequency"),
        series,
        {"bucket_seconds": 604800, "series_dimensions": ["deletions"]},
        "typescript" if language == "typescript" else "python",
    )
    assert (compiled is not None) == (language == "typescript")
    assert config.data_keys == ["value", "deletions"]
    assert config.colors == {"value": "var(--chart-1)", "deletions": "var(--chart-2)"}
    assert config.chart_data[-1] == {"date": "2026-01-07", "value": 70.0, "deletions": -7.0}


@pytest.mark.parametrize(
    ("template_id", "separate", "points"),
    [("github-commit-activity", True, 52), ("posthog-events", False, 90)],
)
async def test_historical_endpoints_get_their_own_transformer_only_when_shaped_differently(
    services: Services, template_id: str, separate: bool, points: int
) -> None:
    """Commit activity's history (weekly rows) differs from its polling answer
    (participation counts): it gets its own transformer. PostHog's history is the same
    shape with a longer date_from: the polling transformer reads it."""
    from agents.generation import shape

    template = load_templates()[template_id]
    history = template.for_history()
    polling_sample, _ = await _sample(services, template_id)
    params = {p: PARAMS[p] for p in template.param_names}
    today = datetime.now(UTC).date()
    params.update(FROM=(today - timedelta(days=points - 1)).isoformat(), TO=today.isoformat())
    history_sample = await fetch_payload(
        services.http, request_for(services.settings, history, history.polling, params)
    )
    assert (shape(history_sample) != shape(polling_sample)) is separate
    config = {"fetched_at": datetime.now(UTC).isoformat()}
    outcome = await generate_metric(
        services, OfflineGenerator(), history, history_sample, config, "python"
    )
    assert len(outcome.output) == points
