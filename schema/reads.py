"""What an organisation may read about its own things: metrics with their state, dashboards
and charts, connections (never their tokens), transformer versions. The CLI's read verbs
and the dashboard's read API both call these: each query is written once, here, and its
rows are validated once, into the models below (the API projects them onto its own
response shapes in ``dashboard/views.py``).

Every function takes the organisation id and returns only that organisation's rows (an id
of another organisation reads as "not there"). Template transformers are shared by every
organisation: an organisation may read a template's versions only once it has a metric of
that template (checked in the same statement), and never their input or output examples
(another organisation's payloads).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict

from schema.db import Conn
from schema.models import ChartConfig, ChartType, PollFrequency


class Row(BaseModel):
    model_config = ConfigDict(frozen=True)


class BackfillState(Row):
    """The last progress of a metric's historical backfill (``backfill-progress``)."""

    state: Literal["fetched", "written", "failed"]
    chunk: int | None = None
    chunks: int | None = None
    points: int = 0
    error: str | None = None
    at: datetime | None = None


class MetricState(Row):
    """A metric as its owner sees it: what it polls, how that is going, and the state of
    its template's shared transformer (``None`` while none is written yet)."""

    id: UUID
    template_id: str
    params: dict[str, str]
    poll_frequency: PollFrequency
    status: Literal["active", "paused", "failed"]
    next_poll_at: datetime | None
    last_fetched_at: datetime | None
    last_error: str | None
    last_error_at: datetime | None
    failure_state: Literal["ok", "retrying", "failed"]
    failure_count: int
    connection_id: UUID | None
    backfill: BackfillState | None
    transformer_status: Literal["active", "regenerating", "failed"] | None
    transformer_version: int | None
    charts: int
    created_at: datetime


class Chart(Row):
    """A dashboard metric: a metric drawn on a dashboard by its own chart transformer, with
    the chart config it last published (``graph_config``)."""

    id: UUID
    dashboard_id: str
    metric_id: UUID
    title: str
    chart_type: ChartType | None
    date_range_days: int | None
    aggregation: str | None
    transformer_version: int | None
    user_prompt: str | None
    graph_config: ChartConfig | None
    graph_config_at: datetime | None
    created_at: datetime


class Dashboard(Row):
    id: str
    charts: list[Chart]


class ConnectionInfo(Row):
    """A connection without its secret: whether it has a token, never the token."""

    id: UUID
    provider: str
    auth: str
    has_token: bool
    nango_connection_id: str | None
    nango_provider_config_key: str | None
    metrics: int
    created_at: datetime


class TransformerVersion(Row):
    """One version of a template's or a chart's transformer (``current``: the one in use)."""

    target: str
    version: int
    current: bool
    status: str | None
    generator: str
    chart_type: str | None = None
    user_prompt: str | None = None
    created_at: datetime | None
    code: str
    historical_code: str | None = None
    language: Literal["python", "typescript"] = "python"


class Transformer(Row):
    """A transformer and every kept version, oldest first: a template's (shared by every
    organisation whose metrics use it) or a chart's (the organisation's own)."""

    kind: Literal["metric", "chart"]
    template_id: str | None = None
    dashboard_metric_id: UUID | None = None
    title: str | None = None
    versions: list[TransformerVersion]


class TransformerIssue(Row):
    """A template transformer the organisation's metrics use that is not ``active``."""

    template_id: str
    status: str
    version: int
    last_error: str | None
    metrics: int


METRICS = """
SELECT m.id, m.template_id, m.params, m.poll_frequency, m.status, m.next_poll_at,
       m.last_fetched_at, m.last_error, m.last_error_at, m.failure_state, m.failure_count,
       m.connection_id, m.backfill, m.created_at,
       mt.status AS transformer_status, mt.version AS transformer_version,
       (SELECT count(*) FROM dashboard_metrics d
        WHERE d.metric_id = m.id AND d.organization_id = m.organization_id) AS charts
FROM metrics m LEFT JOIN metric_transformers mt ON mt.template_id = m.template_id
WHERE m.organization_id = %(org)s AND (%(ids)s::uuid[] IS NULL OR m.id = ANY(%(ids)s::uuid[]))
ORDER BY m.created_at, m.id
"""
"""The organisation's metrics (all, or those of ``ids``) with their template's
transformer state and how many charts show each."""


