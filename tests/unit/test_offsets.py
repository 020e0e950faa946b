"""The consumer never commits past an offset the stream did not acknowledge (streams/offsets.py).

These drive the real Faust consumer's commit arithmetic (``_new_offset``, what its periodic
commit calls) with the bookkeeping its ``ack`` keeps; nothing connects to a broker.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio
from faust.types import TP, Message

from streams.offsets import HeadSafeConsumer, MetricloomApp

PARTITION = TP("points", 0)


@pytest_asyncio.fixture
async def consumer() -> AsyncIterator[HeadSafeConsumer]:
    """Made inside the test's event loop (Faust binds its services to the running one)."""
    app = MetricloomApp("offsets-test", broker="kafka://127.0.0.1:1", autodiscover=False)
    made = app.consumer
    assert isinstance(made, HeadSafeConsumer)
    yield made
    made._thread.thread_loop.close()  # the consumer's thread made a loop it never ran


def acknowledge(consumer: HeadSafeConsumer, *offsets: int) -> None:
    for offset in offsets:
        consumer._acked[PARTITION].append(offset)
        consumer._acked_index[PARTITION].add(offset)


async def test_one_unacknowledged_offset_at_the_head_holds_the_commit(
    consumer: HeadSafeConsumer,
) -> None:
    """Committed 10 (the next to read), 11 and 12 acknowledged, 10 never: Faust 0.15.3
    alone would commit 13 and offset 10 would never be read again."""
    consumer._committed_offset[PARTITION] = 10
    acknowledge(consumer, 11, 12)
    assert consumer._new_offset(PARTITION) is None
    acknowledge(consumer, 10)  # once the head is acknowledged, the whole run commits
    assert consumer._new_offset(PARTITION) == 13


async def test_a_run_from_the_committed_offset_commits_to_its_end(
    consumer: HeadSafeConsumer,
) -> None:
    consumer._committed_offset[PARTITION] = 10
    acknowledge(consumer, 10, 11, 12, 14)
    assert consumer._new_offset(PARTITION) == 13  # up to the hole at 13, not past it


async def test_an_offset_faust_recorded_as_a_gap_counts_as_acknowledged(
    consumer: HeadSafeConsumer,
) -> None:
    """Offsets the consumer never received (compacted away, control records) are Faust's
    gaps; they do not hold the commit."""
    consumer._committed_offset[PARTITION] = 10
    consumer._gap[PARTITION].addi(10, 12)
    acknowledge(consumer, 12, 13)
    assert consumer._new_offset(PARTITION) == 14


def message(offset: int, generation: int) -> Message:
    return Message(
        PARTITION.topic,
        PARTITION.partition,
        offset,
        0.0,
        0,
        [],
        b"k",
        b"v",
        None,
        tp=PARTITION,
        generation_id=generation,
    )


def acks_enabled(consumer: HeadSafeConsumer) -> None:
    """What Faust's conductor does for a topic an agent subscribes to."""
    consumer.app.topics.acking_topics.add(PARTITION.topic)
    consumer.app.consumer_generation_id = 2
    consumer.app.flow_control.resume()


async def test_an_ack_from_the_current_generation_counts(consumer: HeadSafeConsumer) -> None:
    acks_enabled(consumer)
    consumer._committed_offset[PARTITION] = 10
    assert consumer.ack(message(10, generation=2))
    assert consumer._new_offset(PARTITION) == 11


async def test_an_ack_of_a_message_fetched_before_the_rebalance_does_not_count(
    consumer: HeadSafeConsumer,
) -> None:
    """Faust's stream skips a message of an older generation and acknowledges it unread;
    the consumer seeks back and fetches it again, and only that copy's ack may count."""
    acks_enabled(consumer)
    consumer._committed_offset[PARTITION] = 10
    assert not consumer.ack(message(10, generation=1))
    assert consumer._new_offset(PARTITION) is None
    assert consumer.ack(message(10, generation=2))  # the refetched copy, once processed
    assert consumer._new_offset(PARTITION) == 11


async def test_no_ack_counts_while_the_flow_is_suspended(consumer: HeadSafeConsumer) -> None:
    """During a rebalance (flow suspended) the stream skips and acknowledges what it gets."""
    acks_enabled(consumer)
    consumer._committed_offset[PARTITION] = 10
    consumer.app.flow_control.suspend()
    assert not consumer.ack(message(10, generation=2))
    assert consumer._new_offset(PARTITION) is None


async def test_without_a_committed_offset_the_generations_first_read_is_the_head(
    consumer: HeadSafeConsumer,
) -> None:
    """A partition Faust knows no committed offset of (never committed, a committed 0,
    or reassigned before its seek): the lowest offset the streams were handed in this
    generation holds the commit as a committed offset would. Faust alone would commit 8
    over the unacknowledged 5."""
    acks_enabled(consumer)
    assert consumer._committed_offset[PARTITION] is None
    for offset in (5, 6, 7):
        consumer.track_message(message(offset, generation=2))
    assert consumer.ack(message(6, generation=2)) and consumer.ack(message(7, generation=2))
    assert consumer._new_offset(PARTITION) is None
    assert consumer.ack(message(5, generation=2))
    assert consumer._new_offset(PARTITION) == 8


async def test_an_older_generations_read_is_no_head(consumer: HeadSafeConsumer) -> None:
    """What was read before the rebalance says nothing of the new generation's head."""
    acks_enabled(consumer)
    consumer.track_message(message(3, generation=1))
    consumer.track_message(message(5, generation=2))
    assert consumer.ack(message(5, generation=2))
    assert consumer._new_offset(PARTITION) == 6
