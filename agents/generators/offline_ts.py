"""The offline generator's TypeScript: the same transformers as ``offline.py`` writes in
Python, from the same template hints, for deployments and templates that choose TypeScript.

Each reads the payload exactly as its Python twin does (a test runs both over every shipped
template's sample and compares the points): where JavaScript and Python differ (a numeric
string, a dictionary key named like a prototype member, ``str(True)``, a zone-less ISO
time) the TypeScript spells out Python's behaviour. The code is checked by ``tsc`` in
strict mode against the design's interfaces before it is saved, like a model's.
"""

from __future__ import annotations

import json
from typing import Any

from schema.models import MetricTemplate

_METRIC_TEMPLATE = """\
// MetricTransformer for %(template_id)s (offline generator, from the template's hints).

const ROWS_PATH: string | null = %(rows_path)s;
const ROWS_KIND: string = %(rows_kind)s;
const SKIP_ROWS: number = %(skip_rows)s;
const SELECT: { path: string; equals: any } | null = %(select)s;
const VALUE_PATHS: Array<[string | null, string]> = %(value_paths)s;
const SERIES_LABEL: string | null = %(series_label)s;
const VALUE_MAP: Record<string, number> = %(value_map)s;
const TIMESTAMP: string = %(timestamp)s;
const TIMESTAMP_FORMAT: string = %(timestamp_format)s;
const UTC_OFFSET_PATH: string | null = %(utc_offset_path)s;
const DIMENSION_PATHS: Record<string, string> = %(dimension_paths)s;
const SNAPSHOT: boolean = %(snapshot)s;

const has = (obj: object, key: string): boolean => Object.prototype.hasOwnProperty.call(obj, key);
const isObject = (v: any): v is Record<string, any> =>
  v !== null && typeof v === "object" && !Array.isArray(v);
const DECIMAL = /^[+-]?(\\d+\\.?\\d*|\\.\\d+)([eE][+-]?\\d+)?$/;

function get(obj: any, path: string): any {
  if (path === "") return obj;
  for (const part of path.split(".")) {
    if (Array.isArray(obj)) {
      if (!/^-?\\d+$/.test(part)) return null;
      const index = Number(part);
      if (index < -obj.length || index >= obj.length) return null;
      obj = obj[index < 0 ? obj.length + index : index];
    } else if (isObject(obj)) {
      obj = has(obj, part) ? obj[part] : null;
    } else {
      return null;
    }
    if (obj === null || obj === undefined) return null;
  }
  return obj;
}

function number(raw: any): number | null {
  let value: number;
  if (typeof raw === "boolean") return raw ? 1 : 0;
  if (typeof raw === "number") {
    value = raw;
  } else if (typeof raw === "string") {
    const text = raw.replace(/,/g, "").trim();
    if (!DECIMAL.test(text)) return null;
    value = Number(text);
  } else {
    return null;
  }
  return Number.isFinite(value) ? value : null;
}

function valueOf(raw: any, path: string): number | null {
  if (typeof raw === "string" && has(VALUE_MAP, raw)) return Number(VALUE_MAP[raw]);
  const value = number(raw);
  if (value === null && Object.keys(VALUE_MAP).length > 0 && typeof raw === "string") {
    const known = Object.keys(VALUE_MAP).join(", ");
    throw new Error("value " + JSON.stringify(raw.slice(0, 80)) + " at " + path + " is not in value_map (" + known + ")");
  }
  return value;
}

function offset(minutes: number): string {
  const sign = minutes < 0 ? "-" : "+";
  const m = Math.abs(minutes);
  const pad = (n: number): string => (n < 10 ? "0" : "") + String(n);
  return sign + pad(Math.floor(m / 60)) + ":" + pad(m %% 60);
}

function zoneOf(apiResponse: any): string | null {
  if (UTC_OFFSET_PATH === null) return null;
  const raw = get(apiResponse, UTC_OFFSET_PATH);
  if (typeof raw === "number") return offset(Math.trunc(raw / 60));
  const text = raw === null ? "" : String(raw).trim();
  if (["UTC", "Z", "GMT"].indexOf(text.toUpperCase()) >= 0) return "+00:00";
  if (text.length === 6 && "+-".indexOf(text[0]) >= 0 && text[3] === ":") return text;
  throw new Error("utc offset " + JSON.stringify(text.slice(0, 40)) + " at " + UTC_OFFSET_PATH + " is neither seconds, +HH:MM nor UTC");
}

function timestampOf(row: any, endpointConfig: EndpointConfig, zone: string | null): string | null {
  if (TIMESTAMP === "fetched_at") return String(endpointConfig["fetched_at"]);
  const raw = get(row, TIMESTAMP);
  if (raw === null) return null;
  if (TIMESTAMP_FORMAT === "unix" || TIMESTAMP_FORMAT === "unix_ms") {
    const n = number(raw);
    if (n === null) return null;
    return new Date(TIMESTAMP_FORMAT === "unix_ms" ? n : n * 1000).toISOString();
  }
  let text = String(raw).trim();
  if (TIMESTAMP_FORMAT === "date" && text.length === 10) text = text + "T00:00:00";
  if (zone === null) return TIMESTAMP_FORMAT === "date" ? text + "+00:00" : text;
  if (/(Z|[+-]\\d\\d:?\\d\\d)$/i.test(text)) return text;
  if (/^\\d{4}-\\d\\d-\\d\\d$/.test(text)) text = text + "T00:00:00";
  if (/T\\d\\d:\\d\\d$/.test(text)) text = text + ":00";
  return text + zone;
}

function same(found: any, wanted: any): boolean {
  if (typeof found === "boolean" || typeof wanted === "boolean") return found === wanted;
  if (typeof found !== typeof wanted) return false;
  return typeof found === "object" ? JSON.stringify(found) === JSON.stringify(wanted) : found === wanted;
}

function rowsOf(apiResponse: any): any[] {
  if (ROWS_PATH === null) return [apiResponse];
  const found = get(apiResponse, ROWS_PATH);
  let rows: any[];
  if (ROWS_KIND === "columns") {
    if (!isObject(found)) return [];
    const columns: Record<string, any[]> = {};
    for (const name of Object.keys(found)) if (Array.isArray(found[name])) columns[name] = found[name];
    const lengths = Object.keys(columns).map((name) => columns[name].length);
    if (new Set(lengths).size > 1) throw new Error("the arrays at " + ROWS_PATH + " differ in length");
    const count = lengths.length ? Math.max(...lengths) : 0;
    rows = [];
    for (let i = 0; i < count; i++) {
      const row: Record<string, any> = {};
      for (const name of Object.keys(columns)) row[name] = columns[name][i];
      rows.push(row);
    }
  } else if (ROWS_KIND === "mapping") {
    if (!isObject(found)) return [];
    rows = Object.keys(found).map((key) => {
      const entry = found[key];
      const row: Record<string, any> = isObject(entry) ? { ...entry } : { "@value": entry };
      row["@key"] = key;
      return row;
    });
  } else {
    rows = Array.isArray(found) ? found : [];
  }
  rows = rows.slice(SKIP_ROWS);
  if (SELECT !== null) {
    const select = SELECT;
    rows = rows.filter((row) => same(get(row, select.path), select.equals));
  }
  return rows;
}

function label(raw: any): string {
  return typeof raw === "boolean" ? (raw ? "True" : "False") : String(raw);
}

function transform(apiResponse: any, endpointConfig: EndpointConfig): DataPoint[] {
  if (SNAPSHOT) {  // one point of all the rows, stamped at the poll
    const rows = rowsOf(apiResponse);
    return [{ timestamp: String(endpointConfig["fetched_at"]), value: rows.length, dimensions: { rows: rows } }];
  }
  const zone = zoneOf(apiResponse);
  const points: DataPoint[] = [];
  const byTimestamp: Record<string, DataPoint> = {};
  for (const row of rowsOf(apiResponse)) {
    const timestamp = timestampOf(row, endpointConfig, zone);
    if (timestamp === null) continue;
    const dimensions: Record<string, DimensionValue> = {};
    for (const name of Object.keys(DIMENSION_PATHS)) {
      const raw = get(row, DIMENSION_PATHS[name]);
      const n = number(raw);
      dimensions[name] = n !== null ? n : typeof raw === "string" ? raw : null;
    }
    const values = VALUE_PATHS.map(([name, path]): [string | null, number | null] => [name, valueOf(get(row, path), path)]);
    const first = values[0][1];
    if (first === null) continue;
    if (values[0][0] !== null) {
      for (const [name, value] of values) dimensions[String(name)] = value;
    }
    if (SERIES_LABEL === null) {
      points.push({ timestamp: timestamp, value: first, dimensions: dimensions });
      continue;
    }
    const series = get(row, SERIES_LABEL);
    if (series === null) continue;
    let point = has(byTimestamp, timestamp) ? byTimestamp[timestamp] : undefined;
    if (point === undefined) {
      point = byTimestamp[timestamp] = { timestamp: timestamp, value: first, dimensions: dimensions };
      points.push(point);
    }
    (point.dimensions as Record<string, DimensionValue>)[label(series)] = first;
  }
  return points;
}
"""


