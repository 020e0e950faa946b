"""Internal records that name an organisation are loaded by id AND organisation: a record
naming organisation other-org with owner-org's metric or dashboard metric is refused with
a one-line ForeignIdError, dead-lettered by the pipeline (alone), and changes nothing;
the honest records of the same batch go on."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from agents.charting import ChartStage
from agents.codegen import CodegenStage
from agents.generators.offline import chart_code_for
from agents.pipeline import Incoming, Outgoing, process_batch
from agents.services import Services
from agents.transforming import TransformStage
from demo_api.github import repository
from schema import catalog
from schema.models import ChartTransformer, DashboardMetric, Metric
from streams.messages import CodegenRequest, MetricUpdated, RawPayload
from tests.integration.conftest import stored_metric

pytestmark = pytest.mark.integration

REFUSAL = "belongs to organisation 'owner-org', not to 'other-org' as the record says"


def _dead(out: list[Outgoing]) -> list[dict[str, Any]]:
    return [json.loads(o.value) for o in out if o.topic == "dead-letter"]


async def _metric_row(conn: Any, metric: Metric) -> dict[str, Any]:
    cur = await conn.execute(
        "SELECT last_error, failure_count, failure_state, last_failed_poll, backfill"
        " FROM metrics WHERE id = %s",
        (metric.id,),
    )
    row = await cur.fetchone()
    assert row is not None
    return dict(row)


async def _charted_metric(conn: Any) -> tuple[Metric, DashboardMetric]:
    """An owner-org metric on a dashboard, with its chart transformer (version 1)."""
    metric = await stored_metric(conn, f"forged-{uuid.uuid4().hex[:6]}", org="owner-org")
    dm = DashboardMetric(
        id=uuid.uuid4(),
        organization_id="owner-org",
        dashboard_id="main",
        metric_id=metric.id,
        title="Stars",
        chart_type="line",
        date_range_days=30,
    )
    await catalog.insert_dashboard_metric(conn, dm)
    await catalog.save_chart_transformer(
        conn,
        ChartTransformer(
            dashboard_metric_id=dm.id,
            organization_id="owner-org",
            code=chart_code_for("line", "last", "Stars"),
            chart_type="line",
            date_range_days=30,
            aggregation="last",
            generator="offline-v1",
        ),
    )
    return metric, dm


async def _chart_state(conn: Any, dm: DashboardMetric) -> tuple[Any, ...]:
    cur = await conn.execute(
        "SELECT d.graph_config, c.version, c.code, c.user_prompt FROM dashboard_metrics d"
        " JOIN chart_transformers c ON c.dashboard_metric_id = d.id WHERE d.id = %s",
        (dm.id,),
    )
    row = await cur.fetchone()
    assert row is not None
    return tuple(row.values())


async def test_a_forged_raw_payload_is_refused_and_counts_nothing(
    services: Services, db_conn: Any
) -> None:
    """A raw payload naming other-org with owner-org's metric (a payload its transformer
    would fail on) is dead-lettered with the refusal: no points, no failure counted on the
    metric; owner-org's honest payload in the same batch becomes points."""
    victim = await stored_metric(db_conn, f"forged-{uuid.uuid4().hex[:6]}", org="owner-org")
    honest = await stored_metric(db_conn, f"honest-{uuid.uuid4().hex[:6]}", org="owner-org")
    before = await _metric_row(db_conn, victim)
    now = datetime.now(UTC)

    def raw(metric: Metric, org: str, payload: Any) -> RawPayload:
        return RawPayload(
            poll_id=uuid.uuid4(),
            metric_id=metric.id,
            organization_id=org,
            template_id=metric.template_id,
            fetched_at=now,
            endpoint="/repos/octocat/x",
            payload=payload,
        )

    forged = raw(victim, "other-org", {"not": "a repository"})
    good = raw(honest, "owner-org", repository("octocat", honest.params["REPO"], now))
    out = await process_batch(
        TransformStage(),
        services,
        [
            Incoming("raw-payloads", 0, 1, None, forged.to_bytes()),
            Incoming("raw-payloads", 0, 2, None, good.to_bytes()),
        ],
    )
    [dead] = _dead(out)
    assert dead["offset"] == 1 and dead["error_type"] == "ForeignIdError"
    assert dead["error"] == f"metric {victim.id} {REFUSAL}"
    points = [json.loads(o.value) for o in out if o.topic == "points"]
    assert [p["metric_id"] for p in points] == [str(honest.id)]
    assert await _metric_row(db_conn, victim) == before


