"""Fetch stage: a poll-due tick becomes a raw payload from the provider's API.

Credentials are resolved here and only here (``agents/fetch_client.py``); they never
travel on Kafka, reach the sandbox, or appear in an error message. A provider's failure
(HTTP error after retries, a body that is not JSON or too large) belongs to that metric:
it is recorded as the metric's last error and dead-lettered; the next scheduled poll tries
again. A provider that asks to come back later (rate limit, 202) gets the metric re-polled
at that time, a bounded number of times.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
import structlog

from agents.fetch_client import FetchError, RetryLaterError, fetch_payload, request_for
from agents.pipeline import Incoming, Send, Stage, dead_letter
from agents.services import Services
from schema import catalog
from schema.db import Database
from schema.models import Connection, Metric
from streams.messages import BackfillProgress, PollDue, RawPayload
from templates import get_template

log = structlog.get_logger(__name__)


@dataclass
class SharedBudget:
    """A provider rate budget kept in the database, so every worker spends the same one:
    per connection, or per provider for the deployment's default credentials."""

    db: Database
    key: str

    async def take(self) -> datetime | None:
        async with self.db.transaction() as conn:
            return await catalog.take_budget(conn, self.key, datetime.now(UTC))

    async def record(self, headers: httpx.Headers) -> None:
        remaining, reset = headers.get("x-ratelimit-remaining"), headers.get("x-ratelimit-reset")
        if remaining is None or reset is None or not remaining.isdigit() or not reset.isdigit():
            return
        async with self.db.transaction() as conn:
            await catalog.record_budget(
                conn, self.key, int(remaining), datetime.fromtimestamp(int(reset), tz=UTC)
            )


async def connection_for(services: Services, metric: Metric) -> Connection | None:
    """The metric's connection (its credentials), read only here, in the fetch path."""
    if metric.connection_id is None:
        return None
    async with services.db.transaction() as conn:
        connection = await catalog.get_connection(
            conn, metric.connection_id, metric.organization_id
        )
    if connection is None:
        raise FetchError(f"connection {metric.connection_id} is gone")
    return connection


def budget_key(metric: Metric, provider: str) -> str:
    return f"connection:{metric.connection_id}" if metric.connection_id else f"default:{provider}"


class FetchStage(Stage[PollDue]):
    name = "fetch"

    def __init__(self) -> None:
        self._limits: dict[str, asyncio.Semaphore] = {}

    def decode(self, value: bytes) -> PollDue:
        return PollDue.model_validate_json(value)

    async def handle(self, services: Services, batch: list[tuple[Incoming, PollDue]]) -> list[Send]:
        results = await asyncio.gather(*(self._one(services, m, t) for m, t in batch))
        return [send for sends in results for send in sends]

    async def _one(self, services: Services, message: Incoming, tick: PollDue) -> list[Send]:
        async with services.db.transaction() as conn:
            metric = await catalog.get_metric(conn, tick.metric_id)
        if metric is None or metric.status != "active":
            why = "no such metric" if metric is None else f"metric is {metric.status}"
            return [dead_letter(self.name, message, why, tick.metric_id)]
        return await self._fetch_one(services, message, metric, tick)

    async def _fetch_one(
        self, services: Services, message: Incoming, metric: Metric, tick: PollDue
    ) -> list[Send]:
        backfill = tick.reason == "backfill"
        params = dict(metric.params)
        if tick.window is not None:
            params.update(FROM=tick.window[0].isoformat(), TO=tick.window[1].isoformat())
        template = get_template(metric.template_id)
        if backfill and template.historical is None:
            return [dead_letter(self.name, message, f"{template.id} has no history", metric.id)]
        endpoint = template.historical if backfill and template.historical else template.polling
        fetched_at = datetime.now(UTC)
        try:
            connection = await connection_for(services, metric)
            request = request_for(services.settings, template, endpoint, params, connection)
            budget = SharedBudget(services.db, budget_key(metric, template.provider))
            async with self._limit(
                budget.key, services.settings.fetch.max_concurrent_per_connection
            ):
                payload = await fetch_payload(
                    services.http, request, services.settings.fetch, budget, endpoint.pagination
                )
        except RetryLaterError as exc:
            if backfill:  # a deferred backfill is replayed from the dead-letter topic
                return self._failed(message, metric, str(exc), backfill)
            async with services.db.transaction() as conn:
                scheduled = await catalog.record_fetch_retry(
                    conn,
                    metric.id,
                    str(exc),
                    exc.retry_at,
                    services.settings.fetch.max_retries_later,
                )
            log.info(
                "fetch.later",
                metric_id=str(metric.id),
                retry_at=exc.retry_at.isoformat(),
                scheduled=scheduled,
            )
            if scheduled:
                return []
            return self._failed(message, metric, f"{exc}; gave up after repeated deferrals", False)
        except FetchError as exc:
            log.warning("fetch.failed", metric_id=str(metric.id), error=str(exc))
            async with services.db.transaction() as conn:
                await catalog.record_metric_error(conn, metric.id, self.name, str(exc))
            return self._failed(message, metric, str(exc), backfill)
        async with services.db.transaction() as conn:
            await catalog.record_fetch_success(conn, metric.id, fetched_at)
        raw = RawPayload(
            metric_id=metric.id,
            organization_id=metric.organization_id,
            template_id=template.id,
            fetched_at=fetched_at,
            endpoint=endpoint.path,
            payload=payload,
            historical=backfill,
            chunk=tick.chunk,
            chunks=tick.chunks,
        )
        sends = [Send("raw-payloads", str(metric.id), raw)]
        if backfill:
            progress = BackfillProgress(
                metric_id=metric.id,
                organization_id=metric.organization_id,
                state="fetched",
                chunk=tick.chunk,
                chunks=tick.chunks,
            )
            sends.append(Send("backfill-progress", str(metric.id), progress))
        return sends

    def _limit(self, key: str, size: int) -> asyncio.Semaphore:
        """At most ``size`` requests in flight per connection in this worker."""
        if key not in self._limits:
            self._limits[key] = asyncio.Semaphore(size)
        return self._limits[key]

    def _failed(self, message: Incoming, metric: Metric, error: str, backfill: bool) -> list[Send]:
        sends = [dead_letter(self.name, message, error, metric.id)]
        if backfill:
            progress = BackfillProgress(
                metric_id=metric.id,
                organization_id=metric.organization_id,
                state="failed",
                error=error[:2000],
            )
            sends.append(Send("backfill-progress", str(metric.id), progress))
        return sends