async def metrics(
    conn: Conn, organization_id: str, ids: Sequence[UUID] | None = None
) -> list[MetricState]:
    """The organisation's metrics (those of ``ids`` only, when given), oldest first."""
    params = {"org": organization_id, "ids": None if ids is None else list(ids)}
    cur = await conn.execute(METRICS, params)
    return [MetricState.model_validate(row) for row in await cur.fetchall()]


async def metric(conn: Conn, organization_id: str, metric_id: UUID) -> MetricState | None:
    """One of the organisation's metrics (None: it has no such metric)."""
    found = await metrics(conn, organization_id, [metric_id])
    return found[0] if found else None


CHARTS = """
SELECT d.id, d.dashboard_id, d.metric_id, d.title, d.graph_config, d.graph_config_at,
       d.created_at,
       coalesce(c.chart_type, d.preferences->>'chart_type') AS chart_type,
       CASE WHEN c.dashboard_metric_id IS NULL  -- null in the row is all time, not unknown
            THEN (d.preferences->>'date_range_days')::int ELSE c.date_range_days
       END AS date_range_days,
       coalesce(c.aggregation, d.preferences->>'aggregation') AS aggregation,
       c.version AS transformer_version, c.user_prompt
FROM dashboard_metrics d
LEFT JOIN chart_transformers c
       ON c.dashboard_metric_id = d.id AND c.organization_id = d.organization_id
WHERE d.organization_id = %(org)s
  AND (%(metric)s::uuid IS NULL OR d.metric_id = %(metric)s::uuid)
  AND (%(dashboard)s::text IS NULL OR d.dashboard_id = %(dashboard)s::text)
ORDER BY d.dashboard_id, d.created_at, d.id
"""
"""The organisation's charts (of one metric, or on one dashboard, when given): a chart's
transformer settings, else the preferences it was added with."""


async def charts(
    conn: Conn,
    organization_id: str,
    metric_id: UUID | None = None,
    dashboard_id: str | None = None,
) -> list[Chart]:
    """The organisation's charts (of one metric, or on one dashboard, when given), by
    dashboard, oldest first on each."""
    params = {"org": organization_id, "metric": metric_id, "dashboard": dashboard_id}
    cur = await conn.execute(CHARTS, params)
    return [Chart.model_validate(row) for row in await cur.fetchall()]


def _by_dashboard(found: list[Chart]) -> list[Dashboard]:
    out: dict[str, list[Chart]] = {}
    for chart in found:
        out.setdefault(chart.dashboard_id, []).append(chart)
    return [Dashboard(id=name, charts=items) for name, items in out.items()]


async def dashboards(conn: Conn, organization_id: str) -> list[Dashboard]:
    """The organisation's dashboards with their charts, by id (a dashboard exists while it
    has a chart: there is no dashboards table)."""
    return _by_dashboard(await charts(conn, organization_id))


async def dashboard(conn: Conn, organization_id: str, dashboard_id: str) -> Dashboard | None:
    """One of the organisation's dashboards (None: it has no chart on it)."""
    found = _by_dashboard(await charts(conn, organization_id, dashboard_id=dashboard_id))
    return found[0] if found else None


async def connections(conn: Conn, organization_id: str) -> list[ConnectionInfo]:
    """The organisation's connections; whether each holds a token, never the token."""
    cur = await conn.execute(
        "SELECT c.id, c.provider, c.auth, c.token IS NOT NULL AS has_token,"
        " c.nango_connection_id, c.nango_provider_config_key, c.created_at,"
        " (SELECT count(*) FROM metrics m WHERE m.connection_id = c.id"
        "  AND m.organization_id = c.organization_id) AS metrics"
        " FROM integration_connections c WHERE c.organization_id = %s"
        " ORDER BY c.created_at, c.id",
        (organization_id,),
    )
    return [ConnectionInfo.model_validate(row) for row in await cur.fetchall()]


async def metrics_per_template(conn: Conn, organization_id: str) -> dict[str, int]:
    """How many metrics the organisation has of each template it uses, by template id."""
    cur = await conn.execute(
        "SELECT template_id, count(*) AS n FROM metrics WHERE organization_id = %s"
        " GROUP BY template_id ORDER BY template_id",
        (organization_id,),
    )
    return {str(row["template_id"]): int(str(row["n"])) for row in await cur.fetchall()}


