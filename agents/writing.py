"""Writer stage: point batches go into the hypertable, one transaction per batch.

The Faust agent acknowledges the consumed messages only after :meth:`WriteStage.handle`
returns, i.e. after the transaction committed: offsets move only once the points are in
the database. The upsert makes a re-delivered batch change nothing. Rollups are kept
current here: inside the transaction where they are tables (Apache build), by refreshing
the touched window right after the commit where they are continuous aggregates.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import structlog

from agents.pipeline import Incoming, Send, Stage, dead_letter
from agents.services import Services
from schema import catalog, ledger, lifecycle, rollups
from schema.exceptions import MetricloomError
from schema.points import MetricPoints, write_points
from streams import metrics
from streams.messages import BackfillProgress, MetricUpdated, PointsBatch

log = structlog.get_logger(__name__)


class ForeignPointsError(MetricloomError):
    """Points whose metric does not exist, or belongs to another organisation than the
    record names: never written (one record's fault: dead-lettered alone)."""


class WriteStage(Stage[PointsBatch]):
    """Writes only points whose metric exists and belongs to the organisation the record
    names; anything else is refused before the transaction."""

    name = "write"

    def decode(self, message: Incoming) -> PointsBatch:
        return PointsBatch.model_validate_json(message.body())

    async def handle(
        self, services: Services, batch: list[tuple[Incoming, PointsBatch]]
    ) -> list[Send]:
        async with services.db.transaction() as conn:
            owners = await catalog.metric_owners(conn, [p.metric_id for _, p in batch])
            deleted = {
                p.metric_id
                for _, p in batch
                if p.metric_id not in owners
                and await lifecycle.removed(conn, "metric", p.metric_id) == p.organization_id
            }
        for metric_id in deleted:  # deleted while its points were on their way
            log.info("write.skipped", metric_id=str(metric_id), status="deleted")
            metrics.SKIPPED.labels(stage=self.name, reason="deleted").inc()
        batch = [(m, p) for m, p in batch if p.metric_id not in deleted]
        refused = [
            dead_letter(
                self.name,
                message,
                ForeignPointsError(
                    f"points for metric {points.metric_id} of organisation"
                    f" {points.organization_id!r}: "
                    + (
                        "no such metric"
                        if points.metric_id not in owners
                        else f"it belongs to {owners[points.metric_id]!r}"
                    )
                ),
                points.metric_id,
                points.organization_id,
            )
            for message, points in batch
            if owners.get(points.metric_id) != points.organization_id
        ]
        batch = [(m, p) for m, p in batch if owners.get(p.metric_id) == p.organization_id]
        if not batch:
            return refused
        return refused + await self._write(services, batch)

    async def _write(
        self, services: Services, batch: list[tuple[Incoming, PointsBatch]]
    ) -> list[Send]:
        organizations = {points.metric_id: points.organization_id for _, points in batch}
        mode = await services.rollup_mode()
        async with services.db.transaction() as conn:
            # a metric deleted since the owners were read must get no points: under its
            # lock, the delete has either committed (the metric is gone) or waits for us
            await lifecycle.lock_metrics(conn, list(organizations))
            owners = await catalog.metric_owners(conn, list(organizations))
            for metric_id in set(organizations) - set(owners):
                log.info("write.skipped", metric_id=str(metric_id), status="deleted")
                metrics.SKIPPED.labels(stage=self.name, reason="deleted").inc()
            batch = [(m, p) for m, p in batch if p.metric_id in owners]
            if not batch:
                return []
            summaries = await write_points(
                conn,
                [MetricPoints(p.metric_id, list(p.points), p.replace) for _, p in batch],
                mode,
            )
            await ledger.record_written(conn, [p.poll_id for _, p in batch if p.poll_id])
        metrics.POINTS_WRITTEN.inc(sum(s.points for s in summaries))
        touched = [s for s in summaries if s.first_ts is not None and s.last_ts is not None]
        if mode == "continuous" and touched:
            async with services.db.autocommit() as conn:
                await rollups.refresh(
                    conn,
                    min(s.first_ts for s in touched if s.first_ts),
                    max(s.last_ts for s in touched if s.last_ts),
                )
        history: dict[tuple[UUID, int | None, int | None], list[datetime]] = {}
        for _, points in batch:
            if points.historical:
                key = (points.metric_id, points.chunk, points.chunks)
                history.setdefault(key, []).extend(p.timestamp for p in points.points)
        progress = [
            Send(
                "backfill-progress",
                str(metric_id),
                BackfillProgress(
                    metric_id=metric_id,
                    organization_id=organizations[metric_id],
                    state="written",
                    chunk=chunk,
                    chunks=chunks,
                    points=len(set(stamps)),
                    first_ts=min(stamps, default=None),
                    last_ts=max(stamps, default=None),
                ),
                org=organizations[metric_id],
            )
            for (metric_id, chunk, chunks), stamps in history.items()
        ]
        if progress:
            async with services.db.transaction() as conn:
                for send in progress:
                    await catalog.record_backfill(conn, send.record.model_dump(mode="json"))
        return progress + [
            Send(
                "metric-updated",
                str(s.metric_id),
                MetricUpdated(
                    metric_id=s.metric_id,
                    organization_id=organizations[s.metric_id],
                    points_written=s.points,
                    first_ts=s.first_ts,
                    last_ts=s.last_ts,
                ),
            )
            for s in summaries
        ]
