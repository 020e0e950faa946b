// The read API and the commands endpoint, typed after dashboard/views.py (the OpenAPI
// document in dashboard/openapi.json describes the same shapes).

export type ChartType = "line" | "bar" | "area" | "pie" | "radar" | "radial" | "kpi";
export type Row = Record<string, string | number | boolean | null>;

export interface ChartConfig {
  chartType: ChartType;
  title: string;
  description: string;
  xAxisKey: string;
  dataKeys: string[];
  chartData: Row[];
  colors: Record<string, string>;
  chartConfig?: Record<string, { label: string; color?: string | null }>;
  xAxisLabel?: string;
  yAxisLabel?: string;
  showLegend?: boolean;
  showTooltip?: boolean;
  stacked?: boolean;
}

export interface Backfill {
  state: "fetched" | "written" | "failed";
  chunk: number | null;
  chunks: number | null;
  points: number;
  error: string | null;
}

export interface BackfillSummary {
  metric_id: string;
  state: "running" | "written" | "failed";
  chunks: number;
  chunks_written: number;
  points: number;
  error: string | null;
}

export interface MetricState {
  id: string;
  template_id: string;
  params: Record<string, string>;
  poll_frequency: string;
  status: string;
  last_fetched_at: string | null;
  last_error: string | null;
  failure_state: string;
  next_poll_at: string | null;
  backfill: Backfill | null;
  transformer_status: string | null;
  transformer_version: number | null;
}

export interface ChartView {
  dashboard_metric_id: string;
  dashboard_id: string;
  metric_id: string;
  title: string;
  chart_type: ChartType | null;
  date_range_days: number | null; // null: all time
  aggregation: string | null;
  chart_transformer_version: number | null;
  user_prompt: string | null;
  config: ChartConfig | null;
  config_at: string | null;
  metric: MetricState;
}

export interface DashboardView {
  id: string;
  charts: ChartView[];
}

export interface Template {
  id: string;
  name: string;
  description: string;
  provider: string;
  params: { name: string; pattern: string }[];
  default_poll_frequency: string;
  default_chart_type: ChartType;
  has_history: boolean;
}

export interface TransformerVersion {
  version: number;
  current: boolean;
  code: string;
  status: string | null;
  generator: string;
  language: "python" | "typescript";
  user_prompt: string | null;
  created_at: string | null;
}

export interface TransformerHistory {
  kind: "metric" | "chart";
  template_id: string | null;
  dashboard_metric_id: string | null;
  title: string | null;
  versions: TransformerVersion[];
}

export interface Alert {
  kind: string;
  message: string;
  at: string;
}

export interface DeadLetter {
  id: string;
  stage: string;
  error_type: string;
  error: string;
  failed_at: string;
}

export interface CommandAnswer {
  status: "accepted" | "rejected";
  error: string | null;
  metric_id: string | null;
  dashboard_metric_id: string | null;
}

export class ApiError extends Error {
  constructor(public status: number, message: string) {
    super(message);
  }
}

async function call<T>(path: string, init?: RequestInit): Promise<T> {
  const response = await fetch(path, {
    credentials: "same-origin",
    headers: { "Content-Type": "application/json" },
    ...init,
  });
  if (response.status === 401 && !path.endsWith("/api/login")) {
    window.location.assign(`/login?next=${encodeURIComponent(window.location.pathname)}`);
  }
  if (!response.ok) {
    let detail = response.statusText;
    try {
      const body = await response.json();
      detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
    } catch {
      /* not JSON: keep the status text */
    }
    throw new ApiError(response.status, detail);
  }
  return (response.status === 204 ? undefined : await response.json()) as T;
}

export const api = {
  login: (organization_id: string, password: string) =>
    call<{ organization_id: string }>("/api/login", {
      method: "POST",
      body: JSON.stringify({ organization_id, password }),
    }),
  logout: () => call<void>("/api/logout", { method: "POST" }),
  templates: () => call<Template[]>("/api/templates"),
  metrics: (org: string) => call<MetricState[]>(`/api/orgs/${org}/metrics`),
  metric: (org: string, id: string) => call<MetricState>(`/api/orgs/${org}/metrics/${id}`),
  dashboards: (org: string) => call<{ id: string; charts: number }[]>(`/api/orgs/${org}/dashboards`),
  dashboard: (org: string, id: string) =>
    call<DashboardView>(`/api/orgs/${org}/dashboards/${encodeURIComponent(id)}`),
  transformers: (org: string) => call<TransformerHistory[]>(`/api/orgs/${org}/transformers`),
  backfill: (org: string) => call<BackfillSummary[]>(`/api/orgs/${org}/backfill`),
  alerts: (org: string) => call<Alert[]>(`/api/orgs/${org}/alerts`),
  deadLetters: (org: string) => call<DeadLetter[]>(`/api/orgs/${org}/dead-letters`),
  command: (org: string, body: Record<string, unknown>) =>
    call<CommandAnswer>(`/api/orgs/${org}/commands`, { method: "POST", body: JSON.stringify(body) }),
};

export const FREQUENCIES = ["frequent", "hourly", "daily", "weekly", "manual"];
export const CHART_TYPES: ChartType[] = ["line", "bar", "area", "pie", "radar", "radial", "kpi"];

/** Dispatched on window after a chart is added, so the navigation lists its dashboard. */
export const DASHBOARDS_CHANGED = "metricloom:dashboards-changed";
