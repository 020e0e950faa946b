"""What an organisation may read about its own things: metrics with their state, dashboards
and charts, connections (never their tokens), transformer versions. The CLI's read verbs
call these, and so can a web read API.

Every function takes the organisation id and returns only that organisation's rows (an id
of another organisation reads as "not there"). Template transformers are shared by every
organisation: an organisation may read a template's versions only once it has a metric of
that template, and never their input or output examples (another organisation's payloads).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict

from schema.db import Conn


class Row(BaseModel):
    model_config = ConfigDict(frozen=True)


class MetricState(Row):
    """A metric as its owner sees it: what it polls, and how that is going."""

    id: UUID
    template_id: str
    params: dict[str, str]
    poll_frequency: str
    status: str
    next_poll_at: datetime | None
    last_fetched_at: datetime | None
    last_error: str | None
    last_error_at: datetime | None
    failure_state: str
    failure_count: int
    connection_id: UUID | None
    backfill: dict[str, Any] | None
    charts: int
    created_at: datetime


class Chart(Row):
    """A dashboard metric: a metric drawn on a dashboard by its own chart transformer."""

    id: UUID
    dashboard_id: str
    metric_id: UUID
    title: str
    chart_type: str | None
    date_range_days: int | None
    aggregation: str | None
    transformer_version: int | None
    graph_config_at: datetime | None


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
       (SELECT count(*) FROM dashboard_metrics d
        WHERE d.metric_id = m.id AND d.organization_id = m.organization_id) AS charts
FROM metrics m
WHERE m.organization_id = %(org)s AND (%(id)s::uuid IS NULL OR m.id = %(id)s::uuid)
ORDER BY m.created_at, m.id
"""


async def metrics(conn: Conn, organization_id: str) -> list[MetricState]:
    """The organisation's metrics, oldest first."""
    cur = await conn.execute(METRICS, {"org": organization_id, "id": None})
    return [MetricState.model_validate(row) for row in await cur.fetchall()]


async def metric(conn: Conn, organization_id: str, metric_id: UUID) -> MetricState | None:
    """One of the organisation's metrics (None: it has no such metric)."""
    cur = await conn.execute(METRICS, {"org": organization_id, "id": metric_id})
    row = await cur.fetchone()
    return MetricState.model_validate(row) if row else None


CHARTS = """
SELECT d.id, d.dashboard_id, d.metric_id, d.title, d.graph_config_at,
       coalesce(c.chart_type, d.preferences->>'chart_type') AS chart_type,
       coalesce(c.date_range_days, (d.preferences->>'date_range_days')::int) AS date_range_days,
       coalesce(c.aggregation, d.preferences->>'aggregation') AS aggregation,
       c.version AS transformer_version
FROM dashboard_metrics d
LEFT JOIN chart_transformers c ON c.dashboard_metric_id = d.id
WHERE d.organization_id = %(org)s AND (%(metric)s::uuid IS NULL OR d.metric_id = %(metric)s)
ORDER BY d.dashboard_id, d.created_at, d.id
"""


async def charts(conn: Conn, organization_id: str, metric_id: UUID | None = None) -> list[Chart]:
    """The organisation's charts (of one metric, when given), by dashboard."""
    cur = await conn.execute(CHARTS, {"org": organization_id, "metric": metric_id})
    return [Chart.model_validate(row) for row in await cur.fetchall()]


async def dashboards(conn: Conn, organization_id: str) -> list[Dashboard]:
    """The organisation's dashboards with their charts (a dashboard exists while it has
    a chart: there is no dashboards table)."""
    out: dict[str, list[Chart]] = {}
    for chart in await charts(conn, organization_id):
        out.setdefault(chart.dashboard_id, []).append(chart)
    return [Dashboard(id=name, charts=items) for name, items in out.items()]


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
    """How many metrics the organisation has of each template it uses."""
    cur = await conn.execute(
        "SELECT template_id, count(*) AS n FROM metrics WHERE organization_id = %s"
        " GROUP BY template_id",
        (organization_id,),
    )
    return {str(row["template_id"]): int(str(row["n"])) for row in await cur.fetchall()}


TEMPLATE_VERSIONS = """
SELECT t.template_id AS target, t.version, true AS current, t.status, t.generator,
       t.updated_at AS created_at, t.code, t.historical_code
FROM metric_transformers t WHERE t.template_id = %(id)s
UNION ALL
SELECT v.template_id, v.version, false, v.status, v.generator, v.created_at, v.code,
       v.historical_code
FROM metric_transformer_versions v WHERE v.template_id = %(id)s
ORDER BY version
"""

CHART_VERSIONS = """
SELECT c.dashboard_metric_id::text AS target, c.version, true AS current, NULL AS status,
       c.generator, c.chart_type, c.user_prompt, c.updated_at AS created_at, c.code
FROM chart_transformers c
WHERE c.dashboard_metric_id = %(id)s AND c.organization_id = %(org)s
UNION ALL
SELECT v.dashboard_metric_id::text, v.version, false, NULL, v.generator, v.chart_type,
       v.user_prompt, v.created_at, v.code
FROM chart_transformer_versions v
WHERE v.dashboard_metric_id = %(id)s AND v.organization_id = %(org)s
ORDER BY version
"""


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
        chart_id = None
    if chart_id is not None:
        cur = await conn.execute(CHART_VERSIONS, {"id": chart_id, "org": organization_id})
    else:
        if target not in await metrics_per_template(conn, organization_id):
            return []
        cur = await conn.execute(TEMPLATE_VERSIONS, {"id": target})
    return [TransformerVersion.model_validate(row) for row in await cur.fetchall()]


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
