// The design's contracts, as every TypeScript transformer is checked against them (strict
// mode). Global: a transformer is a script that defines `transform`; it needs no import.
// Kept in step with schema/models.py (DataPoint, ChartConfig), which validates the output.

/** A dimension's value: a JSON number, text, a boolean or null. */
type DimensionValue = string | number | boolean | null;

/** Any JSON value: what a snapshot's dimension holds (a sheet's rows). */
type JsonValue = DimensionValue | JsonValue[] | { [key: string]: JsonValue };

/** One time-series point, as a MetricTransformer returns it. */
interface DataPoint {
  /** ISO 8601 with a UTC offset, e.g. "2025-01-02T03:04:05Z". */
  timestamp: string;
  /** A finite JSON number (never a boolean or a numeric string). */
  value: number;
  dimensions?: Record<string, JsonValue> | null;
}

/** One point of the series a ChartTransformer receives (a rollup bucket, or a raw point
 * with each statistic its value and count 1). */
interface SeriesPoint {
  timestamp: string;
  /** The chart's aggregation of the bucket (null when the bucket has none). */
  value: number | null;
  count?: number | null;
  sum?: number | null;
  avg?: number | null;
  min?: number | null;
  max?: number | null;
  last?: number | null;
  /** Each numeric dimension under the chart's aggregation; other dimensions' last value. */
  dimensions?: Record<string, JsonValue> | null;
  /** count / sum / avg / min / max / last of each numeric dimension. */
  dimension_stats?: Record<string, Record<string, number | null>> | null;
}

type ChartType = "line" | "bar" | "area" | "pie" | "radar" | "radial" | "kpi";

/** How one data key is shown. */
interface SeriesStyle {
  label: string;
  /** var(--chart-1) … var(--chart-12) */
  color?: string | null;
}

/** A chart as the dashboard renders it. */
interface ChartConfig {
  chartType: ChartType;
  title: string;
  description?: string;
  xAxisKey: string;
  dataKeys: string[];
  chartData: Array<Record<string, DimensionValue>>;
  colors?: Record<string, string>;
  chartConfig?: Record<string, SeriesStyle> | null;
  xAxisLabel?: string | null;
  yAxisLabel?: string | null;
  showLegend?: boolean | null;
  showTooltip?: boolean | null;
  stacked?: boolean | null;
}

/** The metric's endpoint configuration (its parameters), as stored. */
type EndpointConfig = Record<string, unknown>;

/** The dashboard metric's chart preferences, as stored. */
type ChartPreferences = Record<string, unknown>;

/** transform(apiResponse, endpointConfig): the points of one payload. */
type MetricTransform = (apiResponse: any, endpointConfig: EndpointConfig) => DataPoint[];

/** transform(dataPoints, preferences): the chart of a series. */
type ChartTransform = (dataPoints: SeriesPoint[], preferences: ChartPreferences) => ChartConfig;

/** What the sandbox gives for printing (captured, capped, kept for debugging). */
declare function print(...values: unknown[]): void;
declare const console: {
  log(...values: unknown[]): void;
  info(...values: unknown[]): void;
  warn(...values: unknown[]): void;
  error(...values: unknown[]): void;
  debug(...values: unknown[]): void;
};
