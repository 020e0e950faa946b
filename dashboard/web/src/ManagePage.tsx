import { useCallback, useEffect, useState } from "react";
import { DASHBOARDS_CHANGED, FREQUENCIES, api } from "./api";
import type { Alert, Backfill, BackfillSummary, DeadLetter, MetricState, Template, TransformerHistory } from "./api";
import { useLive } from "./live";

// A backfill's progress: chunks written of all, from backfill-progress.<org> (live), or
// the metric's last recorded progress when the topic no longer has it (7 days).
function Progress({ summary, last }: { summary: BackfillSummary | undefined; last: Backfill | null }) {
  if (!summary && !last) return <span className="muted">no history</span>;
  const failed = summary ? summary.state === "failed" : last?.state === "failed";
  const percent = summary
    ? Math.round((100 * summary.chunks_written) / Math.max(1, summary.chunks))
    : last?.state === "written" ? 100 : 0;
  const points = summary?.points ?? last?.points ?? 0;
  return (
    <span className="progress" data-testid="backfill" data-percent={percent}>
      <progress max={100} value={failed ? 0 : percent} />{" "}
      {failed ? `failed: ${summary?.error ?? last?.error}` : `${percent}% (${points} points)`}
    </span>
  );
}

function AddMetric({ org, onCreated }: { org: string; onCreated: () => void }) {
  const [templates, setTemplates] = useState<Template[]>([]);
  const [templateId, setTemplateId] = useState("");
  const [params, setParams] = useState<Record<string, string>>({});
  const [frequency, setFrequency] = useState("");
  const [dashboard, setDashboard] = useState("main");
  const [answer, setAnswer] = useState<string | null>(null);
  useEffect(() => {
    api.templates().then((found) => {
      setTemplates(found);
      if (found.length) setTemplateId(found[0].id);
    });
  }, []);
  const template = templates.find((t) => t.id === templateId);
  const submit = async (event: React.FormEvent) => {
    event.preventDefault();
    if (!template) return;
    setAnswer("sending…");
    try {
      const created = await api.command(org, {
        type: "create_metric",
        template_id: template.id,
        params,
        ...(frequency ? { poll_frequency: frequency } : {}),
      });
      if (created.status !== "accepted") {
        setAnswer(`rejected: ${created.error}`);
        return;
      }
      if (dashboard.trim()) {
        const placed = await api.command(org, {
          type: "create_dashboard_metric",
          dashboard_id: dashboard.trim(),
          metric_id: created.metric_id,
          chart_type: template.default_chart_type,
        });
        setAnswer(placed.status === "accepted" ? `created, charted on ${dashboard}` : `created; chart rejected: ${placed.error}`);
        window.dispatchEvent(new Event(DASHBOARDS_CHANGED));
      } else {
        setAnswer("created");
      }
      onCreated();
    } catch (exc) {
      setAnswer((exc as Error).message);
    }
  };
  return (
    <form className="card" onSubmit={submit}>
      <h2>Add a metric</h2>
      <select aria-label="template" value={templateId} onChange={(e) => { setTemplateId(e.target.value); setParams({}); }}>
        {templates.map((t) => (
          <option key={t.id} value={t.id}>
            {t.name}{t.has_history ? " (with history)" : ""}
          </option>
        ))}
      </select>
      {template && <p className="muted small">{template.description}</p>}
      {template?.params.map((p) => (
        <label key={p.name}>
          {p.name}
          <input
            aria-label={p.name}
            pattern={p.pattern.replace(/^\^/, "").replace(/\$$/, "")}
            title={`must match ${p.pattern}`}
            value={params[p.name] ?? ""}
            onChange={(e) => setParams({ ...params, [p.name]: e.target.value })}
            required
          />
        </label>
      ))}
      <label>
        Poll
        <select aria-label="new metric poll frequency" value={frequency} onChange={(e) => setFrequency(e.target.value)}>
          <option value="">template default ({template?.default_poll_frequency})</option>
          {FREQUENCIES.map((f) => (
            <option key={f}>{f}</option>
          ))}
        </select>
      </label>
      <label>
        Chart it on dashboard
        <input aria-label="dashboard" value={dashboard} onChange={(e) => setDashboard(e.target.value)} />
      </label>
      <button type="submit">Create</button>
      {answer && <p className="answer" data-testid="create-status">{answer}</p>}
    </form>
  );
}

