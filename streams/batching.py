"""Adaptive stage batches: take what is there and go; wait to fill a batch only while more
is arriving.

Faust's ``noack_take(max, within)`` waits the whole ``within`` window from the moment it
starts waiting, however little arrives: on an idle pipeline a lone event pays up to the
window at every hop. :func:`linger_take` is the same generator (a processor fills a buffer
from the stream, which is consumed passively in the background; the *events* are kept so
the caller acknowledges them itself, after its batch succeeded) with a different wait:

1. wait, with no timeout, for the batch's first event (or for the stream to stop);
2. then *linger*: wait for more until the buffer holds ``max_size`` events or ``linger``
   seconds have passed since that first event, whichever comes first;
3. yield the batch; the buffer is closed while the caller holds it (as in ``noack_take``:
   what arrives meanwhile waits in Faust's queue and starts the next batch).

The linger adapts, like Kafka's ``linger.ms`` would if it tuned itself
(:class:`LingerPolicy`): a batch that came out full, or that was still growing when its
linger ran out, doubles the linger (up to the ceiling, the old fixed window); a batch whose
events had stopped arriving well before its linger ran out (a lone event, a burst already
queued) halves it (down to the floor). Idle, a stage pays the floor per hop; under a steady
stream its batches grow towards ``max_size`` as the fixed window's did.

Nothing here acknowledges anything: a batch that is never yielded (the stream stopped
while it filled) or whose caller fails is left unacknowledged and is delivered again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class LingerPolicy:
    """How long a batch waits for more events after its first one, from how full the last
    batches came out. Plain arithmetic, no clock of its own (tested on its own).

    ``floor_s`` is what a lone event pays per hop; ``ceiling_s`` bounds the wait under load
    (the stage's fixed window before this policy). ``linger_s`` starts at the floor."""

    max_size: int
    floor_s: float
    ceiling_s: float
    linger_s: float = field(init=False)

    GROWTH = 2.0
    """The factor by which the linger grows or shrinks after a batch."""

    def __post_init__(self) -> None:
        if self.max_size < 1:
            raise ValueError("max_size must be at least 1")
        if not 0 < self.floor_s <= self.ceiling_s:
            raise ValueError("the linger bounds need 0 < floor <= ceiling")
        self.linger_s = self.floor_s

    def still_arriving(self, first_at: float, last_at: float, closed_at: float) -> bool:
        """Whether events were still coming when a batch closed: its last event arrived in
        the second half of the time it waited (a lone event never counts)."""
        waited = closed_at - first_at
        return last_at > first_at and last_at - first_at >= waited / 2

    def after_batch(self, size: int, still_arriving: bool) -> float:
        """Adapt to the batch just taken (``size`` events; ``still_arriving`` as above) and
        answer the linger for the next one."""
        if size >= self.max_size or still_arriving:
            self.linger_s = min(self.ceiling_s, self.linger_s * self.GROWTH)
        else:
            self.linger_s = max(self.floor_s, self.linger_s / self.GROWTH)
        return self.linger_s


@dataclass
class BatchInfo:
    """What the generator saw of the batch it just yielded (for logs and tests)."""

    size: int = 0
    linger_s: float = 0.0
    """The linger this batch was allowed."""
    waited_s: float = 0.0
    """From its first event to its yield."""


async def linger_take(
    stream: Any,
    policy: LingerPolicy,
    *,
    clock: Callable[[], float] = time.monotonic,
    info: BatchInfo | None = None,
) -> AsyncGenerator[list[Any], None]:
    """Batches of the *events* of a Faust ``stream`` (``faust.Stream``; events, not values,
    so the caller can ``await stream.ack(event)`` each one after its batch succeeded),
    at most ``policy.max_size`` each, lingering as the policy says. Stops when the stream
    stops (a batch still filling is then dropped unacknowledged, to be delivered again).

    Modelled on faust-streaming 0.15's ``Stream.noack_take``, but the stream's automatic
    acks are switched off for good, not restored when this ends: should Faust restart the
    agent's actor on the same stream, its background reader would otherwise acknowledge
    events no batch processed until the next take switched them off again (Faust's own
    take restores them; the agent switches them off after it). A processor (removed after) appends
    ``stream.current_event`` to the buffer while ``_enable_passive`` drives the stream in
    the background. Waits go through ``stream.wait_for_stopped`` so a stopping stream
    ends them; mode answers "stopped" on a timeout too, so ``should_stop`` is what decides.
    """
    buffer: list[Any] = []
    arrived = asyncio.Event()  # the buffer is not empty
    full = asyncio.Event()  # the buffer holds max_size events
    room = asyncio.Event()  # the processor may add (cleared while a batch is out or full)
    room.set()
    first_at = last_at = 0.0

    async def add_to_buffer(value: Any) -> Any:
        nonlocal first_at, last_at
        try:
            event = stream.current_event  # read before any await: the event of this value
            if event is None:
                raise RuntimeError("linger_take found current_event is None")
            while not room.is_set() and not stream.should_stop:
                await stream.wait(room)
            if stream.should_stop:  # never added: unacknowledged, delivered again
                return value
            now = clock()
            if not buffer:
                first_at = now
            last_at = now
            buffer.append(event)
            arrived.set()
            if len(buffer) >= policy.max_size:
                full.set()
                room.clear()  # strict: never more than max_size in one batch
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            stream.log.exception("Error adding to linger buffer: %r", exc)
            await stream.crash(exc)
        return value

    stream.enable_acks = False  # the caller acknowledges, after its batch succeeded
    stream.add_processor(add_to_buffer)
    stream._enable_passive(aiter(stream.channel))
    try:
        while not stream.should_stop:
            if not buffer:
                await stream.wait_for_stopped(arrived)  # no timeout: idle costs nothing
                if stream.should_stop:
                    break
            linger = policy.linger_s
            remaining = first_at + linger - clock()
            if not full.is_set() and remaining > 0:
                await stream.wait_for_stopped(full, timeout=remaining)
                if stream.should_stop:
                    break
            batch = list(buffer)
            closed_at = clock()
            arriving = policy.still_arriving(first_at, last_at, closed_at)
            if info is not None:
                info.size, info.linger_s, info.waited_s = len(batch), linger, closed_at - first_at
            room.clear()  # what arrives while the caller holds the batch waits its turn
            try:
                yield batch
            finally:
                buffer.clear()
                arrived.clear()
                full.clear()
                room.set()
            policy.after_batch(len(batch), arriving)
    finally:  # acks stay off: see the docstring
        stream._processors.remove(add_to_buffer)
        room.set()  # a processor held at the door lets its value through
