"""The database itself refuses rows that point at another organisation's rows
(schema/migrations/0010_tenant_keys.sql), whatever code path inserts them."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest

from schema import catalog
from schema.models import ChartTransformer, Connection, DashboardMetric, Metric, PollFrequency
from tests.integration.conftest import stored_metric

pytestmark = pytest.mark.integration


def _metric(org: str, connection_id: uuid.UUID | None) -> Metric:
    return Metric(
        id=uuid.uuid4(),
        organization_id=org,
        template_id="github-repo-stars",
        params={"OWNER": "octocat", "REPO": f"keys-{uuid.uuid4().hex[:6]}"},
        poll_frequency=PollFrequency.DAILY,
        next_poll_at=None,
        connection_id=connection_id,
    )


def _dashboard_metric(org: str, metric_id: uuid.UUID) -> DashboardMetric:
    return DashboardMetric(
        id=uuid.uuid4(),
        organization_id=org,
        dashboard_id="main",
        metric_id=metric_id,
        title="Stars",
        chart_type="line",
        date_range_days=30,
    )


async def _count(conn: Any, table: str, row_id: uuid.UUID) -> int:
    cur = await conn.execute(f"SELECT count(*) AS n FROM {table} WHERE id = %s", (row_id,))
    row = await cur.fetchone()
    return int(row["n"])


async def test_metric_with_another_organisations_connection_is_refused(db_conn: Any) -> None:
    """A metric of other-org naming owner-org's connection is refused by the foreign key;
    the same connection is fine for its own organisation."""
    connection = Connection(
        id=uuid.uuid4(), organization_id="owner-org", provider="github", auth="none"
    )
    await catalog.insert_connection(db_conn, connection, None)

    forged = _metric("other-org", connection.id)
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        await catalog.insert_metric(db_conn, forged)
    assert await _count(db_conn, "metrics", forged.id) == 0

    honest = _metric("owner-org", connection.id)
    assert await catalog.insert_metric(db_conn, honest)
    # An update cannot move the metric to another organisation while it keeps the connection.
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        await db_conn.execute(
            "UPDATE metrics SET organization_id = 'other-org' WHERE id = %s", (honest.id,)
        )


async def test_dashboard_metric_with_another_organisations_metric_is_refused(
    db_conn: Any,
) -> None:
    """A dashboard metric of other-org showing owner-org's metric is refused; one of the
    metric's own organisation is stored, and its chart transformer must be of that
    organisation too."""
    owned = await stored_metric(db_conn, f"keys-{uuid.uuid4().hex[:6]}", org="owner-org")

    forged = _dashboard_metric("other-org", owned.id)
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        await catalog.insert_dashboard_metric(db_conn, forged)
    assert await _count(db_conn, "dashboard_metrics", forged.id) == 0

    honest = _dashboard_metric("owner-org", owned.id)
    assert await catalog.insert_dashboard_metric(db_conn, honest)

    chart = ChartTransformer(
        dashboard_metric_id=honest.id,
        organization_id="other-org",
        code="def transform(points, preferences):\n    return {}\n",
        chart_type="line",
        date_range_days=30,
        aggregation="last",
        generator="offline-v1",
    )
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        await catalog.save_chart_transformer(db_conn, chart)
    assert await catalog.save_chart_transformer(
        db_conn, chart.model_copy(update={"organization_id": "owner-org"})
    )


async def test_deleting_a_metric_still_deletes_its_dashboard_metrics(db_conn: Any) -> None:
    """ON DELETE CASCADE is kept through the composite keys."""
    owned = await stored_metric(db_conn, f"keys-{uuid.uuid4().hex[:6]}", org="owner-org")
    dm = _dashboard_metric("owner-org", owned.id)
    await catalog.insert_dashboard_metric(db_conn, dm)
    await db_conn.execute("DELETE FROM metrics WHERE id = %s", (owned.id,))
    assert await _count(db_conn, "dashboard_metrics", dm.id) == 0
