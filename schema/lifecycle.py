"""Changing and removing what exists: pause, resume, re-tier and delete a metric, take a
chart off its dashboard, forget a connection. The management commands' writes.

Every function runs in the caller's transaction and is scoped to the organisation it is
given: a row of another organisation is not found (None / False), never touched. Removals
leave a row in ``removed_rows`` so records still on their way for the removed id are told
apart from records naming an id that never existed (:func:`removed`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from uuid import UUID

from psycopg import sql

from schema.db import Conn
from schema.models import PollFrequency
from schema.points import LOCK_METRICS, _lock_key
from schema.rollups import ROLLUPS, Mode

Kind = Literal["metric", "dashboard_metric"]


@dataclass(frozen=True)
class MetricDeleted:
    """What deleting a metric removed."""

    metric_id: UUID
    points: int
    dashboard_metric_ids: list[UUID]
    first_ts: datetime | None
    last_ts: datetime | None


async def removed(conn: Conn, kind: Kind, row_id: UUID) -> str | None:
    """The organisation a removed metric or dashboard metric belonged to (None: not
    removed by a command, or never there)."""
    cur = await conn.execute(
        "SELECT organization_id FROM removed_rows WHERE id = %s AND kind = %s", (row_id, kind)
    )
    row = await cur.fetchone()
    return str(row["organization_id"]) if row else None


async def removed_window(conn: Conn, metric_id: UUID) -> tuple[datetime, datetime] | None:
    """The time span a deleted metric's points covered (for refreshing continuous
    aggregates after the delete committed)."""
    cur = await conn.execute(
        "SELECT first_ts, last_ts FROM removed_rows WHERE id = %s AND kind = 'metric'"
        " AND first_ts IS NOT NULL",
        (metric_id,),
    )
    row = await cur.fetchone()
    if row is None:
        return None
    return row["first_ts"], row["last_ts"]  # type: ignore[return-value]


async def lock_metrics(conn: Conn, metric_ids: list[UUID]) -> None:
    """Take the writer's per-metric advisory locks (in its order): a delete of one of
    these metrics either committed before, or waits until the caller's transaction ends."""
    await conn.execute(LOCK_METRICS, (sorted({_lock_key(m) for m in metric_ids}),))


async def set_status(
    conn: Conn, metric_id: UUID, organization_id: str, status: Literal["active", "paused"]
) -> str | None:
    """Set a metric's status; returns the status it had (None: no such metric of that
    organisation)."""
    cur = await conn.execute(
        "SELECT status FROM metrics WHERE id = %s AND organization_id = %s FOR UPDATE",
        (metric_id, organization_id),
    )
    row = await cur.fetchone()
    if row is None:
        return None
    await conn.execute("UPDATE metrics SET status = %s WHERE id = %s", (status, metric_id))
    return str(row["status"])


async def reschedule(
    conn: Conn,
    metric_id: UUID,
    organization_id: str,
    frequency: PollFrequency | None,
    now: datetime,
) -> datetime | bool | None:
    """Put a metric on a polling tier's grid from ``now`` (its own tier when ``frequency``
    is None); returns the new ``next_poll_at`` (None for ``manual``), or False when that
    organisation has no such metric."""
    cur = await conn.execute(
        "SELECT poll_frequency FROM metrics WHERE id = %s AND organization_id = %s FOR UPDATE",
        (metric_id, organization_id),
    )
    row = await cur.fetchone()
    if row is None:
        return False
    tier = frequency or PollFrequency(str(row["poll_frequency"]))
    next_poll = tier.first_poll_after(metric_id, now)
    await conn.execute(
        "UPDATE metrics SET poll_frequency = %s, next_poll_at = %s WHERE id = %s",
        (tier.value, next_poll, metric_id),
    )
    return next_poll


