"""The offline generator: deterministic transformer code, no model, no network.

Metric transformers are written from the template's extraction hints (where the value and
the dimensions are in the payload); chart transformers from the chart's preferences, and
a plain-words change request is read for a chart type, an aggregation and a date range.
The code it writes goes through the same validation as a model's.
"""

from __future__ import annotations

from agents.generators import ChartCodeTask, Generator, MetricCodeTask, Proposal
from agents.generators.offline_ts import chart_code_ts, metric_code_ts
from schema.models import MetricTemplate

_METRIC_TEMPLATE = '''\
"""MetricTransformer for {template_id} (offline generator, from the template's hints)."""

from datetime import datetime, timedelta, timezone

ROWS_PATH = {rows_path!r}
ROWS_KIND = {rows_kind!r}
SKIP_ROWS = {skip_rows!r}
SELECT = {select!r}
VALUE_PATHS = {value_paths!r}
SERIES_LABEL = {series_label!r}
VALUE_MAP = {value_map!r}
TIMESTAMP = {timestamp!r}
TIMESTAMP_FORMAT = {timestamp_format!r}
UTC_OFFSET_PATH = {utc_offset_path!r}
DIMENSION_PATHS = {dimension_paths!r}
SNAPSHOT = {snapshot!r}


def _get(obj, path):
    if path == "":
        return obj
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


def _value(raw, path):
    if isinstance(raw, str) and raw in VALUE_MAP:
        return float(VALUE_MAP[raw])
    value = _number(raw)
    if value is None and VALUE_MAP and isinstance(raw, str):
        raise ValueError("value %r at %s is not in value_map (%s)" % (raw[:80], path, ", ".join(VALUE_MAP)))
    return value


def _zone(api_response):
    if UTC_OFFSET_PATH is None:
        return None
    raw = _get(api_response, UTC_OFFSET_PATH)
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        return timezone(timedelta(seconds=raw))
    text = str(raw).strip() if raw is not None else ""
    if text.upper() in ("UTC", "Z", "GMT"):
        return timezone.utc
    if len(text) == 6 and text[0] in "+-" and text[3] == ":":
        minutes = int(text[1:3]) * 60 + int(text[4:6])
        return timezone(timedelta(minutes=minutes if text[0] == "+" else -minutes))
    raise ValueError("utc offset %r at %s is neither seconds, +HH:MM nor UTC" % (text[:40], UTC_OFFSET_PATH))


def _timestamp(row, endpoint_config, zone):
    if TIMESTAMP == "fetched_at":
        return endpoint_config["fetched_at"]
    raw = _get(row, TIMESTAMP)
    if raw is None:
        return None
    if TIMESTAMP_FORMAT in ("unix", "unix_ms"):
        number = _number(raw)
        if number is None:
            return None
        seconds = number / 1000 if TIMESTAMP_FORMAT == "unix_ms" else number
        return datetime.fromtimestamp(seconds, tz=timezone.utc).isoformat()
    text = str(raw).strip()
    if TIMESTAMP_FORMAT == "date" and len(text) == 10:
        text = text + "T00:00:00"
    if zone is None:
        return text + "+00:00" if TIMESTAMP_FORMAT == "date" else text
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=zone)
    return parsed.isoformat()


def _rows(api_response):
    if ROWS_PATH is None:
        return [api_response]
    found = _get(api_response, ROWS_PATH)
    if ROWS_KIND == "columns":
        if not isinstance(found, dict):
            return []
        columns = {{name: items for name, items in found.items() if isinstance(items, list)}}
        lengths = {{name: len(items) for name, items in columns.items()}}
        if len(set(lengths.values())) > 1:
            raise ValueError("the arrays at %r differ in length: %r" % (ROWS_PATH, lengths))
        count = max(lengths.values(), default=0)
        rows = [{{name: items[i] for name, items in columns.items()}} for i in range(count)]
    elif ROWS_KIND == "mapping":
        if not isinstance(found, dict):
            return []
        rows = []
        for key, entry in found.items():
            row = dict(entry) if isinstance(entry, dict) else {{"@value": entry}}
            row["@key"] = key
            rows.append(row)
    else:
        rows = found if isinstance(found, list) else []
    rows = rows[SKIP_ROWS:]
    if SELECT is not None:
        rows = [row for row in rows if _same(_get(row, SELECT["path"]), SELECT["equals"])]
    return rows


def _same(found, wanted):
    if isinstance(found, bool) or isinstance(wanted, bool):
        return found is wanted
    numbers = isinstance(found, (int, float)) and isinstance(wanted, (int, float))
    return found == wanted and (numbers or type(found) is type(wanted))


def transform(api_response, endpoint_config):
    if SNAPSHOT:  # one point of all the rows, stamped at the poll
        rows = _rows(api_response)
        return [{{"timestamp": endpoint_config["fetched_at"], "value": float(len(rows)), "dimensions": {{"rows": rows}}}}]
    zone = _zone(api_response)
    points = []
    by_timestamp = {{}}
    for row in _rows(api_response):
        timestamp = _timestamp(row, endpoint_config, zone)
        if timestamp is None:
            continue
        dimensions = {{}}
        for name, path in DIMENSION_PATHS.items():
            raw = _get(row, path)
            number = _number(raw)
            dimensions[name] = number if number is not None else (raw if isinstance(raw, str) else None)
        values = [(label, _value(_get(row, path), path)) for label, path in VALUE_PATHS]
        if values[0][1] is None:
            continue
        if values[0][0] is not None:  # several series of a row: each a labelled dimension
            dimensions.update(values)
        if SERIES_LABEL is None:
            points.append({{"timestamp": timestamp, "value": values[0][1], "dimensions": dimensions}})
            continue
        label = _get(row, SERIES_LABEL)
        if label is None:
            continue
        point = by_timestamp.get(timestamp)
        if point is None:  # the first row of a timestamp gives the point its value
            point = by_timestamp[timestamp] = {{"timestamp": timestamp, "value": values[0][1], "dimensions": dimensions}}
            points.append(point)
        point["dimensions"][str(label)] = values[0][1]
    return points
'''

