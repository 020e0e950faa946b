"""Fetch stage: a poll-due tick becomes a raw payload from the provider's API.

Credentials are resolved here and only here (``agents/fetch_client.py``); they never
travel on Kafka, reach the sandbox, or appear in an error message.

Each tick is one poll (``PollDue.poll_id``), recorded in the poll ledger
(``schema/ledger.py``) before its request: a tick delivered again re-emits the payload
the first delivery fetched instead of asking the provider twice. A provider's failure
(HTTP error after retries, a body that is not JSON or too large) belongs to that metric:
it is recorded as the metric's last error and dead-lettered; the next scheduled poll tries
again. A provider that asks to come back later (rate limit, 202) defers the poll: the
scheduler sends the same tick again at that time, a bounded number of times. A metric
whose template has no working transformer (not generated yet, or ``failed``) is not
fetched at all: the poll would spend the provider's quota for nothing.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import httpx
import structlog

from agents.fetch_client import (
    FetchError,
    RetryLaterError,
    fetch_payload,
    provider_of,
    remaining_from,
    request_for,
    reset_at_from,
    scope_of,
)
from agents.pipeline import Incoming, Send, Stage, dead_letter
from agents.services import Services
from schema import catalog, ledger, lifecycle
from schema.db import Database
from schema.models import Connection, Metric, RateLimitHeaders
from schema.token_encryption import TokenKeyError
from streams import metrics
from streams.messages import BackfillProgress, PollDue, RawPayload
from templates import get_template

log = structlog.get_logger(__name__)


@dataclass
class SharedBudget:
    """A provider rate budget kept in the database, so every worker spends the same one:
    per connection, or per provider for the deployment's default credentials."""

    db: Database
    key: str
    rate_limit: RateLimitHeaders = field(default_factory=RateLimitHeaders)
    """Where the provider's answers say what is left and when it resets (its file's)."""

    async def take(self) -> datetime | None:
        async with self.db.transaction() as conn:
            return await catalog.take_budget(conn, self.key, datetime.now(UTC))

    async def record(self, headers: httpx.Headers) -> None:
        remaining = remaining_from(headers, self.rate_limit)
        reset_at = reset_at_from(headers, self.rate_limit, datetime.now(UTC))
        if remaining is None or reset_at is None:
            return
        async with self.db.transaction() as conn:
            await catalog.record_budget(conn, self.key, remaining, reset_at)


async def connection_for(services: Services, metric: Metric) -> Connection | None:
    """The metric's connection (its credentials), read only here, in the fetch path."""
    if metric.connection_id is None:
        return None
    try:
        async with services.db.transaction() as conn:
            connection = await catalog.get_connection(
                conn, metric.connection_id, metric.organization_id, services.keyring
            )
    except TokenKeyError as exc:
        raise FetchError(str(exc)) from exc
    if connection is None:
        raise FetchError(f"connection {metric.connection_id} is gone")
    if connection.auth == "token" and connection.token is None:
        raise FetchError(
            f"connection {connection.id} has a token, and METRICLOOM_TOKEN_KEYS is not set"
            " to open it"
        )
    return connection


def budget_key(metric: Metric, provider: str) -> str:
    return f"connection:{metric.connection_id}" if metric.connection_id else f"default:{provider}"


