"""Chart stage: when a metric's points change, every chart showing it is rebuilt.

For each dashboard metric of an updated metric, the stage reads the series at the bucket
that fits the chart's date range, runs the dashboard metric's ChartTransformer in the
sandbox, validates the result as a ``ChartConfig`` and publishes it on the compacted
``chart-configs`` topic keyed by dashboard metric id (the newest record per key is the
chart). Charts whose code is identical are run in one container, but a container never
mixes organisations.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

import structlog
from pydantic import ValidationError

from agents.pipeline import Incoming, Send, Stage, dead_letter
from agents.services import Services
from schema import catalog, rollups
from schema.models import ChartConfig, ChartTransformer, DashboardMetric, range_start
from streams import metrics
from streams.messages import ChartConfigMessage, MetricUpdated

log = structlog.get_logger(__name__)

Job = tuple[Incoming, DashboardMetric, ChartTransformer, list[dict[str, Any]], dict[str, Any]]


class ChartStage(Stage[MetricUpdated]):
    name = "chart"

    def decode(self, message: Incoming) -> MetricUpdated:
        return MetricUpdated.model_validate_json(message.body())

    async def handle(
        self, services: Services, batch: list[tuple[Incoming, MetricUpdated]]
    ) -> list[Send]:
        trigger = {update.metric_id: message for message, update in batch}
        updated = [(update.metric_id, update.organization_id) for _, update in batch]
        jobs: list[Job] = []
        now = datetime.now(UTC)
        async with services.db.transaction() as conn:
            for dm, ct in await catalog.charts_for_metrics(conn, updated):
                rollup = rollups.for_chart(
                    dm.date_range_days, ct.preferences.get("granularity"), dm.aggregation
                )
                since = range_start(dm.date_range_days, now)
                series = await rollups.read_series(
                    conn, dm.metric_id, since, rollup, dm.aggregation
                )
                preferences = {
                    **ct.preferences,
                    "title": dm.title,
                    "granularity": rollup.name,
                    "bucket_seconds": int(rollup.width.total_seconds()),
                }
                jobs.append((trigger[dm.metric_id], dm, ct, series, preferences))
        groups: dict[tuple[str, str], list[Job]] = defaultdict(list)
        for job in jobs:
            code, language = job[2].runnable()  # same code in one language: one container
            code_hash = hashlib.sha256(f"{language}\n{code}".encode()).hexdigest()
            groups[(job[1].organization_id, code_hash)].append(job)
        sends: list[Send] = []
        for group in groups.values():
            code, language = group[0][2].runnable()
            results = await services.sandbox.run(
                code,
                "transform",
                [(series, prefs) for *_, series, prefs in group],
                [str(job[1].organization_id) for job in group],
                language,
            )
            for (message, dm, ct, _, _), result in zip(group, results, strict=True):
                sends.append(self._publish(message, dm, ct, result.value, result.error))
        published = [s.record for s in sends if isinstance(s.record, ChartConfigMessage)]
        if published:
            async with services.db.transaction() as conn:
                for record in published:
                    await catalog.record_graph_config(
                        conn, record.dashboard_metric_id, record.config.model_dump(by_alias=True)
                    )
            metrics.CHARTS_PUBLISHED.inc(len(published))  # handed to the adapter to produce
        return sends

    def _publish(
        self, message: Incoming, dm: DashboardMetric, ct: ChartTransformer, value: Any, error: Any
    ) -> Send:
        if error is not None:
            problem = f"chart {dm.id}: {error.kind}: {error.message}"
            log.warning("chart.failed", dashboard_metric_id=str(dm.id), error=problem[:300])
            return dead_letter(self.name, message, problem, dm.metric_id)
        try:
            config = ChartConfig.model_validate(value)
        except ValidationError as exc:
            return dead_letter(
                self.name, message, f"chart {dm.id}: not a ChartConfig: {exc}", dm.metric_id
            )
        record = ChartConfigMessage(
            dashboard_metric_id=dm.id,
            organization_id=dm.organization_id,
            dashboard_id=dm.dashboard_id,
            metric_id=dm.metric_id,
            transformer_version=ct.version,
            config=config,
        )
        return Send("chart-configs", str(dm.id), record, org=dm.organization_id)


def redraw(dm: DashboardMetric) -> Send:
    """A ``metric-updated`` nudge that makes this stage redraw the metric's charts now
    (after a chart transformer changed, with no new points)."""
    nudge = MetricUpdated(
        metric_id=dm.metric_id,
        organization_id=dm.organization_id,
        points_written=0,
        first_ts=None,
        last_ts=None,
    )
    return Send("metric-updated", str(dm.metric_id), nudge)
