"""Adaptive stage batches (streams/batching.py): the linger policy on its own, and the
generator over a stand-in for a Faust stream (the same calls ``noack_take`` makes)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import pytest

from streams.batching import BatchInfo, LingerPolicy, linger_take
from streams.settings import Settings


def policy(max_size: int = 10, floor: float = 0.01, ceiling: float = 0.5) -> LingerPolicy:
    return LingerPolicy(max_size, floor_s=floor, ceiling_s=ceiling)


def test_linger_starts_at_the_floor() -> None:
    assert policy().linger_s == 0.01


def test_full_batches_lengthen_the_linger_up_to_the_ceiling() -> None:
    p = policy()
    seen = [p.after_batch(10, still_arriving=False) for _ in range(8)]
    assert seen[:3] == [0.02, 0.04, 0.08]
    assert seen[-1] == 0.5
    assert max(seen) == 0.5


def test_a_batch_still_growing_lengthens_the_linger() -> None:
    p = policy()
    assert p.after_batch(3, still_arriving=True) == 0.02


def test_small_batches_shrink_the_linger_to_the_floor() -> None:
    p = policy()
    for _ in range(6):
        p.after_batch(10, still_arriving=False)
    assert p.linger_s == 0.5
    seen = [p.after_batch(1, still_arriving=False) for _ in range(10)]
    assert seen[0] == 0.25
    assert seen[-1] == 0.01


def test_still_arriving_is_the_last_event_in_the_second_half_of_the_wait() -> None:
    p = policy()
    assert not p.still_arriving(first_at=0.0, last_at=0.0, closed_at=0.01)  # a lone event
    assert not p.still_arriving(first_at=0.0, last_at=0.004, closed_at=0.01)  # it stopped
    assert p.still_arriving(first_at=0.0, last_at=0.006, closed_at=0.01)
    assert p.still_arriving(first_at=0.0, last_at=0.01, closed_at=0.01)


def test_fixed_window_when_floor_equals_ceiling() -> None:
    p = policy(floor=0.5, ceiling=0.5)
    assert p.after_batch(1, still_arriving=False) == 0.5
    assert p.after_batch(10, still_arriving=True) == 0.5


@pytest.mark.parametrize(("floor", "ceiling"), [(0.0, 0.5), (0.6, 0.5), (-1.0, 0.5)])
def test_bad_bounds_are_refused(floor: float, ceiling: float) -> None:
    with pytest.raises(ValueError, match="linger bounds"):
        policy(floor=floor, ceiling=ceiling)


def test_settings_refuse_a_floor_above_the_window() -> None:
    with pytest.raises(ValueError, match="LINGER_MIN_S"):
        Settings(stage_linger_min_s=1.0, stage_batch_window_s=0.5)


class FakeEvent:
    def __init__(self, value: int) -> None:
        self.value = value


class FakeStream:
    """What ``linger_take`` uses of a ``faust.Stream``: a passive drainer that runs every
    queued value through the processors with ``current_event`` set, acks switched off,
    mode's ``wait``/``wait_for_stopped`` (including its answer of True on a timeout)."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[int] = asyncio.Queue()
        self.enable_acks = True
        self._processors: list[Any] = []
        self.current_event: FakeEvent | None = None
        self.channel = self
        self.log = logging.getLogger("fake-stream")
        self._stopped = asyncio.Event()
        self.drainer: asyncio.Task[None] | None = None
        self.processed: list[int] = []

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._never()

    async def _never(self) -> AsyncIterator[Any]:  # pragma: no cover - not iterated
        yield None

    @property
    def should_stop(self) -> bool:
        return self._stopped.is_set()

    def stop(self) -> None:
        self._stopped.set()

    def add_processor(self, processor: Any) -> None:
        self._processors.append(processor)

    def _enable_passive(self, channel: Any) -> None:
        self.drainer = asyncio.create_task(self._drain())

    async def _drain(self) -> None:
        while not self.should_stop:
            value = await self.queue.get()
            self.current_event = FakeEvent(value)
            for processor in list(self._processors):
                await processor(value)
            self.processed.append(value)
            self.current_event = None

    async def wait(self, event: asyncio.Event, timeout: float | None = None) -> bool:
        stopped = asyncio.ensure_future(self._stopped.wait())
        waiting = asyncio.ensure_future(event.wait())
        done, pending = await asyncio.wait(
            {stopped, waiting}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
        for future in pending:
            future.cancel()
        return waiting not in done

    async def wait_for_stopped(self, event: asyncio.Event, timeout: float | None = None) -> bool:
        return await self.wait(event, timeout)

    async def crash(self, exc: BaseException) -> None:  # pragma: no cover
        raise AssertionError(f"crashed: {exc!r}")


async def next_batch(it: AsyncGenerator[list[Any], None], timeout: float = 2.0) -> list[int]:
    return [e.value for e in await asyncio.wait_for(it.__anext__(), timeout)]


async def test_a_lone_event_goes_after_the_floor_not_the_window() -> None:
    stream = FakeStream()
    info = BatchInfo()
    it = linger_take(stream, policy(floor=0.02, ceiling=2.0), info=info)
    assert stream.enable_acks is True
    task = asyncio.ensure_future(next_batch(it))
    await asyncio.sleep(0.3)  # idle: nothing is yielded, nothing times out
    assert not task.done()
    assert stream.enable_acks is False
    started = time.monotonic()
    stream.queue.put_nowait(1)
    assert await task == [1]
    assert time.monotonic() - started < 0.5
    assert info.size == 1 and info.linger_s == 0.02
    stream.stop()
    await it.aclose()
    assert stream.enable_acks is False  # left off (a noack stream), and the processor removed
    assert stream._processors == []


async def test_what_is_queued_comes_in_one_batch_and_never_more_than_max() -> None:
    stream = FakeStream()
    it = linger_take(stream, policy(max_size=4, floor=0.05, ceiling=0.5))
    for n in range(10):
        stream.queue.put_nowait(n)
    assert await next_batch(it) == [0, 1, 2, 3]  # full: no linger
    assert await next_batch(it) == [4, 5, 6, 7]
    assert await next_batch(it) == [8, 9]
    stream.stop()
    await it.aclose()


async def test_nothing_is_added_while_the_caller_holds_a_batch() -> None:
    stream = FakeStream()
    it = linger_take(stream, policy(max_size=10, floor=0.01, ceiling=0.5))
    stream.queue.put_nowait(1)
    assert await next_batch(it) == [1]
    for n in range(2, 5):
        stream.queue.put_nowait(n)
    await asyncio.sleep(0.05)  # the caller is still "processing" batch [1]
    assert stream.processed == [1]  # the next value waits at the processor
    assert await next_batch(it) == [2, 3, 4]
    stream.stop()
    await it.aclose()


async def test_a_steady_stream_lengthens_the_linger_and_idle_shrinks_it() -> None:
    stream = FakeStream()
    p = policy(max_size=1000, floor=0.01, ceiling=0.16)
    info = BatchInfo()
    it = linger_take(stream, p, info=info)

    async def feed() -> None:
        for n in range(400):
            stream.queue.put_nowait(n)
            await asyncio.sleep(0.002)

    feeder = asyncio.create_task(feed())
    sizes = []
    while not feeder.done():
        sizes.append(len(await next_batch(it)))
    assert max(sizes) > 20  # batches grew with the linger
    assert p.linger_s > 0.04
    await feeder
    for _ in range(10):  # idle again: lone events
        stream.queue.put_nowait(-1)
        while True:
            batch = await next_batch(it)
            if batch == [-1]:
                break
        await asyncio.sleep(0.01)
    assert p.linger_s == 0.01
    stream.stop()
    await it.aclose()


async def test_a_stopping_stream_ends_the_batches_without_yielding_a_partial_one() -> None:
    stream = FakeStream()
    it = linger_take(stream, policy(max_size=10, floor=1.0, ceiling=1.0))
    task = asyncio.ensure_future(next_batch(it))
    stream.queue.put_nowait(1)
    await asyncio.sleep(0.05)  # lingering with one event
    stream.stop()
    with pytest.raises(StopAsyncIteration):
        await task
    assert stream.enable_acks is False
    assert stream._processors == []