export function ManagePage({ org }: { org: string }) {
  const [metrics, setMetrics] = useState<MetricState[]>([]);
  const [alerts, setAlerts] = useState<Alert[]>([]);
  const [backfills, setBackfills] = useState<Record<string, BackfillSummary>>({});
  const [transformers, setTransformers] = useState<TransformerHistory[]>([]);
  const [letters, setLetters] = useState<DeadLetter[] | string>([]);
  const load = useCallback(() => {
    api.metrics(org).then(setMetrics);
    api.alerts(org).then(setAlerts);
    api.backfill(org).then((found) => setBackfills(Object.fromEntries(found.map((b) => [b.metric_id, b]))));
    api.transformers(org).then(setTransformers);
    api.deadLetters(org).then(setLetters).catch((exc) => setLetters((exc as Error).message));
  }, [org]);
  useEffect(load, [load]);
  useLive(org, {
    backfill: (progress) => {
      const summary = progress as unknown as BackfillSummary;
      setBackfills((old) => ({ ...old, [summary.metric_id]: summary }));
      setMetrics((old) => (old.some((m) => m.id === summary.metric_id) ? old : (load(), old)));
    },
    alert: (alert) => setAlerts((old) => [alert, ...old]),
  });
  const act = (body: Record<string, unknown>) => api.command(org, body).then(load).catch((exc) => alert((exc as Error).message));
  return (
    <div className="manage">
      <div className="columns">
        <AddMetric org={org} onCreated={load} />
        <section className="card">
          <h2>Alerts</h2>
          {alerts.length === 0 && <p className="muted">None.</p>}
          <ul>
            {alerts.map((a, i) => (
              <li key={i}>
                <strong>{a.kind}</strong> {a.message} <span className="muted small">{a.at}</span>
              </li>
            ))}
          </ul>
        </section>
      </div>
      <section className="card">
        <h2>Metrics</h2>
        <table data-testid="metrics">
          <thead>
            <tr>
              <th>template</th><th>parameters</th><th>poll</th><th>status</th><th>last fetched</th>
              <th>next poll</th><th>last error</th><th>history</th><th />
            </tr>
          </thead>
          <tbody>
            {metrics.map((m) => (
              <tr key={m.id}>
                <td>{m.template_id}</td>
                <td>{Object.entries(m.params).map(([k, v]) => `${k}=${v}`).join(" ")}</td>
                <td>{m.poll_frequency}</td>
                <td>{m.status} / {m.failure_state}</td>
                <td>{m.last_fetched_at ?? "never"}</td>
                <td>{m.next_poll_at ?? "—"}</td>
                <td className="error">{m.last_error ?? ""}</td>
                <td><Progress summary={backfills[m.id]} last={m.backfill} /></td>
                <td className="nowrap">
                  <button className="link" onClick={() => act({ type: "refresh_metric", metric_id: m.id })}>refresh</button>
                  {m.status === "paused" ? (
                    <button className="link" onClick={() => act({ type: "resume_metric", metric_id: m.id })}>resume</button>
                  ) : (
                    <button className="link" onClick={() => act({ type: "pause_metric", metric_id: m.id })}>pause</button>
                  )}
                  <button className="link" onClick={() => confirm("Delete this metric, its points and charts?") && act({ type: "delete_metric", metric_id: m.id })}>delete</button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </section>
      <section className="card">
        <h2>Transformers</h2>
        {transformers.map((t) => (
          <details key={`${t.kind}-${t.template_id ?? t.dashboard_metric_id}`}>
            <summary>
              {t.kind === "metric" ? `template ${t.template_id}` : `chart “${t.title}”`} · {t.versions.length} version(s), current v
              {t.versions.find((v) => v.current)?.version}
            </summary>
            {t.versions.map((v) => (
              <details key={v.version} className="version">
                <summary>
                  v{v.version}{v.current ? " (current)" : ""} · {v.language === "typescript" ? "TypeScript" : "Python"} · {v.generator} {v.status ?? ""} {v.user_prompt ? `· “${v.user_prompt}”` : ""}
                  {!v.current && t.kind === "chart" && (
                    <button className="link" onClick={() => act({ type: "rollback_transformer", dashboard_metric_id: t.dashboard_metric_id, version: v.version })}>
                      roll back to this
                    </button>
                  )}
                </summary>
                <pre>{v.code}</pre>
              </details>
            ))}
          </details>
        ))}
      </section>
      <section className="card">
        <h2>Dead letters</h2>
        {typeof letters === "string" ? (
          <p className="muted">{letters}</p>
        ) : letters.length === 0 ? (
          <p className="muted">None.</p>
        ) : (
          <table>
            <tbody>
              {letters.map((l) => (
                <tr key={l.id}>
                  <td className="nowrap">{l.failed_at}</td><td>{l.stage}</td><td>{l.error_type}</td><td>{l.error}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </section>
    </div>
  );
}
