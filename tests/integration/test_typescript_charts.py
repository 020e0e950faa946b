"""Chart transformers in TypeScript: the offline generator's TypeScript chart gives the same
config as its Python twin on the same series, for every chart type (each compiled by
``tsc`` in the sandbox, then run under QuickJS beside the Python in the same batch shape
the chart stage uses); a model's TypeScript chart with a type error is sent back like any
other rejection; and a chart's versions keep their own language, so a rollback across a
change of language runs what that version was proven as."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import pytest

from agents.generation import generate_chart
from agents.generators import ChartCodeTask
from agents.generators.offline import chart_code_for
from agents.generators.offline_ts import chart_code_ts
from agents.generators.openai_compatible import OpenAICompatibleGenerator
from agents.services import Services
from agents.validation import compile_typescript
from schema import catalog
from schema.models import ChartTransformer
from tests.integration.conftest import stored_metric
from tests.integration.model_server import ScriptedModel

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# One aggregation per chart type: together they take every branch of the code (kpi and
# radial keep the last row, bar and area may stack, "none" is described differently).
CHARTS = [
    ("line", "last"),
    ("bar", "sum"),
    ("area", "avg"),
    ("pie", "count"),
    ("radar", "max"),
    ("radial", "min"),
    ("kpi", "none"),
]


def _day(day: int, value: Any, **dimensions: Any) -> dict[str, Any]:
    return {
        "timestamp": f"2026-01-{day:02d}T05:06:07+00:00",
        "value": value,
        "count": 1,
        "dimensions": dimensions,
        "dimension_stats": {},
    }


# Ties that Python rounds to even and toFixed away from zero (x * 32 whole), large and
# negative values, integers, a bucket without a value, booleans (numbers to Python),
# a dimension named like a prototype member, text dimensions and a missing one; numbers
# past 2**53, which JavaScript prints in digits and Python with an exponent.
TIES = [
    0.03125,
    0.09375,
    -0.03125,
    0.15625,
    -2.5,
    1e20,
    8.783400807051069e18,
    2.0**53 + 2,
    123456.78905,
    7,
    None,
    -0.0,
    1 / 3,
]
SERIES = [_day(d + 1, v, forks=v if v is not None else 0) for d, v in enumerate(TIES)]
DIMENSIONS = [
    _day(1, 1.0, forks=3.00005, __proto__=2, flag=True, name="x", partial=1),
    _day(2, 2.0, forks=0.00015625, __proto__=-1.5, flag=False, name="y"),
]
INPUTS: list[tuple[list[dict[str, Any]], dict[str, Any]]] = [
    (SERIES, {"bucket_seconds": 86400, "granularity": "daily"}),
    (SERIES, {"bucket_seconds": 3600, "granularity": "hourly", "series_dimensions": ["forks"]}),
    (SERIES, {"bucket_seconds": 0, "granularity": "raw", "stacked": True}),
    (SERIES, {"granularity": "fortnightly", "stacked": []}),
    (
        DIMENSIONS,
        {
            "bucket_seconds": 604800,
            "granularity": "weekly",
            "series_dimensions": ["forks", "__proto__", "flag", "name", "partial", "absent"],
            "stacked": 1,
        },
    ),
    ([], {"bucket_seconds": 86400, "series_dimensions": ["forks"]}),
]


@pytest.mark.parametrize(("chart_type", "aggregation"), CHARTS)
async def test_typescript_and_python_draw_the_same_chart(
    services: Services, chart_type: str, aggregation: str
) -> None:
    title = 'Stars "and" forks \\ </script> \u2028 ✓'
    javascript = await compile_typescript(
        services, chart_code_ts(chart_type, aggregation, title), "ChartTransform"
    )
    python = await services.sandbox.run(
        chart_code_for(chart_type, aggregation, title), "transform", INPUTS
    )
    typescript = await services.sandbox.run(javascript, "transform", INPUTS, None, "javascript")
    for index, (py, ts) in enumerate(zip(python, typescript, strict=True)):
        assert py.error is None, (index, py.error)
        assert ts.error is None, (index, ts.error)
        assert ts.value == py.value, index
    first = python[0].value
    assert first["title"] == title and first["chartType"] == chart_type
    rows = [row["value"] for row in first["chartData"]]
    if chart_type not in ("kpi", "radial"):  # the ties, rounded as Python rounds them
        assert rows[:4] == [0.0312, 0.0938, -0.0312, 0.1562]
    weekly = python[4].value
    assert weekly["dataKeys"] == ["value", "forks", "__proto__", "flag"]
    assert "__proto__" in weekly["chartData"][-1]


async def test_a_chart_type_error_goes_back_to_the_model(
    services: Services, model: ScriptedModel, generator: OpenAICompatibleGenerator
) -> None:
    """The model is asked for TypeScript; its first chart returns a number as the title,
    which tsc refuses in the repair loop; its second is proven and compiled."""
    good = chart_code_ts("bar", "avg", "Stars")
    model.script(good.replace("title: TITLE,", "title: 42,", 1), good)
    series = [_day(d, float(d)) for d in range(1, 6)]
    task = ChartCodeTask("Stars", "bar", "avg", 30, "daily", series, language="typescript")
    outcome, config = await generate_chart(
        services, generator, task, {"bucket_seconds": 86400, "chart_type": "bar"}
    )
    assert outcome.attempts == 2 and outcome.language == "typescript"
    assert outcome.compiled is not None and "function transform(" in outcome.compiled
    assert config.chart_type == "bar" and len(config.chart_data) == 5
    assert "TypeScript" in model.requests[0]["messages"][0]["content"]
    retry = " ".join(m["content"] for m in model.requests[1]["messages"])
    assert "TypeScript type check failed" in retry
    assert "not assignable to type 'string'" in retry


async def test_chart_versions_keep_their_language(db_conn: Any) -> None:
    """A Python chart replaced by a TypeScript one: both versions are kept with their own
    language and code, and bringing the Python one back runs Python, not stale JavaScript."""
    metric = await stored_metric(db_conn, f"charts-{uuid4().hex[:8]}")
    dm_id = uuid4()
    await db_conn.execute(
        "INSERT INTO dashboard_metrics (id, organization_id, dashboard_id, metric_id, title)"
        " VALUES (%s, %s, 'd', %s, 'Stars')",
        (dm_id, metric.organization_id, metric.id),
    )
    python = ChartTransformer(
        dashboard_metric_id=dm_id,
        organization_id=metric.organization_id,
        code=chart_code_for("line", "last", "Stars"),
        chart_type="line",
        date_range_days=30,
        aggregation="last",
        generator="offline-v1",
    )
    typescript = python.model_copy(
        update={
            "code": chart_code_ts("line", "last", "Stars"),
            "language": "typescript",
            "compiled_code": "function transform(d, p) { return {}; }",
        }
    )
    assert await catalog.save_chart_transformer(db_conn, python) == 1
    assert await catalog.save_chart_transformer(db_conn, typescript) == 2
    org = metric.organization_id
    one = await catalog.get_chart_transformer_version(db_conn, dm_id, 1, org)
    two = await catalog.get_chart_transformer_version(db_conn, dm_id, 2, org)
    assert one is not None and one.runnable() == (python.code, "python")
    assert two is not None and two.runnable() == (typescript.compiled_code, "javascript")
    assert await catalog.save_chart_transformer(db_conn, one) == 3  # the rollback's write
    found = await catalog.get_chart(db_conn, dm_id, org)
    assert found is not None and found[1] is not None
    assert found[1].version == 3 and found[1].runnable() == (python.code, "python")
    with pytest.raises(Exception, match="chart_transformers_compiled"):
        await catalog.save_chart_transformer(
            db_conn, typescript.model_copy(update={"compiled_code": None})
        )
