import { useCallback, useEffect, useState } from "react";
import { Login } from "./Login";
import { DashboardPage } from "./DashboardPage";
import { ManagePage } from "./ManagePage";
import { DASHBOARDS_CHANGED, api } from "./api";

// Pages: /login, /orgs/{org} (its dashboards and management), /orgs/{org}/dashboards/{id}.
// The server serves them only to the organisation's own session (403 otherwise).
function route(path: string) {
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  if (parts[0] === "orgs" && parts[1]) {
    if (parts[2] === "dashboards" && parts[3]) {
      return { page: "dashboard" as const, org: parts[1], dashboard: parts[3] };
    }
    return { page: "manage" as const, org: parts[1], dashboard: null };
  }
  return { page: "login" as const, org: null, dashboard: null };
}

export function navigate(path: string) {
  window.history.pushState(null, "", path);
  window.dispatchEvent(new PopStateEvent("popstate"));
}

export function App() {
  const [path, setPath] = useState(window.location.pathname);
  useEffect(() => {
    const onPop = () => setPath(window.location.pathname);
    window.addEventListener("popstate", onPop);
    return () => window.removeEventListener("popstate", onPop);
  }, []);
  const here = route(path);
  if (here.page === "login" || !here.org) {
    return <Login />;
  }
  return (
    <Shell org={here.org} dashboard={here.dashboard}>
      {here.page === "dashboard" && here.dashboard ? (
        <DashboardPage key={here.dashboard} org={here.org} dashboardId={here.dashboard} />
      ) : (
        <ManagePage org={here.org} />
      )}
    </Shell>
  );
}

function Shell({ org, dashboard, children }: { org: string; dashboard: string | null; children: JSX.Element }) {
  const [dashboards, setDashboards] = useState<{ id: string; charts: number }[]>([]);
  const load = useCallback(() => {
    api.dashboards(org).then(setDashboards).catch(() => setDashboards([]));
  }, [org]);
  useEffect(load, [load, dashboard]);
  useEffect(() => {
    window.addEventListener(DASHBOARDS_CHANGED, load);
    return () => window.removeEventListener(DASHBOARDS_CHANGED, load);
  }, [load]);
  const link = (target: string) => (event: React.MouseEvent) => {
    event.preventDefault();
    navigate(target);
  };
  return (
    <div className="shell">
      <header>
        <strong>metricloom</strong>
        <nav>
          <a href={`/orgs/${org}`} className={dashboard ? "" : "active"} onClick={link(`/orgs/${org}`)}>
            Metrics &amp; settings
          </a>
          {dashboards.map((d) => (
            <a
              key={d.id}
              href={`/orgs/${org}/dashboards/${encodeURIComponent(d.id)}`}
              className={d.id === dashboard ? "active" : ""}
              onClick={link(`/orgs/${org}/dashboards/${encodeURIComponent(d.id)}`)}
            >
              {d.id} <small>({d.charts})</small>
            </a>
          ))}
        </nav>
        <span className="who">
          {org}{" "}
          <button
            className="link"
            onClick={() => api.logout().finally(() => window.location.assign("/login"))}
          >
            log out
          </button>
        </span>
      </header>
      <main>{children}</main>
    </div>
  );
}