TEMPLATE_VERSIONS = """
SELECT t.template_id AS target, t.version, true AS current, t.status, t.generator,
       t.updated_at AS created_at, t.code, t.historical_code, t.language
FROM metric_transformers t
WHERE t.template_id = %(template)s
  AND EXISTS (SELECT 1 FROM metrics WHERE organization_id = %(org)s AND template_id = %(template)s)
UNION ALL
SELECT v.template_id, v.version, false, v.status, v.generator, v.created_at, v.code,
       v.historical_code, v.language
FROM metric_transformer_versions v
WHERE v.template_id = %(template)s
  AND EXISTS (SELECT 1 FROM metrics WHERE organization_id = %(org)s AND template_id = %(template)s)
ORDER BY version
"""
"""A template's transformer versions, for an organisation that has a metric of it."""

CHART_VERSIONS = """
SELECT c.dashboard_metric_id::text AS target, c.version, true AS current, NULL AS status,
       c.generator, c.chart_type, c.user_prompt, c.updated_at AS created_at, c.code, c.language
FROM chart_transformers c
WHERE c.dashboard_metric_id = %(chart)s AND c.organization_id = %(org)s
UNION ALL
SELECT v.dashboard_metric_id::text, v.version, false, NULL, v.generator, v.chart_type,
       v.user_prompt, v.created_at, v.code, v.language
FROM chart_transformer_versions v
WHERE v.dashboard_metric_id = %(chart)s AND v.organization_id = %(org)s
ORDER BY version
"""
"""A chart's transformer versions (the organisation's own)."""


async def template_versions(
    conn: Conn, organization_id: str, template_id: str
) -> list[TransformerVersion]:
    """A template's transformer versions, oldest first (empty: the organisation has no
    metric of it, or none is written yet)."""
    cur = await conn.execute(TEMPLATE_VERSIONS, {"org": organization_id, "template": template_id})
    return [TransformerVersion.model_validate(row) for row in await cur.fetchall()]


async def chart_versions(
    conn: Conn, organization_id: str, dashboard_metric_id: UUID
) -> list[TransformerVersion]:
    """One of the organisation's charts' transformer versions, oldest first."""
    cur = await conn.execute(CHART_VERSIONS, {"org": organization_id, "chart": dashboard_metric_id})
    return [TransformerVersion.model_validate(row) for row in await cur.fetchall()]


async def transformer_versions(
    conn: Conn, organization_id: str, target: str
) -> list[TransformerVersion]:
    """Every version of a transformer, oldest first: a chart's (``target`` a dashboard
    metric id of the organisation's) or a template's (``target`` a template id the
    organisation has a metric of). Empty when the organisation may not read it, or there
    is none yet."""
    try:
        chart_id = UUID(target)
    except ValueError:
        return await template_versions(conn, organization_id, target)
    return await chart_versions(conn, organization_id, chart_id)


async def transformers(conn: Conn, organization_id: str) -> list[Transformer]:
    """Every transformer the organisation's metrics and charts use, with their versions:
    the templates' by id, then the charts' oldest first."""
    out = []
    for template_id in await metrics_per_template(conn, organization_id):
        versions = await template_versions(conn, organization_id, template_id)
        if versions:
            out.append(Transformer(kind="metric", template_id=template_id, versions=versions))
    found = sorted(await charts(conn, organization_id), key=lambda c: (c.created_at, c.id))
    for chart in found:
        versions = await chart_versions(conn, organization_id, chart.id)
        if versions:
            out.append(
                Transformer(
                    kind="chart", dashboard_metric_id=chart.id, title=chart.title, versions=versions
                )
            )
    return out


async def transformers_not_active(conn: Conn, organization_id: str) -> list[TransformerIssue]:
    """The template transformers the organisation's metrics use that are not ``active``
    (regenerating, or failed: its metrics wait)."""
    cur = await conn.execute(
        "SELECT t.template_id, t.status, t.version, t.last_error, count(m.id) AS metrics"
        " FROM metric_transformers t JOIN metrics m ON m.template_id = t.template_id"
        " WHERE m.organization_id = %s AND t.status <> 'active'"
        " GROUP BY t.template_id, t.status, t.version, t.last_error ORDER BY t.template_id",
        (organization_id,),
    )
    return [TransformerIssue.model_validate(row) for row in await cur.fetchall()]