async def delete_metric(
    conn: Conn, metric_id: UUID, organization_id: str, mode: Mode
) -> MetricDeleted | None:
    """Delete a metric and everything keyed on it: its points, its rollup rows (maintained
    tables; continuous aggregates are refreshed over the returned window once this
    commits), its charts (dashboard metrics, chart transformers and their versions, by
    the foreign keys' cascade), its poll ledger and its schedule (the row). Takes the
    writer's advisory lock for the metric first, so a batch being written for it finishes
    before, or finds it gone after. None when that organisation has no such metric."""
    cur = await conn.execute(
        "SELECT id FROM metrics WHERE id = %s AND organization_id = %s FOR UPDATE",
        (metric_id, organization_id),
    )
    if await cur.fetchone() is None:
        return None
    await lock_metrics(conn, [metric_id])
    cur = await conn.execute(
        "SELECT count(*) AS n, min(ts) AS first_ts, max(ts) AS last_ts"
        " FROM metric_data_points WHERE metric_id = %s",
        (metric_id,),
    )
    span = await cur.fetchone()
    assert span is not None
    await conn.execute("DELETE FROM metric_data_points WHERE metric_id = %s", (metric_id,))
    if mode == "maintained":
        for rollup in ROLLUPS:
            for relation in (rollup.relation, rollup.dimensions):
                await conn.execute(
                    sql.SQL("DELETE FROM {} WHERE metric_id = %s").format(sql.Identifier(relation)),
                    (metric_id,),
                )
    await conn.execute("DELETE FROM polls WHERE metric_id = %s", (metric_id,))
    cur = await conn.execute(
        "DELETE FROM dashboard_metrics WHERE metric_id = %s AND organization_id = %s RETURNING id",
        (metric_id, organization_id),
    )
    charts = [UUID(str(row["id"])) for row in await cur.fetchall()]
    for chart in charts:
        await _remember(conn, chart, "dashboard_metric", organization_id)
    await conn.execute("DELETE FROM metrics WHERE id = %s", (metric_id,))
    first, last = span["first_ts"], span["last_ts"]
    await _remember(conn, metric_id, "metric", organization_id, first, last)
    return MetricDeleted(
        metric_id,
        int(str(span["n"])),
        charts,
        first,  # type: ignore[arg-type]
        last,  # type: ignore[arg-type]
    )


async def remove_chart(
    conn: Conn, dashboard_metric_id: UUID, dashboard_id: str, organization_id: str
) -> UUID | None:
    """Take a dashboard metric off that organisation's dashboard (its chart transformer
    and versions go with it); returns its metric, or None when there is no such chart."""
    cur = await conn.execute(
        "DELETE FROM dashboard_metrics WHERE id = %s AND dashboard_id = %s"
        " AND organization_id = %s RETURNING metric_id",
        (dashboard_metric_id, dashboard_id, organization_id),
    )
    row = await cur.fetchone()
    if row is None:
        return None
    await _remember(conn, dashboard_metric_id, "dashboard_metric", organization_id)
    return UUID(str(row["metric_id"]))


async def connection_users(conn: Conn, connection_id: UUID, organization_id: str) -> list[UUID]:
    """The metrics that reach their provider through this connection."""
    cur = await conn.execute(
        "SELECT id FROM metrics WHERE connection_id = %s AND organization_id = %s ORDER BY id",
        (connection_id, organization_id),
    )
    return [UUID(str(row["id"])) for row in await cur.fetchall()]


async def remove_connection(conn: Conn, connection_id: UUID, organization_id: str) -> bool:
    """Delete an organisation's connection (its sealed token with it) and its rate budget;
    False when there is no such connection. The caller checks it is unused first (the
    foreign key refuses otherwise)."""
    cur = await conn.execute(
        "DELETE FROM integration_connections WHERE id = %s AND organization_id = %s",
        (connection_id, organization_id),
    )
    if cur.rowcount != 1:
        return False
    await conn.execute("DELETE FROM rate_budgets WHERE key = %s", (f"connection:{connection_id}",))
    return True


async def _remember(
    conn: Conn,
    row_id: UUID,
    kind: Kind,
    organization_id: str,
    first_ts: object = None,
    last_ts: object = None,
) -> None:
    await conn.execute(
        "INSERT INTO removed_rows (id, kind, organization_id, first_ts, last_ts)"
        " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (id) DO NOTHING",
        (row_id, kind, organization_id, first_ts, last_ts),
    )
