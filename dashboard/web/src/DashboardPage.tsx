import { useCallback, useEffect, useState } from "react";
import { Chart } from "./Chart";
import { CHART_TYPES, DASHBOARDS_CHANGED, FREQUENCIES, api } from "./api";
import type { ChartView, CommandAnswer, MetricState } from "./api";
import { useLive } from "./live";

function ago(iso: string | null, now: number): string {
  if (!iso) return "never";
  const seconds = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (seconds < 60) return `${seconds} s ago`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.round(seconds / 3600)} h ago`;
  return `${Math.round(seconds / 86400)} d ago`;
}

function problemOf(metric: MetricState): string | null {
  if (metric.transformer_status === "failed") {
    return `transformer failed${metric.last_error ? `: ${metric.last_error}` : ""}`;
  }
  if (metric.status === "failed" || metric.failure_state !== "ok" || metric.last_error) {
    return metric.last_error ?? `metric ${metric.status} (${metric.failure_state})`;
  }
  return null;
}

// One command from the page, its answer shown in one line.
function useCommand(org: string) {
  const [answer, setAnswer] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const send = async (body: Record<string, unknown>): Promise<CommandAnswer | null> => {
    setBusy(true);
    setAnswer(null);
    try {
      const result = await api.command(org, body);
      setAnswer(result.status === "accepted" ? `${body.type}: accepted` : `${body.type}: rejected: ${result.error}`);
      return result;
    } catch (exc) {
      setAnswer(`${body.type}: ${(exc as Error).message}`);
      return null;
    } finally {
      setBusy(false);
    }
  };
  return { answer, busy, send };
}

function ChartCard({ org, chart, now }: { org: string; chart: ChartView; now: number }) {
  const { answer, busy, send } = useCommand(org);
  const [request, setRequest] = useState("");
  const metric = chart.metric;
  const problem = problemOf(metric);
  return (
    <section
      className={problem ? "card chart failing" : "card chart"}
      data-testid={`chart-${chart.dashboard_metric_id}`}
      data-chart-type={chart.config?.chartType ?? chart.chart_type ?? ""}
      data-fetched-at={metric.last_fetched_at ?? ""}
      data-config-at={chart.config_at ?? ""}
      data-rows={chart.config?.chartData.length ?? 0}
      data-range={chart.date_range_days ?? "all"}
    >
      <div className="chart-head">
        <div>
          <h2>{chart.config?.title ?? chart.title}</h2>
          {chart.config?.description && <p className="muted">{chart.config.description}</p>}
        </div>
        <span className="updated" data-testid="last-updated" title={metric.last_fetched_at ?? "never fetched"}>
          updated {ago(metric.last_fetched_at, now)}
        </span>
      </div>
      {problem && (
        <p className="error" data-testid="chart-error" role="alert">
          {problem}
        </p>
      )}
      <div className="chart-body">
        {chart.config ? <Chart config={chart.config} /> : <p className="muted">No chart yet: waiting for the first config.</p>}
      </div>
      <div className="chart-actions">
        <button disabled={busy} onClick={() => send({ type: "refresh_metric", metric_id: chart.metric_id })}>
          Refresh
        </button>
        <label>
          Poll
          <select
            aria-label="poll frequency"
            value={metric.poll_frequency}
            disabled={busy}
            onChange={(e) => send({ type: "set_metric_frequency", metric_id: chart.metric_id, frequency: e.target.value })}
          >
            {FREQUENCIES.map((f) => (
              <option key={f}>{f}</option>
            ))}
          </select>
        </label>
        <form
          className="change"
          onSubmit={(e) => {
            e.preventDefault();
            send({ type: "change_chart", dashboard_metric_id: chart.dashboard_metric_id, request }).then((r) => {
              if (r?.status === "accepted") setRequest("");
            });
          }}
        >
          <input
            aria-label="change request"
            placeholder="Ask for a change, e.g. “show it as bars”"
            value={request}
            onChange={(e) => setRequest(e.target.value)}
          />
          <button type="submit" disabled={busy || request.trim().length < 3}>
            Change
          </button>
        </form>
        <button
          className="link"
          disabled={busy}
          onClick={() => send({ type: "remove_chart", dashboard_metric_id: chart.dashboard_metric_id })}
        >
          Remove
        </button>
      </div>
      {answer && <p className="answer" data-testid="command-status">{answer}</p>}
      <p className="muted small">
        {metric.template_id} · {Object.entries(metric.params).sort().map(([k, v]) => `${k}=${v}`).join(" ")} ·{" "}
        {chart.date_range_days === null ? "all time" : `${chart.date_range_days} days`}
        {chart.aggregation ? `, ${chart.aggregation}` : ""} · chart v{chart.chart_transformer_version ?? "–"} ·
        transformer {metric.transformer_status ?? "not written yet"}
      </p>
    </section>
  );
}

// The metric picked first is the one this dashboard already charts (a second view of it is
// the usual next chart), else the organisation's first: never an unrelated metric by list order.
function AddChart({
  org,
  dashboardId,
  charted,
  onAdded,
}: {
  org: string;
  dashboardId: string;
  charted: string | null;
  onAdded: () => void;
}) {
  const [metrics, setMetrics] = useState<MetricState[]>([]);
  const [metricId, setMetricId] = useState("");
  const [chartType, setChartType] = useState("line");
  const [range, setRange] = useState("30"); // the design's dateRange: 7d, 30d, 90d or all
  const [aggregation, setAggregation] = useState("last");
  const [title, setTitle] = useState("");
  const { answer, busy, send } = useCommand(org);
  useEffect(() => {
    api.metrics(org).then((found) => {
      setMetrics(found);
      const first = found.find((m) => m.id === charted) ?? found[0];
      if (first) setMetricId((chosen) => chosen || first.id);
    });
  }, [org, charted]);
  return (
    <form
      className="card add-chart"
      onSubmit={(e) => {
        e.preventDefault();
        send({
          type: "create_dashboard_metric",
          dashboard_id: dashboardId,
          metric_id: metricId,
          chart_type: chartType,
          date_range_days: range === "all" ? "all" : Number(range),
          aggregation,
          ...(title ? { title } : {}),
        }).then((r) => {
          if (r?.status === "accepted") {
            onAdded();
            window.dispatchEvent(new Event(DASHBOARDS_CHANGED));
          }
        });
      }}
    >
      <h2>Add a chart</h2>
      <select aria-label="metric" value={metricId} onChange={(e) => setMetricId(e.target.value)}>
        {metrics.map((m) => (
          <option key={m.id} value={m.id}>
            {m.template_id} {Object.values(m.params).join("/")}
          </option>
        ))}
      </select>
      <select aria-label="chart type" value={chartType} onChange={(e) => setChartType(e.target.value)}>
        {CHART_TYPES.map((t) => (
          <option key={t}>{t}</option>
        ))}
      </select>
      <select aria-label="range" value={range} onChange={(e) => setRange(e.target.value)}>
        {[["7", "7 days"], ["30", "30 days"], ["90", "90 days"], ["all", "all time"]].map(([value, label]) => (
          <option key={value} value={value}>
            {label}
          </option>
        ))}
      </select>
      <select aria-label="aggregation" value={aggregation} onChange={(e) => setAggregation(e.target.value)}>
        {["last", "sum", "avg", "min", "max", "count", "none"].map((a) => (
          <option key={a}>{a}</option>
        ))}
      </select>
      <input aria-label="title" placeholder="title (optional)" value={title} onChange={(e) => setTitle(e.target.value)} />
      <button type="submit" disabled={busy || !metricId}>
        Add
      </button>
      {answer && <p className="answer">{answer}</p>}
    </form>
  );
}

export function DashboardPage({ org, dashboardId }: { org: string; dashboardId: string }) {
  const [charts, setCharts] = useState<ChartView[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [now, setNow] = useState(Date.now());
  const load = useCallback(() => {
    api
      .dashboard(org, dashboardId)
      .then((d) => setCharts(d.charts))
      .catch((exc) => setError((exc as Error).message));
  }, [org, dashboardId]);
  useEffect(load, [load]);
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), 5000); // the "ago" labels only
    return () => clearInterval(timer);
  }, []);
  const updateMetric = (metric: MetricState) =>
    setCharts((old) => old && old.map((c) => (c.metric_id === metric.id ? { ...c, metric } : c)));
  useLive(org, {
    chart: (message) => {
      if (message.dashboard_id !== dashboardId) return;
      setCharts((old) => {
        if (!old) return old;
        if (!old.some((c) => c.dashboard_metric_id === message.dashboard_metric_id)) {
          load(); // a chart added since the page loaded
          return old;
        }
        return old.map((c) =>
          c.dashboard_metric_id === message.dashboard_metric_id
            ? { ...c, config: message.config, config_at: message.generated_at, chart_transformer_version: message.transformer_version }
            : c,
        );
      });
      // the new config follows a poll: its "last updated" and error state come with it
      api.metric(org, message.metric_id).then(updateMetric).catch(() => undefined);
    },
  });
  if (error) return <p className="error">{error}</p>;
  if (!charts) return <p className="muted">Loading…</p>;
  return (
    <div>
      <h1>Dashboard {dashboardId}</h1>
      <div className="grid">
        {charts.map((chart) => (
          <ChartCard key={chart.dashboard_metric_id} org={org} chart={chart} now={now} />
        ))}
      </div>
      <AddChart org={org} dashboardId={dashboardId} charted={charts[0]?.metric_id ?? null} onAdded={load} />
    </div>
  );
}