async def test_a_forged_metric_update_redraws_nothing(services: Services, db_conn: Any) -> None:
    """A metric-updated record naming other-org with owner-org's metric is refused: no
    chart of owner-org's is drawn or published (to either organisation); an honest update
    in the same batch is drawn."""
    victim, victim_dm = await _charted_metric(db_conn)
    honest, honest_dm = await _charted_metric(db_conn)
    before = await _chart_state(db_conn, victim_dm)

    def update(metric: Metric, org: str) -> bytes:
        return MetricUpdated(
            metric_id=metric.id, organization_id=org, points_written=1, first_ts=None, last_ts=None
        ).to_bytes()

    out = await process_batch(
        ChartStage(),
        services,
        [
            Incoming("metric-updated", 0, 1, None, update(victim, "other-org")),
            Incoming("metric-updated", 0, 2, None, update(honest, "owner-org")),
        ],
    )
    [dead] = _dead(out)
    assert dead["offset"] == 1 and dead["error_type"] == "ForeignIdError"
    assert dead["error"] == f"metric {victim.id} {REFUSAL}"
    charts = [json.loads(o.value) for o in out if o.topic.startswith("chart-configs")]
    assert [c["dashboard_metric_id"] for c in charts] == [str(honest_dm.id)]
    assert {o.topic for o in out} == {"dead-letter", "chart-configs.owner-org"}
    assert await _chart_state(db_conn, victim_dm) == before


async def test_a_forged_chart_request_writes_no_chart(services: Services, db_conn: Any) -> None:
    """A chart change naming other-org with owner-org's dashboard metric is refused
    before any generation: the chart transformer keeps its version, code and prompt."""
    _, dm = await _charted_metric(db_conn)
    before = await _chart_state(db_conn, dm)
    request = CodegenRequest(
        kind="chart",
        reason="change",
        dashboard_metric_id=dm.id,
        metric_id=dm.metric_id,
        organization_id="other-org",
        user_prompt="make it a bar chart",
        request_id=uuid.uuid4(),
    )
    out = await process_batch(
        CodegenStage(), services, [Incoming("codegen-requests", 0, 1, None, request.to_bytes())]
    )
    [dead] = _dead(out)
    assert dead["error_type"] == "ForeignIdError"
    assert dead["error"] == f"dashboard metric {dm.id} {REFUSAL}"
    assert [o.topic for o in out] == ["dead-letter"]
    assert await _chart_state(db_conn, dm) == before


async def test_a_forged_metric_codegen_request_is_refused(services: Services, db_conn: Any) -> None:
    """A metric codegen request naming other-org with owner-org's metric is refused (not
    quietly served from another metric of the template); nothing is recorded."""
    victim = await stored_metric(db_conn, f"forged-{uuid.uuid4().hex[:6]}", org="owner-org")
    before = await _metric_row(db_conn, victim)
    request = CodegenRequest(
        kind="metric",
        reason="created",
        template_id=victim.template_id,
        metric_id=victim.id,
        organization_id="other-org",
    )
    out = await process_batch(
        CodegenStage(), services, [Incoming("codegen-requests", 0, 1, None, request.to_bytes())]
    )
    [dead] = _dead(out)
    assert dead["error_type"] == "ForeignIdError"
    assert dead["error"] == f"metric {victim.id} {REFUSAL}"
    assert [o.topic for o in out] == ["dead-letter"]
    assert await _metric_row(db_conn, victim) == before


async def test_a_chart_request_naming_no_organisation_is_poison(services: Services) -> None:
    """A chart request must name the organisation of its dashboard metric: one without is
    malformed, dead-lettered before the stage loads anything."""
    body = json.dumps(
        {
            "kind": "chart",
            "reason": "change",
            "dashboard_metric_id": str(uuid.uuid4()),
        }
    ).encode()
    out = await process_batch(
        CodegenStage(), services, [Incoming("codegen-requests", 0, 1, None, body)]
    )
    [dead] = _dead(out)
    assert dead["error_type"] == "ValidationError"
    assert "a chart request names its dashboard_metric_id and organization_id" in dead["error"]