class FetchStage(Stage[PollDue]):
    name = "fetch"

    def __init__(self) -> None:
        self._limits: dict[str, asyncio.Semaphore] = {}

    def decode(self, message: Incoming) -> PollDue:
        return PollDue.model_validate_json(message.body())

    async def handle(self, services: Services, batch: list[tuple[Incoming, PollDue]]) -> list[Send]:
        # One fetch per poll: the same tick twice in a batch (a command's stored poll sent
        # again after a crash) would otherwise be claimed by two concurrent fetches, the
        # second taken for a refetch, and its later fetch time would make a second point.
        polls: dict[tuple[UUID, datetime], tuple[Incoming, PollDue]] = {}
        for message, tick in batch:  # the first copy, in the batch's order
            polls.setdefault((tick.poll_id, tick.due_at), (message, tick))
        results = await asyncio.gather(*(self._one(services, m, t) for m, t in polls.values()))
        return [send for sends in results for send in sends]

    async def _one(self, services: Services, message: Incoming, tick: PollDue) -> list[Send]:
        async with services.db.transaction() as conn:
            metric = await catalog.get_metric(conn, tick.metric_id)
            if metric is None:
                if await lifecycle.removed(conn, "metric", tick.metric_id) is not None:
                    log.info("fetch.skipped", metric_id=str(tick.metric_id), status="deleted")
                    metrics.SKIPPED.labels(stage=self.name, reason="deleted").inc()
                    return []
                return [dead_letter(self.name, message, "no such metric", tick.metric_id)]
            if metric.status != "active":  # paused since the tick was sent: no quota spent
                log.info("fetch.skipped", metric_id=str(metric.id), status=metric.status)
                metrics.SKIPPED.labels(stage=self.name, reason=metric.status).inc()
                return []
            template = get_template(metric.template_id)
            transformer = await catalog.get_metric_transformer(conn, template.id)
            if transformer is None or transformer.status == "failed":
                why = (
                    f"waiting for template {template.id!r}'s transformer"
                    if transformer is None
                    else f"template {template.id!r}'s transformer failed; not fetched until"
                    " it is regenerated (`metricloom transformer regenerate`)"
                )
                await catalog.record_metric_error(conn, metric.id, self.name, why)
                return []
            claim = await ledger.claim_poll(
                conn, tick.poll_id, tick.due_at, tick.metric_id, tick.reason
            )
        if claim.state == "fetched":  # delivered again: the payload is in hand
            return self._payload(metric, tick, claim.fetched_at, claim.endpoint, claim.payload)
        if claim.state not in ("new", "refetch"):
            log.info("fetch.repeat", poll_id=str(tick.poll_id), state=claim.state)
            return []
        if claim.state == "refetch":
            log.warning(
                "fetch.refetch",
                poll_id=str(tick.poll_id),
                metric_id=str(tick.metric_id),
                attempts=claim.attempts,
            )
            metrics.REFETCHES.inc()
        return await self._fetch(services, message, metric, tick, claim.attempts)

    async def _fetch(
        self, services: Services, message: Incoming, metric: Metric, tick: PollDue, attempts: int
    ) -> list[Send]:
        backfill = tick.reason == "backfill"
        params = dict(metric.params)
        if tick.window is not None:
            params.update(FROM=tick.window[0].isoformat(), TO=tick.window[1].isoformat())
        template = get_template(metric.template_id)
        if backfill and template.historical is None:
            error = f"{template.id} has no history"
            async with services.db.transaction() as conn:
                await ledger.forget_poll(conn, tick.poll_id, tick.due_at)
            return [dead_letter(self.name, message, error, metric.id, metric.organization_id)]
        endpoint = template.historical if backfill and template.historical else template.polling
        fetched_at = datetime.now(UTC)
        try:
            connection = await connection_for(services, metric)
            request = request_for(
                services.settings, template, endpoint, params, connection, metric.organization_id
            )
            rate_limit = provider_of(services.settings, template).rate_limit
            budget = SharedBudget(services.db, budget_key(metric, template.provider), rate_limit)
            async with self._limit(
                budget.key, services.settings.fetch.max_concurrent_per_connection
            ):
                payload = await fetch_payload(
                    services.http,
                    request,
                    services.settings.fetch,
                    budget,
                    endpoint.pagination,
                    scope_of(services.settings, template, connection),
                    rate_limit,
                )
        except RetryLaterError as exc:
            return await self._defer(services, message, metric, tick, attempts, exc)
        except FetchError as exc:
            log.warning("fetch.failed", metric_id=str(metric.id), error=str(exc))
            metrics.FETCH_ERRORS.labels(provider=template.provider, status=exc.status).inc()
            async with services.db.transaction() as conn:
                await catalog.record_metric_error(conn, metric.id, self.name, str(exc))
                await ledger.forget_poll(conn, tick.poll_id, tick.due_at)
            return self._failed(message, metric, str(exc), backfill)
        metrics.POLLS.labels(provider=template.provider).inc()
        async with services.db.transaction() as conn:
            earlier = await ledger.record_fetched(
                conn, tick.poll_id, tick.due_at, fetched_at, endpoint.path, payload
            )
            if earlier is None:  # ours is the poll's answer (sent once this commits)
                await catalog.record_fetch_success(conn, metric.id, fetched_at)
                return self._payload(metric, tick, fetched_at, endpoint.path, payload)
        log.warning("fetch.raced", poll_id=str(tick.poll_id), state=earlier.state)
        if earlier.state == "fetched":  # the other attempt's answer, so one set of points
            return self._payload(
                metric, tick, earlier.fetched_at, earlier.endpoint, earlier.payload
            )
        return []  # its points are stored already

    def _payload(
        self,
        metric: Metric,
        tick: PollDue,
        fetched_at: datetime | None,
        endpoint: str | None,
        payload: Any,
    ) -> list[Send]:
        backfill = tick.reason == "backfill"
        raw = RawPayload(
            poll_id=tick.poll_id,
            metric_id=metric.id,
            organization_id=metric.organization_id,
            template_id=metric.template_id,
            fetched_at=fetched_at or tick.due_at,
            endpoint=endpoint or "",
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
            sends.append(
                Send("backfill-progress", str(metric.id), progress, org=metric.organization_id)
            )
        return sends

    async def _defer(
        self,
        services: Services,
        message: Incoming,
        metric: Metric,
        tick: PollDue,
        attempts: int,
        exc: RetryLaterError,
    ) -> list[Send]:
        """Come back when the provider said: the scheduler sends this tick again then,
        up to ``fetch.max_retries_later`` times, after which the poll fails."""
        limit = services.settings.fetch.max_retries_later
        if attempts > limit:
            error = f"{exc}; gave up after {limit} deferrals"
            async with services.db.transaction() as conn:
                await catalog.record_metric_error(conn, metric.id, self.name, error)
                await ledger.forget_poll(conn, tick.poll_id, tick.due_at)
            return self._failed(message, metric, error, tick.reason == "backfill")
        async with services.db.transaction() as conn:
            await ledger.record_deferred(
                conn,
                tick.poll_id,
                tick.due_at,
                exc.retry_at,
                tick.model_dump(mode="json"),
                str(exc),
            )
            await catalog.record_metric_error(
                conn, metric.id, self.name, f"{exc}; next try at {exc.retry_at.isoformat()}"
            )
        log.info("fetch.later", metric_id=str(metric.id), retry_at=exc.retry_at.isoformat())
        return []

    def _limit(self, key: str, size: int) -> asyncio.Semaphore:
        """At most ``size`` requests in flight per connection in this worker."""
        if key not in self._limits:
            self._limits[key] = asyncio.Semaphore(size)
        return self._limits[key]

    def _failed(self, message: Incoming, metric: Metric, error: str, backfill: bool) -> list[Send]:
        sends = [dead_letter(self.name, message, error, metric.id, metric.organization_id)]
        if backfill:
            progress = BackfillProgress(
                metric_id=metric.id,
                organization_id=metric.organization_id,
                state="failed",
                error=error[:2000],
            )
            sends.append(
                Send("backfill-progress", str(metric.id), progress, org=metric.organization_id)
            )
        return sends
