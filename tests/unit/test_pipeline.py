"""The error policy, with a stage made of plain functions and no Kafka."""

from __future__ import annotations

from typing import Any

import pytest
import stamina

from agents.pipeline import Incoming, Send, Stage, process_batch
from agents.services import Services
from schema.exceptions import DatabaseUnavailableError
from streams.messages import PollDue
from streams.settings import Settings


class Recorder(Stage[PollDue]):
    name = "recorder"

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.calls = 0

    def decode(self, value: bytes) -> PollDue:
        return PollDue.model_validate_json(value)

    async def handle(self, services: Services, batch: list[tuple[Incoming, PollDue]]) -> list[Send]:
        self.calls += 1
        if self.calls <= self.failures:
            raise DatabaseUnavailableError("connection refused")
        return [Send("points", str(tick.metric_id), tick) for _, tick in batch]


@pytest.fixture(autouse=True)
def _no_backoff() -> Any:
    stamina.set_testing(True, attempts=3)
    yield
    stamina.set_testing(False)


def _services() -> Services:
    return Services.from_settings(Settings(retry_attempts=3))


def _tick(n: int) -> Incoming:
    value = PollDue(
        metric_id=f"00000000-0000-0000-0000-{n:012d}", due_at="2025-01-01T00:00:00Z"
    ).to_bytes()
    return Incoming("poll-due", 0, n, None, value)


async def test_poison_message_is_dead_lettered_and_the_rest_processed() -> None:
    """One undecodable message goes to dead-letter; the others are handled."""
    stage = Recorder()
    sends = await process_batch(
        stage, _services(), [_tick(1), Incoming("poll-due", 0, 2, b"k", b"garbage"), _tick(3)]
    )
    topics = [s.topic for s in sends]
    assert topics.count("dead-letter") == 1 and topics.count("points") == 2
    dead = next(s.record for s in sends if s.topic == "dead-letter")
    assert dead.original == "garbage" and dead.offset == 2 and dead.key == "k"  # type: ignore[attr-defined]


async def test_transient_failure_is_retried_then_succeeds() -> None:
    """A database blip is retried; the batch then goes through whole."""
    stage = Recorder(failures=2)
    sends = await process_batch(stage, _services(), [_tick(1), _tick(2)])
    assert stage.calls == 3
    assert [s.topic for s in sends] == ["points", "points"]


async def test_persistent_failure_dead_letters_every_message() -> None:
    """When retries run out, every message is dead-lettered with the error: nothing lost,
    nothing retried forever."""
    stage = Recorder(failures=100)
    sends = await process_batch(stage, _services(), [_tick(1), _tick(2)])
    assert stage.calls == 3
    assert [s.topic for s in sends] == ["dead-letter", "dead-letter"]
    assert all(s.record.error_type == "DatabaseUnavailableError" for s in sends)  # type: ignore[attr-defined]


class Buggy(Recorder):
    async def handle(self, services: Services, batch: list[tuple[Incoming, PollDue]]) -> list[Send]:
        raise KeyError("a bug")


async def test_a_bug_dead_letters_the_batch_instead_of_stopping_the_agent() -> None:
    """An unexpected exception keeps the batch (dead letters) and returns normally."""
    sends = await process_batch(Buggy(), _services(), [_tick(1), _tick(2)])
    assert [s.topic for s in sends] == ["dead-letter", "dead-letter"]
    assert sends[0].record.error_type == "KeyError"  # type: ignore[attr-defined]


def test_backfill_windows_cover_the_history_limit_oldest_first() -> None:
    """90 days in 30-day chunks: three windows, contiguous, ending today."""
    import itertools
    import uuid
    from datetime import UTC, datetime, timedelta

    from agents.backfill import backfill_ticks
    from templates import get_template

    now = datetime(2026, 3, 31, 12, tzinfo=UTC)
    ticks = [s.record for s in backfill_ticks(get_template("posthog-events"), [uuid.uuid4()], now)]
    windows = [t.window for t in ticks]  # type: ignore[attr-defined]
    assert [(t.chunk, t.chunks) for t in ticks] == [(1, 3), (2, 3), (3, 3)]  # type: ignore[attr-defined]
    assert windows[0][0] == now.date() - timedelta(days=89) and windows[-1][1] == now.date()
    assert all(b[0] == a[1] + timedelta(days=1) for a, b in itertools.pairwise(windows))
    single = backfill_ticks(get_template("github-commit-activity"), [uuid.uuid4()], now)
    assert [s.record.window for s in single] == [None]  # type: ignore[attr-defined]
    assert backfill_ticks(get_template("github-repo-stars"), [uuid.uuid4()], now) == []
