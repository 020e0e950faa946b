"""The offline generator: deterministic transformer code, no model, no network.

Metric transformers are written from the template's extraction hints (where the value and
the dimensions are in the payload); chart transformers from the chart's preferences, and
a plain-words change request is read for a chart type, an aggregation and a date range.
The code it writes goes through the same validation as a model's.
"""

from __future__ import annotations

import re

from agents.generators import ChartCodeTask, Generator, MetricCodeTask, Proposal
from schema.models import MetricTemplate

_METRIC_TEMPLATE = '''\
"""MetricTransformer for {template_id} (offline generator, from the template's hints)."""

from datetime import datetime, timezone

ROWS_PATH = {rows_path!r}
SKIP_ROWS = {skip_rows!r}
VALUE_PATH = {value_path!r}
TIMESTAMP = {timestamp!r}
TIMESTAMP_FORMAT = {timestamp_format!r}
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


def _timestamp(row, endpoint_config):
    if TIMESTAMP == "fetched_at":
        return endpoint_config["fetched_at"]
    raw = _get(row, TIMESTAMP)
    if raw is None:
        return None
    if TIMESTAMP_FORMAT == "unix":
        seconds = _number(raw)
        if seconds is None:
            return None
        return datetime.fromtimestamp(seconds, tz=timezone.utc).isoformat()
    text = str(raw).strip()
    if TIMESTAMP_FORMAT == "date" and len(text) == 10:
        return text + "T00:00:00+00:00"
    return text


def _rows(api_response):
    if ROWS_PATH is None:
        return [api_response]
    rows = api_response if ROWS_PATH == "" else _get(api_response, ROWS_PATH)
    return rows[SKIP_ROWS:] if isinstance(rows, list) else []


def transform(api_response, endpoint_config):
    points = []
    for row in _rows(api_response):
        value = _number(_get(row, VALUE_PATH))
        timestamp = _timestamp(row, endpoint_config)
        if value is None or timestamp is None:
            continue
        dimensions = {{}}
        for name, path in DIMENSION_PATHS.items():
            raw = _get(row, path)
            number = _number(raw)
            dimensions[name] = number if number is not None else (raw if isinstance(raw, str) else None)
        points.append({{"timestamp": timestamp, "value": value, "dimensions": dimensions}})
    return points
'''

_CHART_TEMPLATE = '''\
"""ChartTransformer (offline generator): {chart_type} chart of the metric's {aggregation}."""

CHART_TYPE = {chart_type!r}
AGGREGATE = {aggregation!r}
TITLE = {title!r}
COLORS = ["var(--chart-%d)" % n for n in range(1, 13)]


def _label(timestamp, bucket_seconds):
    return timestamp[:13] + ":00" if bucket_seconds < 86400 else timestamp[:10]


def transform(data_points, preferences):
    bucket_seconds = preferences.get("bucket_seconds", 86400)
    series = [
        name for name in preferences.get("series_dimensions", [])
        if all(isinstance((p.get("dimensions") or {{}}).get(name), (int, float)) for p in data_points)
    ]
    rows = []
    for p in data_points:
        if p.get(AGGREGATE) is None:
            continue
        row = {{"date": _label(p["timestamp"], bucket_seconds), "value": round(p[AGGREGATE], 4)}}
        for name in series:
            row[name] = round(float(p["dimensions"][name]), 4)
        rows.append(row)
    if CHART_TYPE in ("kpi", "radial"):
        rows = rows[-1:]
    keys = ["value"] + series
    return {{
        "chartType": CHART_TYPE,
        "title": TITLE,
        "description": "%s per %s" % (AGGREGATE, preferences.get("granularity", "bucket")),
        "xAxisKey": "date",
        "dataKeys": keys,
        "chartData": rows,
        "colors": {{key: COLORS[i % 12] for i, key in enumerate(keys)}},
    }}
'''

CHART_WORDS = ("line", "bar", "area", "pie", "radar", "radial", "kpi")
AGGREGATION_WORDS = {
    "average": "avg",
    "averages": "avg",
    "mean": "avg",
    "avg": "avg",
    "total": "sum",
    "totals": "sum",
    "sum": "sum",
    "sums": "sum",
    "maximum": "max",
    "max": "max",
    "peak": "max",
    "minimum": "min",
    "min": "min",
    "count": "count",
    "latest": "last",
    "last": "last",
}


def read_change_request(text: str, chart_type: str, aggregation: str) -> tuple[str, str]:
    """The chart type and aggregation a plain-words request asks for (unchanged if silent)."""
    words = re.findall(r"[a-z]+", text.lower())
    for word in words:
        if word in CHART_WORDS:
            chart_type = word
        elif word in AGGREGATION_WORDS:
            aggregation = AGGREGATION_WORDS[word]
    return chart_type, aggregation


def metric_code_for(template: MetricTemplate) -> str:
    """A template's MetricTransformer, written from its extraction hints."""
    hints = template.hints
    return _METRIC_TEMPLATE.format(
        template_id=template.id,
        rows_path=hints.rows_path,
        skip_rows=hints.skip_rows,
        value_path=hints.value_path,
        timestamp=hints.timestamp,
        timestamp_format=hints.timestamp_format,
        dimension_paths=dict(hints.dimension_paths),
    )


def chart_code_for(chart_type: str, aggregation: str, title: str) -> str:
    """A ChartTransformer drawing ``aggregation`` per bucket as a ``chart_type`` chart."""
    return _CHART_TEMPLATE.format(chart_type=chart_type, aggregation=aggregation, title=title)


class OfflineGenerator(Generator):
    name = "offline-v1"

    async def metric_code(self, task: MetricCodeTask) -> Proposal:
        return Proposal(metric_code_for(task.template), model_calls=0, notes="template hints")

    async def chart_code(self, task: ChartCodeTask) -> Proposal:
        chart_type, aggregation = task.chart_type, task.aggregation
        if task.user_prompt:
            chart_type, aggregation = read_change_request(task.user_prompt, chart_type, aggregation)
        code = chart_code_for(chart_type, aggregation, task.title)
        return Proposal(code, model_calls=0, notes=f"{chart_type} of {aggregation}")
