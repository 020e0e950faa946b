"""The command ingress when its commit fails: what it takes again, and what it leaves to
the partition's next owner."""

from __future__ import annotations

from typing import Any

import pytest
from aiokafka.errors import IllegalStateError
from aiokafka.structs import TopicPartition

from streams.ingress import CommandIngress
from streams.settings import Settings


class _Record:
    def __init__(self, offset: int) -> None:
        self.offset = offset
        self.key = b"acme"
        self.value = b'{"type": "refresh_metric"}'


class _Consumer:
    """A consumer in the middle of a rebalance: the batch was fetched, the commit is
    refused, and only ``assigned`` is still this consumer's."""

    def __init__(self, batch: dict[TopicPartition, list[_Record]], assigned: set[Any]) -> None:
        self.batch = batch
        self.assigned = assigned
        self.sought: list[tuple[TopicPartition, int]] = []

    async def getmany(self, **_: Any) -> dict[TopicPartition, list[_Record]]:
        return self.batch

    async def commit(self, _: Any) -> None:
        raise IllegalStateError("No partitions assigned")

    def assignment(self) -> set[Any]:
        return self.assigned

    def seek(self, tp: TopicPartition, offset: int) -> None:
        assert tp in self.assigned, "aiokafka asserts on a partition it does not hold"
        self.sought.append((tp, offset))


class _Producer:
    async def send(self, *_: Any, **__: Any) -> Any:
        async def delivered() -> None:
            return None

        return delivered()


async def test_a_failed_commit_seeks_back_only_the_partitions_still_held() -> None:
    """The worker crashed here once: a tenant created mid-batch started a rebalance, the
    commit was refused, and seeking a partition no longer assigned raised AssertionError
    out of the ingress task. Now the held partition is taken again from its first record,
    the other is left to its next owner, and the KafkaError goes to the pause path."""
    held = TopicPartition("t-commands.acme", 0)
    gone = TopicPartition("t-commands.beta", 0)
    consumer = _Consumer({held: [_Record(5), _Record(6)], gone: [_Record(9)]}, {held})
    ingress = CommandIngress(Settings(topic_prefix="t-"))
    with pytest.raises(IllegalStateError):
        await ingress._pass_on(consumer, _Producer(), "t-command-inbox")
    assert consumer.sought == [(held, 5)]
