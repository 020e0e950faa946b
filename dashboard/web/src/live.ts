// The organisation's live events (server-sent, fed by the dashboard's Kafka consumer of
// its topics): one EventSource per page, handlers by event kind.
import { useEffect, useRef } from "react";

export interface ChartMessage {
  dashboard_metric_id: string;
  dashboard_id: string;
  metric_id: string;
  transformer_version: number;
  generated_at: string;
  config: import("./api").ChartConfig;
}

export type Handlers = {
  chart?: (message: ChartMessage) => void;
  backfill?: (progress: { metric_id: string } & Record<string, unknown>) => void;
  alert?: (alert: { kind: string; message: string; at: string }) => void;
};

export function useLive(org: string, handlers: Handlers) {
  const current = useRef(handlers);
  current.current = handlers;
  useEffect(() => {
    const source = new EventSource(`/api/orgs/${org}/events`);
    for (const kind of ["chart", "backfill", "alert"] as const) {
      source.addEventListener(kind, (event) => {
        const handler = current.current[kind] as ((data: unknown) => void) | undefined;
        handler?.(JSON.parse((event as MessageEvent).data));
      });
    }
    source.addEventListener("open", () => document.body.setAttribute("data-live", "open"));
    return () => source.close();
  }, [org]);
}
