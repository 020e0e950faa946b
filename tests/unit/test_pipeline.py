"""The error policy and the delivery loop, with stages made of plain functions and no Kafka."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sequence
from typing import Any

import pytest

from agents.pipeline import Incoming, Outgoing, Send, Stage, dead_letter, process_batch
from agents.services import Services
from schema.exceptions import DatabaseUnavailableError, KafkaUnavailableError
from streams.app import StageRunner
from streams.messages import DeadLetter, PollDue, RawPayload
from streams.settings import Settings
from streams.topics import DEAD_LETTER_ORIGINAL_BYTES


class Recorder(Stage[PollDue]):
    """Echoes each tick to ``points``; fails the first ``failures`` batches with an outage."""

    name = "recorder"

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.calls = 0
        self.delivered_batches: list[int] = []

    def decode(self, message: Incoming) -> PollDue:
        return PollDue.model_validate_json(message.body())

    async def handle(self, services: Services, batch: list[tuple[Incoming, PollDue]]) -> list[Send]:
        self.calls += 1
        if self.calls <= self.failures:
            raise DatabaseUnavailableError("connection refused")
        return [Send("poll-due", str(tick.metric_id), tick) for _, tick in batch]

    async def delivered(self, services: Services, batch: Sequence[Incoming]) -> None:
        self.delivered_batches.append(len(batch))


def _services() -> Services:
    return Services.from_settings(Settings(pause_initial_s=0.001, pause_max_s=0.002))


def _tick(n: int) -> Incoming:
    value = PollDue(
        metric_id=f"00000000-0000-0000-0000-{n:012d}", due_at="2025-01-01T00:00:00Z"
    ).to_bytes()
    return Incoming("poll-due", 0, n, None, value)


def _dead(out: list[Outgoing]) -> list[DeadLetter]:
    return [DeadLetter.model_validate_json(o.value) for o in out if o.topic == "dead-letter"]


async def test_poison_message_is_dead_lettered_and_the_rest_processed() -> None:
    """One undecodable message goes to dead-letter; the others are handled."""
    out = await process_batch(
        Recorder(), _services(), [_tick(1), Incoming("poll-due", 0, 2, b"k", b"garbage"), _tick(3)]
    )
    assert [o.topic for o in out].count("poll-due") == 2
    [dead] = _dead(out)
    assert dead.original == "garbage" and dead.offset == 2 and dead.key == "k"
    assert dead.original_value() == b"garbage" and not dead.truncated


async def test_an_outage_is_raised_for_the_adapter_never_dead_lettered() -> None:
    """A database outage is not the messages' fault: process_batch raises it, and
    dead-letters nothing."""
    with pytest.raises(DatabaseUnavailableError):
        await process_batch(Recorder(failures=1), _services(), [_tick(1), _tick(2)])


async def test_the_runner_pauses_through_an_outage_and_delivers_once_it_is_over() -> None:
    """Three failed attempts (database, then the broker refusing the records), then the
    batch goes through whole: produced once, and only then reported delivered."""
    stage = Recorder(failures=2)
    produced: list[list[Outgoing]] = []
    refusals = [KafkaUnavailableError("broker away")]

    async def produce(records: Sequence[Outgoing]) -> list[bool]:
        if refusals:
            raise refusals.pop()
        produced.append(list(records))
        return [True] * len(records)

    runner = StageRunner(stage, _services(), produce, _services().settings)
    await runner.run([_tick(1), _tick(2)])
    assert stage.calls == 4
    assert [[o.topic for o in batch] for batch in produced] == [["poll-due", "poll-due"]]
    assert stage.delivered_batches == [2]


async def test_records_the_broker_took_are_not_sent_again() -> None:
    """The broker takes the first record and refuses the second: the retry sends only the
    second (the stage's answer to the repeat is the same bytes), so nothing lands twice."""
    stage = Recorder()
    sent: list[list[str]] = []

    async def produce(records: Sequence[Outgoing]) -> list[bool]:
        sent.append([json.loads(r.value)["metric_id"][-1] for r in records])
        return [True, False] if len(sent) == 1 else [True] * len(records)

    runner = StageRunner(stage, _services(), produce, _services().settings)
    await runner.run([_tick(1), _tick(2)])
    assert sent == [["1", "2"], ["2"]]
    assert stage.delivered_batches == [2]


class Picky(Recorder):
    """Fails any batch that holds tick 2 (a record that breaks the batch's SQL, say)."""

    async def handle(self, services: Services, batch: list[tuple[Incoming, PollDue]]) -> list[Send]:
        if any(message.offset == 2 for message, _ in batch):
            raise KeyError("tick 2 breaks the batch")
        return await super().handle(services, batch)


async def test_a_message_that_breaks_its_batch_is_dead_lettered_alone() -> None:
    """The batch is handled again one message at a time: only the culprit is
    dead-lettered (with its exception); its neighbours go on."""
    out = await process_batch(Picky(), _services(), [_tick(1), _tick(2), _tick(3)])
    assert (
        sorted(json.loads(o.value)["due_at"] for o in out if o.topic == "poll-due")
        == ["2025-01-01T00:00:00Z"] * 2
    )
    [dead] = _dead(out)
    assert dead.offset == 2 and dead.error_type == "KeyError"


class Surrogate(Recorder):
    """Answers tick 2 with a record holding a lone surrogate, which cannot be encoded."""

    async def handle(self, services: Services, batch: list[tuple[Incoming, PollDue]]) -> list[Send]:
        sends = await super().handle(services, batch)
        for message, tick in batch:
            if message.offset == 2:
                bad = RawPayload(
                    metric_id=tick.metric_id,
                    organization_id="o",
                    template_id="t",
                    fetched_at=tick.due_at,
                    endpoint="/",
                    payload={"name": "\ud800"},
                )
                sends.append(Send("raw-payloads", "k", bad))
        return sends


async def test_a_record_that_cannot_be_encoded_dead_letters_only_its_cause() -> None:
    """A lone surrogate in a produced record fails the encoding of that message's
    records alone; the others are produced."""
    out = await process_batch(Surrogate(), _services(), [_tick(1), _tick(2), _tick(3)])
    assert [o.topic for o in out].count("poll-due") == 2
    [dead] = _dead(out)
    assert dead.offset == 2 and dead.error_type == "UnencodableRecordError"


def test_dead_letters_always_fit_and_say_what_they_kept() -> None:
    """An original too large to keep is truncated with its size and SHA-256; bytes that
    are not UTF-8 are kept as base64; a null record is marked as such."""
    big = b"x" * (DEAD_LETTER_ORIGINAL_BYTES + 10)
    record = dead_letter("s", Incoming("points", 0, 1, None, big), "too big").record
    assert isinstance(record, DeadLetter)
    assert record.truncated and record.original_bytes == len(big)
    assert record.original_sha256 == hashlib.sha256(big).hexdigest()
    assert len(record.to_bytes()) < DEAD_LETTER_ORIGINAL_BYTES + 64 * 1024

    binary = dead_letter("s", Incoming("points", 0, 2, None, b"\xff\x00"), "bad").record
    assert isinstance(binary, DeadLetter) and binary.original is None
    assert binary.original_base64 == base64.b64encode(b"\xff\x00").decode()
    assert binary.original_value() == b"\xff\x00"

    null = dead_letter("s", Incoming("points", 0, 3, None, None), "null").record
    assert isinstance(null, DeadLetter) and null.original_null and null.original_value() is None


def test_a_dead_letter_keeps_its_id_however_often_the_message_fails() -> None:
    """The id comes from where the message was: a replay is recognised."""
    message = Incoming("points", 3, 99, None, b"{}")
    first: Any = dead_letter("write", message, "one").record
    second: Any = dead_letter("write", message, "two").record
    assert first.id == second.id


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
    assert len({t.poll_id for t in ticks}) == 3  # type: ignore[attr-defined]
    single = backfill_ticks(get_template("github-commit-activity"), [uuid.uuid4()], now)
    assert [s.record.window for s in single] == [None]  # type: ignore[attr-defined]
    assert backfill_ticks(get_template("github-repo-stars"), [uuid.uuid4()], now) == []
