"""Backfill planning: the ticks that fetch a new metric's history.

A template with a ``historical`` endpoint is backfilled when a metric is created (and
again when its transformer is healed, to recover the window it missed). With
``historical_chunk_days`` the history, as far back as ``historical_data_limit_days``, is
fetched in windows (oldest first), one ``poll-due`` record each: every chunk is its own
Kafka message, acknowledged only once its points are stored, so a worker that dies in the
middle resumes with the chunks not yet done (a redone chunk changes nothing: the writer
upserts). The endpoint receives each window as the ``{FROM}`` and ``{TO}`` parameters.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from uuid import UUID

from agents.pipeline import Send
from schema.models import MetricTemplate
from streams.messages import PollDue


def backfill_ticks(
    template: MetricTemplate, metric_ids: list[UUID], now: datetime | None = None
) -> list[Send]:
    """The backfill ticks for these metrics (none when the template has no history)."""
    if template.historical is None:
        return []
    now = now or datetime.now(UTC)
    windows: list[tuple[date, date] | None] = [None]
    if template.historical_chunk_days and template.historical_data_limit_days:
        today = now.date()
        start = today - timedelta(days=template.historical_data_limit_days - 1)
        windows = []
        while start <= today:
            end = min(today, start + timedelta(days=template.historical_chunk_days - 1))
            windows.append((start, end))
            start = end + timedelta(days=1)
    sends = []
    for metric_id in metric_ids:
        for number, window in enumerate(windows, start=1):
            tick = PollDue(
                metric_id=metric_id,
                due_at=now,
                reason="backfill",
                window=window,
                chunk=number if window else None,
                chunks=len(windows) if window else None,
            )
            sends.append(Send("poll-due", str(metric_id), tick))
    return sends
