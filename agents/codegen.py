"""Transformer code generation.

The design calls a model once per template (and once per chart) and never on the polling
path. This module holds the offline generator: with no model configured, it writes the
transformer from the template's declared extraction hints, deterministically, so the main
job runs with no internet and no key. Its output is ordinary transformer code: stored,
versioned and run in the sandbox exactly like a model's.
"""

from __future__ import annotations

from schema.models import ChartTransformer, DashboardMetric, MetricTemplate, MetricTransformer

OFFLINE = "offline-v1"

_METRIC_TEMPLATE = '''\
"""MetricTransformer for {template_id} (offline generator, from the template's hints)."""

VALUE_PATH = {value_path!r}
DIMENSION_PATHS = {dimension_paths!r}


def _get(obj, path):
    for part in path.split("."):
        if isinstance(obj, list):
            if not part.lstrip("-").isdigit() or not -len(obj) <= int(part) < len(obj):
                return None
            obj = obj[int(part)]
        elif isinstance(obj, dict):
            obj = obj.get(part)
        else:
            return None
        if obj is None:
            return None
    return obj


def _number(raw):
    if isinstance(raw, bool):
        return float(raw)
    if isinstance(raw, (int, float)):
        value = float(raw)
    elif isinstance(raw, str):
        try:
            value = float(raw.replace(",", "").strip())
        except ValueError:
            return None
    else:
        return None
    return value if value == value and value not in (float("inf"), float("-inf")) else None


def transform(api_response, endpoint_config):
    value = _number(_get(api_response, VALUE_PATH))
    if value is None:
        return []
    dimensions = {{}}
    for name, path in DIMENSION_PATHS.items():
        raw = _get(api_response, path)
        number = _number(raw)
        dimensions[name] = number if number is not None else (raw if isinstance(raw, str) else None)
    return [{{
        "timestamp": endpoint_config["fetched_at"],
        "value": value,
        "dimensions": dimensions,
    }}]
'''

_CHART_TEMPLATE = '''\
"""ChartTransformer (offline generator): {chart_type} chart of the metric's {aggregation}."""

CHART_TYPE = {chart_type!r}
TITLE = {title!r}
COLORS = ["var(--chart-%d)" % n for n in range(1, 13)]


def _label(timestamp, bucket_seconds):
    return timestamp[:13] + ":00" if bucket_seconds < 86400 else timestamp[:10]


def transform(data_points, preferences):
    bucket_seconds = preferences.get("bucket_seconds", 86400)
    rows = [
        {{"date": _label(p["timestamp"], bucket_seconds), "value": round(p["value"], 4)}}
        for p in data_points
        if p.get("value") is not None
    ]
    if CHART_TYPE in ("kpi", "radial"):
        rows = rows[-1:]
    description = preferences.get("description", "")
    if rows and CHART_TYPE == "kpi":
        description = "latest %s" % preferences.get("aggregation", "value")
    return {{
        "chartType": CHART_TYPE,
        "title": TITLE,
        "description": description,
        "xAxisKey": "date",
        "dataKeys": ["value"],
        "chartData": rows,
        "colors": {{"value": COLORS[0]}},
    }}
'''


def offline_metric_transformer(template: MetricTemplate) -> MetricTransformer:
    """A template's MetricTransformer written from its extraction hints."""
    code = _METRIC_TEMPLATE.format(
        template_id=template.id,
        value_path=template.hints.value_path,
        dimension_paths=dict(template.hints.dimension_paths),
    )
    return MetricTransformer(
        template_id=template.id,
        polling_endpoint=template.polling,
        historical_endpoint=template.historical,
        code=code,
        generator=OFFLINE,
    )


def offline_chart_transformer(dm: DashboardMetric) -> ChartTransformer:
    """A dashboard metric's ChartTransformer for its chart type and aggregation."""
    code = _CHART_TEMPLATE.format(
        chart_type=dm.chart_type, aggregation=dm.aggregation, title=dm.title
    )
    return ChartTransformer(
        dashboard_metric_id=dm.id,
        organization_id=dm.organization_id,
        code=code,
        chart_type=dm.chart_type,
        date_range_days=dm.date_range_days,
        aggregation=dm.aggregation,
        preferences={
            "chart_type": dm.chart_type,
            "date_range_days": dm.date_range_days,
            "aggregation": dm.aggregation,
        },
        generator=OFFLINE,
    )