_CHART_TEMPLATE = """\
// ChartTransformer (offline generator): a %(chart_type_js)s chart of the metric's %(aggregation_js)s.

const CHART_TYPE: ChartType = %(chart_type_js)s;
const AGGREGATE: string = %(aggregation_js)s;
const TITLE: string = %(title)s;
const COLORS: string[] = Array.from({ length: 12 }, (_, i) => "var(--chart-" + (i + 1) + ")");
const UNITS: Record<string, string> = {
  raw: "point", hourly: "hour", daily: "day", weekly: "week", monthly: "month",
};

const has = (obj: object, key: string): boolean => Object.prototype.hasOwnProperty.call(obj, key);
const isObject = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === "object" && !Array.isArray(v);
// Python's isinstance(v, (int, float)): a bool is an int there.
const isNumber = (v: unknown): boolean => typeof v === "number" || typeof v === "boolean";
// Python's truthiness, for a preference flag.
const truthy = (v: unknown): boolean =>
  Array.isArray(v) ? v.length > 0 : isObject(v) ? Object.keys(v).length > 0 : Boolean(v);

// Python's round(x, 4): toFixed rounds the exact binary value as Python does, but a tie
// (possible only when x has at most five decimals, that is x * 32 is whole) goes away
// from zero there and to the even digit in Python.
function round4(x: number): number {
  if (Math.abs(x) < 1e15 && Number.isInteger(x * 32)) {
    const exact = x.toFixed(5);
    const down = exact.slice(0, -1);
    if (exact.endsWith("5") && Number(down.charAt(down.length - 1)) %% 2 === 0) return Number(down);
  }
  return Number(x.toFixed(4));
}

function label(timestamp: string, bucketSeconds: number): string {
  if (bucketSeconds < 3600) return timestamp.slice(0, 16);  // raw points: to the minute
  return bucketSeconds < 86400 ? timestamp.slice(0, 13) + ":00" : timestamp.slice(0, 10);
}

function transform(dataPoints: SeriesPoint[], preferences: ChartPreferences): ChartConfig {
  const bucketSeconds = has(preferences, "bucket_seconds")
    ? (preferences["bucket_seconds"] as number) : 86400;
  const wanted = has(preferences, "series_dimensions")
    ? (preferences["series_dimensions"] as string[]) : [];
  // A name that is not text is found in no point (Python's dict.get), drawn only when
  // there are none.
  const series = wanted.filter((name) => dataPoints.every((p) =>
    typeof name === "string" && isObject(p.dimensions) && has(p.dimensions, name) && isNumber(p.dimensions[name])));
  let rows: Array<Record<string, DimensionValue>> = [];
  for (const p of dataPoints) {
    if (p.value === null || p.value === undefined) continue;  // the bucket's AGGREGATE
    const row: Array<[string, DimensionValue]> = [
      ["date", label(p.timestamp, bucketSeconds)], ["value", round4(p.value)],
    ];
    for (const name of series) row.push([name, round4(Number((p.dimensions as Record<string, unknown>)[name]))]);
    rows.push(Object.fromEntries(row));  // a data property even for a key like __proto__
  }
  if (CHART_TYPE === "kpi" || CHART_TYPE === "radial") rows = rows.slice(-1);
  const keys = ["value", ...series];
  const granularity = preferences["granularity"];
  const unit = typeof granularity === "string" && has(UNITS, granularity) ? UNITS[granularity] : "bucket";
  const config: ChartConfig = {
    chartType: CHART_TYPE,
    title: TITLE,
    description: AGGREGATE === "none" ? "every point" : AGGREGATE + " per " + unit,
    xAxisKey: "date",
    dataKeys: keys,
    chartData: rows,
    colors: Object.fromEntries(keys.map((key, i) => [key, COLORS[i %% 12]])),
  };
  if (truthy(preferences["stacked"]) && (CHART_TYPE === "bar" || CHART_TYPE === "area")) {
    config.stacked = true;
  }
  return config;
}
"""


