"""Scheduler stage: a leader-only Faust timer turns due metrics into poll-due ticks.

The claim is the database's (``schema.catalog.CLAIM_DUE``: ``FOR UPDATE SKIP LOCKED``,
next poll computed from the due time). The ticks are produced and acknowledged by the
broker *before* the claiming transaction commits, so a tick that fails to reach Kafka
leaves the metric due for the next run instead of losing the period.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import structlog

from agents.codegen import alerts
from agents.pipeline import Send
from agents.services import Services
from schema import catalog, jobs, ledger
from schema.db import Conn
from streams.messages import CodegenRequest, PollDue

log = structlog.get_logger(__name__)


async def due_ticks(conn: Conn, now: datetime, limit: int) -> list[Send]:
    """Claim up to ``limit`` due metrics, the failed ones whose retry gap has passed, and
    the deferred polls whose time has come, in the caller's transaction; one tick each.
    Every tick's identity comes from what was claimed (the metric and its due time), so a
    pass repeated after a crash sends the same polls, which the fetch stage's ledger
    recognises."""
    claimed = await catalog.claim_due_metrics(conn, now, limit)
    retries = await catalog.claim_retries(conn, now, limit)
    deferred = await ledger.release_deferred(conn, now, limit)
    ticks = [PollDue(metric_id=metric_id, due_at=due_at) for metric_id, due_at in claimed]
    ticks += [PollDue(metric_id=m, due_at=due, reason="retry") for m, due in retries]
    ticks += [PollDue.model_validate(tick) for tick in deferred]
    return [Send("poll-due", str(tick.metric_id), tick) for tick in ticks]


async def run_once(services: Services, send: Callable[[list[Send]], Awaitable[None]]) -> int:
    """One scheduler pass: claim, produce, then commit. Returns the number of ticks."""
    total = 0
    while True:
        async with services.db.transaction() as conn:
            ticks = await due_ticks(conn, datetime.now(UTC), services.settings.scheduler_batch)
            if ticks:
                await send(ticks)
        total += len(ticks)
        if len(ticks) < services.settings.scheduler_batch:
            break
    if total:
        log.info("scheduler.ticks", count=total)
    async with services.db.transaction() as conn:
        sends = await due_generations(
            conn, datetime.now(UTC), services.settings.healing.generation_attempts
        )
        if sends:
            await send(sends)
    return total


async def due_generations(conn: Conn, now: datetime, attempts: int) -> list[Send]:
    """Owed generations whose time has come: their request again, or, past ``attempts``,
    an alert (and a healing transformer marked ``failed``, so its metrics stop spending
    the provider's quota until an operator regenerates it)."""
    sends: list[Send] = []
    for job in await jobs.claim_due(conn, now, 100):
        request = CodegenRequest.model_validate(job.request)
        template_id = request.template_id or ""
        if job.attempts <= attempts:
            log.info("scheduler.generation_again", target=job.target, attempts=job.attempts)
            sends.append(Send("codegen-requests", template_id, request))
            continue
        error = f"gave up after {attempts} attempts: {job.last_error or 'no answer in time'}"
        await jobs.close(conn, job.target)
        metrics = await catalog.active_metrics(conn, template_id)
        for metric in metrics:
            await catalog.record_metric_error(conn, metric.id, "codegen", error)
        if request.reason == "heal":
            await catalog.set_transformer_status(conn, template_id, "failed", error)
        log.warning("scheduler.generation_given_up", target=job.target, error=error[:300])
        sends += alerts(template_id, error, sorted({m.organization_id for m in metrics}))
    return sends
