"""Deterministic values that evolve with time, so polls see history accumulate.

A series is seeded by a name (``"octocat/hello-world:stars"``); its value at a time is a
steady trend plus a small daily wave, never decreasing for counters. The same name and
time always give the same value, on any machine: tests can predict what they will see.
"""

from __future__ import annotations

import hashlib
import math
from datetime import UTC, datetime, timedelta

EPOCH = datetime(2024, 1, 1, tzinfo=UTC)


def _seed(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big")


def counter(name: str, at: datetime, base: int = 1000, per_day: float = 12.0) -> int:
    """A monotonic count (stars, views, subscribers) at ``at``."""
    seed = _seed(name)
    start = base + seed % (base * 4 + 1)
    rate = per_day * (0.5 + (seed >> 20) % 1000 / 1000)
    days = max(0.0, (at - EPOCH).total_seconds() / 86400)
    # The wave's slope never exceeds the trend's, so the count never goes down.
    wave = 0.1 * rate / (2 * math.pi) * math.sin(days * 2 * math.pi)
    return int(start + rate * days + wave)


def gauge(name: str, at: datetime, base: float = 100.0, spread: float = 0.2) -> float:
    """A value that moves up and down (revenue, active users) at ``at``."""
    seed = _seed(name)
    days = (at - EPOCH).total_seconds() / 86400
    phase = seed % 360 / 360 * 2 * math.pi
    return round(base * (1 + spread * math.sin(days / 7 * 2 * math.pi + phase)), 2)


def daily(name: str, day: datetime, base: int = 50) -> int:
    """A count for one whole day (events, commits)."""
    seed = _seed(f"{name}:{day.date().isoformat()}")
    return base // 2 + seed % (base + 1)


def week_starts(now: datetime, weeks: int) -> list[datetime]:
    """The last ``weeks`` Sundays 00:00 UTC (GitHub's statistics week), oldest first."""
    today = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    sunday = today - timedelta(days=(today.weekday() + 1) % 7)
    return [sunday - timedelta(weeks=n) for n in range(weeks - 1, -1, -1)]
