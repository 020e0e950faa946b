"""The read API's queries, every one scoped to an organisation.

Each query that touches tenant rows takes the organisation as its first parameter and
filters by it (``WHERE organization_id = %(org)s``), so a handler cannot forget it: there
is no unscoped variant. Metric transformers are per template and shared; a template's
versions are shown only to an organisation with a metric of that template. Rows are
validated into :mod:`dashboard.views` models before they leave.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from dashboard.views import (
    ChartView,
    DashboardSummary,
    DashboardView,
    MetricState,
    TransformerHistory,
    TransformerVersion,
)
from schema.db import Conn

METRIC_COLUMNS = """
    m.id, m.template_id, m.params, m.poll_frequency, m.status, m.last_fetched_at,
    m.last_error, m.last_error_at, m.failure_state, m.failure_count, m.next_poll_at,
    m.backfill, m.created_at, mt.status AS transformer_status,
    mt.version AS transformer_version
"""

METRICS = f"""
SELECT {METRIC_COLUMNS}
FROM metrics m LEFT JOIN metric_transformers mt ON mt.template_id = m.template_id
WHERE m.organization_id = %(org)s AND (%(metric)s::uuid IS NULL OR m.id = %(metric)s)
ORDER BY m.created_at, m.id
"""
"""The organisation's metrics (or one), with the state of their template's transformer."""

DASHBOARDS = """
SELECT dashboard_id AS id, count(*) AS charts FROM dashboard_metrics
WHERE organization_id = %(org)s GROUP BY dashboard_id ORDER BY dashboard_id
"""

CHARTS = f"""
SELECT dm.id AS dashboard_metric_id, dm.dashboard_id, dm.metric_id, dm.title,
       dm.graph_config, dm.graph_config_at, ct.chart_type, ct.date_range_days,
       ct.aggregation, ct.version AS chart_transformer_version, ct.user_prompt,
       dm.preferences, {METRIC_COLUMNS}
FROM dashboard_metrics dm
JOIN metrics m ON m.id = dm.metric_id AND m.organization_id = dm.organization_id
LEFT JOIN chart_transformers ct
       ON ct.dashboard_metric_id = dm.id AND ct.organization_id = dm.organization_id
LEFT JOIN metric_transformers mt ON mt.template_id = m.template_id
WHERE dm.organization_id = %(org)s AND dm.dashboard_id = %(dashboard)s
ORDER BY dm.created_at, dm.id
"""
"""A dashboard's charts with their last published config and their metric's state."""

TEMPLATE_VERSIONS = """
SELECT t.version, true AS current, t.code, t.historical_code, t.status, t.generator,
       t.updated_at AS created_at
FROM metric_transformers t
WHERE t.template_id = %(template)s
  AND EXISTS (SELECT 1 FROM metrics WHERE organization_id = %(org)s AND template_id = %(template)s)
UNION ALL
SELECT v.version, false, v.code, v.historical_code, v.status, v.generator, v.created_at
FROM metric_transformer_versions v
WHERE v.template_id = %(template)s
  AND EXISTS (SELECT 1 FROM metrics WHERE organization_id = %(org)s AND template_id = %(template)s)
ORDER BY version DESC
"""
"""A template's transformer versions, for an organisation that uses the template."""

CHART_VERSIONS = """
SELECT c.version, true AS current, c.code, c.generator, c.user_prompt, c.chart_type,
       c.updated_at AS created_at
FROM chart_transformers c
WHERE c.organization_id = %(org)s AND c.dashboard_metric_id = %(dm)s
UNION ALL
SELECT v.version, false, v.code, v.generator, v.user_prompt, v.chart_type, v.created_at
FROM chart_transformer_versions v
WHERE v.organization_id = %(org)s AND v.dashboard_metric_id = %(dm)s
ORDER BY version DESC
"""
"""A chart's transformer versions (the organisation's own)."""

ORG_TEMPLATES = """
SELECT DISTINCT template_id FROM metrics WHERE organization_id = %(org)s ORDER BY template_id
"""

ORG_CHARTS = """
SELECT id, title FROM dashboard_metrics WHERE organization_id = %(org)s ORDER BY created_at, id
"""


CHART_KEYS = (
    "dashboard_metric_id",
    "dashboard_id",
    "metric_id",
    "title",
    "chart_transformer_version",
    "user_prompt",
)


def _metric(row: dict[str, Any]) -> MetricState:
    return MetricState.model_validate(row)


async def metrics(conn: Conn, org: str, metric_id: UUID | None = None) -> list[MetricState]:
    cur = await conn.execute(METRICS, {"org": org, "metric": metric_id})
    return [_metric(row) for row in await cur.fetchall()]


async def dashboards(conn: Conn, org: str) -> list[DashboardSummary]:
    cur = await conn.execute(DASHBOARDS, {"org": org})
    return [DashboardSummary.model_validate(row) for row in await cur.fetchall()]


async def dashboard(conn: Conn, org: str, dashboard_id: str) -> DashboardView | None:
    """A dashboard's charts; None when the organisation has no chart on it."""
    cur = await conn.execute(CHARTS, {"org": org, "dashboard": dashboard_id})
    rows = await cur.fetchall()
    if not rows:
        return None
    charts = []
    for row in rows:
        prefs = row["preferences"] if isinstance(row["preferences"], dict) else {}
        chart = {key: row[key] for key in CHART_KEYS} | {
            "chart_type": row["chart_type"] or prefs.get("chart_type"),
            "date_range_days": row["date_range_days"] or prefs.get("date_range_days"),
            "aggregation": row["aggregation"] or prefs.get("aggregation"),
            "config": row["graph_config"],
            "config_at": row["graph_config_at"],
            "metric": _metric({**row, "id": row["metric_id"]}),
        }
        charts.append(ChartView.model_validate(chart))
    return DashboardView(id=dashboard_id, charts=charts)


async def transformers(conn: Conn, org: str) -> list[TransformerHistory]:
    """Every transformer the organisation's metrics and charts use, with their versions."""
    out = []
    for row in await (await conn.execute(ORG_TEMPLATES, {"org": org})).fetchall():
        template_id = str(row["template_id"])
        versions = await template_versions(conn, org, template_id)
        if versions:
            out.append(
                TransformerHistory(kind="metric", template_id=template_id, versions=versions)
            )
    for row in await (await conn.execute(ORG_CHARTS, {"org": org})).fetchall():
        versions = await chart_versions(conn, org, UUID(str(row["id"])))
        if versions:
            out.append(
                TransformerHistory(
                    kind="chart",
                    dashboard_metric_id=UUID(str(row["id"])),
                    title=str(row["title"]),
                    versions=versions,
                )
            )
    return out


async def template_versions(conn: Conn, org: str, template_id: str) -> list[TransformerVersion]:
    cur = await conn.execute(TEMPLATE_VERSIONS, {"org": org, "template": template_id})
    return [TransformerVersion.model_validate(row) for row in await cur.fetchall()]


async def chart_versions(
    conn: Conn, org: str, dashboard_metric_id: UUID
) -> list[TransformerVersion]:
    cur = await conn.execute(CHART_VERSIONS, {"org": org, "dm": dashboard_metric_id})
    return [TransformerVersion.model_validate(row) for row in await cur.fetchall()]