def _js(value: Any) -> str:
    """A JSON value as a TypeScript literal."""
    return json.dumps(value, ensure_ascii=False)


def metric_code_ts(template: MetricTemplate) -> str:
    """A template's MetricTransformer in TypeScript, written from its extraction hints."""
    hints = template.hints
    return _METRIC_TEMPLATE % {
        "template_id": template.id,
        "rows_path": _js(hints.rows_path),
        "rows_kind": _js(hints.rows_kind),
        "skip_rows": _js(hints.skip_rows),
        "select": _js(hints.select.model_dump() if hints.select is not None else None),
        "value_paths": _js([list(item) for item in hints.value_paths().items()]),
        "series_label": _js(hints.series_label),
        "value_map": _js(dict(hints.value_map)),
        "timestamp": _js(hints.timestamp),
        "timestamp_format": _js(hints.timestamp_format),
        "utc_offset_path": _js(hints.utc_offset_path),
        "dimension_paths": _js(dict(hints.dimension_paths)),
        "snapshot": _js(hints.snapshot),
    }


def chart_code_ts(chart_type: str, aggregation: str, title: str) -> str:
    """A ChartTransformer in TypeScript drawing ``aggregation`` per bucket as a
    ``chart_type`` chart: ``offline.chart_code_for``'s twin (the title, untrusted, only ever
    inside a JSON string literal)."""
    return _CHART_TEMPLATE % {
        # ASCII JSON: no line terminator (U+2028) can end the header comment or a literal
        "chart_type_js": json.dumps(chart_type),
        "aggregation_js": json.dumps(aggregation),
        "title": json.dumps(title),
    }