_CHART_TEMPLATE = '''\
"""ChartTransformer (offline generator): {chart_type} chart of the metric's {aggregation}."""

CHART_TYPE = {chart_type!r}
AGGREGATE = {aggregation!r}
TITLE = {title!r}
COLORS = ["var(--chart-%d)" % n for n in range(1, 13)]
UNITS = {{"raw": "point", "hourly": "hour", "daily": "day", "weekly": "week", "monthly": "month"}}


def _label(timestamp, bucket_seconds):
    if bucket_seconds < 3600:  # raw points: to the minute
        return timestamp[:16]
    return timestamp[:13] + ":00" if bucket_seconds < 86400 else timestamp[:10]


def transform(data_points, preferences):
    bucket_seconds = preferences.get("bucket_seconds", 86400)
    series = [
        name for name in preferences.get("series_dimensions", [])
        if all(isinstance((p.get("dimensions") or {{}}).get(name), (int, float)) for p in data_points)
    ]
    rows = []
    for p in data_points:
        if p.get("value") is None:  # the bucket's AGGREGATE (the point itself, for none)
            continue
        row = {{"date": _label(p["timestamp"], bucket_seconds), "value": round(p["value"], 4)}}
        for name in series:
            row[name] = round(float(p["dimensions"][name]), 4)
        rows.append(row)
    if CHART_TYPE in ("kpi", "radial"):
        rows = rows[-1:]
    keys = ["value"] + series
    config = {{
        "chartType": CHART_TYPE,
        "title": TITLE,
        "description": "every point" if AGGREGATE == "none" else "%s per %s" % (AGGREGATE, UNITS.get(preferences.get("granularity"), "bucket")),
        "xAxisKey": "date",
        "dataKeys": keys,
        "chartData": rows,
        "colors": {{key: COLORS[i % 12] for i, key in enumerate(keys)}},
    }}
    if preferences.get("stacked") and CHART_TYPE in ("bar", "area"):
        config["stacked"] = True
    return config
'''


def metric_code_for(template: MetricTemplate) -> str:
    """A template's MetricTransformer, written from its extraction hints."""
    hints = template.hints
    return _METRIC_TEMPLATE.format(
        template_id=template.id,
        rows_path=hints.rows_path,
        rows_kind=hints.rows_kind,
        skip_rows=hints.skip_rows,
        select=hints.select.model_dump() if hints.select is not None else None,
        value_paths=list(hints.value_paths().items()),
        series_label=hints.series_label,
        value_map=dict(hints.value_map),
        timestamp=hints.timestamp,
        timestamp_format=hints.timestamp_format,
        utc_offset_path=hints.utc_offset_path,
        dimension_paths=dict(hints.dimension_paths),
        snapshot=hints.snapshot,
    )


def chart_code_for(chart_type: str, aggregation: str, title: str) -> str:
    """A ChartTransformer drawing ``aggregation`` per bucket as a ``chart_type`` chart."""
    return _CHART_TEMPLATE.format(chart_type=chart_type, aggregation=aggregation, title=title)


def metric_code_in(template: MetricTemplate, language: str) -> str:
    """The offline MetricTransformer for ``template`` in ``language`` (its TypeScript
    twin is ``offline_ts.metric_code_ts``)."""
    return metric_code_ts(template) if language == "typescript" else metric_code_for(template)


def chart_code_in(chart_type: str, aggregation: str, title: str, language: str) -> str:
    """The offline ChartTransformer in ``language`` (its TypeScript twin is
    ``offline_ts.chart_code_ts``)."""
    write = chart_code_ts if language == "typescript" else chart_code_for
    return write(chart_type, aggregation, title)


class OfflineGenerator(Generator):
    name = "offline-v1"

    async def metric_code(self, task: MetricCodeTask) -> Proposal:
        code = metric_code_in(task.template, task.language)
        return Proposal(code, model_calls=0, notes="template hints")

    async def chart_code(self, task: ChartCodeTask) -> Proposal:
        # A change request's words were read into the task's settings by the command stage.
        chart_type, aggregation = task.chart_type, task.aggregation
        code = chart_code_in(chart_type, aggregation, task.title, task.language)
        return Proposal(code, model_calls=0, notes=f"{chart_type} of {aggregation}")
