"""Commits that never pass an offset the stages did not finish.

faust-streaming 0.15.3 commits, per partition, the end of the first run of consecutive
acknowledged offsets (``Consumer._new_offset``). It refuses to when the run starts past the
committed offset, but its test is ``min(acked) - committed > 1`` while ``committed`` is the
*next offset to read*: one unacknowledged offset at the head (committed 10, acked 11, 12)
passes it, and the commit moves to 13 over offset 10, which is then never delivered again.
Our stages acknowledge a batch's events in order after its effects are durable, so a head
left unacknowledged means an event the stage never finished (a stream stopped while it held
it, for example): committing past it would lose it silently.

:class:`HeadSafeConsumer` holds the commit at such a head instead (logged, so a stall is
seen): the event is redelivered after the next restart or rebalance, at least once as the
README promises. It also refuses the acknowledgements Faust gives messages its stream
skipped around a rebalance without processing them (:meth:`HeadSafeConsumer.ack`).
Everything else is Faust's own code; :class:`MetricloomApp` plugs the
consumer in through Faust's transport class, its documented extension point.
"""

from __future__ import annotations

from typing import Any

import faust
import structlog
from faust.transport import by_url
from faust.transport.drivers.aiokafka import Consumer, Transport

log = structlog.get_logger(__name__)


class HeadSafeConsumer(Consumer):
    """Faust's aiokafka consumer, minus commits past an offset nobody processed."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._first_read: dict[Any, tuple[int, int]] = {}
        """Per partition: (generation, the lowest offset handed to the streams in it)."""

    def track_message(self, message: Any) -> None:
        """Faust's ``track_message`` (every message, before a stream sees it), noting the
        lowest offset of the current rebalance generation per partition: the head the
        commit must not pass while Faust knows no committed offset (a partition never
        committed, a committed 0 that Faust stores as None, or one just reassigned, before
        its seek). Messages of an older generation are refused at ack and not noted."""
        generation = self.app.consumer_generation_id
        if message.generation_id == generation:
            noted = self._first_read.get(message.tp)
            if noted is None or noted[0] != generation or message.offset < noted[1]:
                self._first_read[message.tp] = (generation, message.offset)
        super().track_message(message)

    def ack(self, message: Any) -> bool:
        """Faust's ``ack``, refusing a message fetched before the current rebalance
        generation or while the flow is suspended (a rebalance in progress).

        Faust's stream *skips* such a message and acknowledges it anyway ("otherwise the
        lag would increase"), although nothing processed it: the consumer seeks back to
        the committed offset after the rebalance and fetches it again, but that skip-ack
        already counts, so the commit can pass the offset while its refetched copy is
        still in a batch, and a crash then loses it. Refused, the offset waits for the
        refetched copy's own ack. A batch that finished across a rebalance is refused the
        same way and runs again from the refetch (stages are idempotent on redelivery)."""
        app = self.app
        if message.generation_id != app.consumer_generation_id or not app.flow_control.is_active():
            self._unacked_messages.discard(message)
            log.debug(
                "ack.refused",
                topic=message.topic,
                partition=message.partition,
                offset=message.offset,
                generation=message.generation_id,
                current=app.consumer_generation_id,
            )
            return False
        acked: bool = super().ack(message)
        return acked

    def _new_offset(self, tp: Any) -> int | None:
        committed = self._committed_offset[tp]
        if committed is None:  # no committed offset known: the generation's first read
            noted = self._first_read.get(tp)
            if noted is not None and noted[0] == self.app.consumer_generation_id:
                committed = noted[1]
        acked = self._acked[tp]
        if acked and committed is not None:
            head = min(acked)
            # an offset Faust itself skipped (a gap it recorded: a compacted or control
            # record) counts as acknowledged; Faust's own code merges those
            if head > committed and not self._gap[tp].overlaps_point(committed):
                log.warning(
                    "commit.held",
                    topic=tp.topic,
                    partition=tp.partition,
                    committed=committed,
                    first_acknowledged=head,
                )
                return None
        offset: int | None = super()._new_offset(tp)
        return offset


class HeadSafeTransport(Transport):
    """The aiokafka transport with :class:`HeadSafeConsumer`."""

    Consumer = HeadSafeConsumer


class MetricloomApp(faust.App):
    """A Faust app whose consumer never commits past an unacknowledged offset."""

    def _new_transport(self) -> Any:
        url = self.conf.broker_consumer[0]
        if by_url(url) is not Transport:  # only the aiokafka driver is replaced
            return super()._new_transport()
        return HeadSafeTransport(self.conf.broker_consumer, self)
