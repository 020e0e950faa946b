"""The Kafka side of a logged-in organisation: its clients act as its principal.

One :class:`TenantLink` per organisation with a live session, authenticated with that
organisation's password, so the broker enforces what a session can reach: it produces
only to ``commands.<org>`` and reads only the organisation's own ``chart-configs``,
``alerts``, ``backfill-progress`` and ``command-results``. It assigns their partitions
itself (no consumer group, nothing committed): the compacted chart-configs topic is read
from its beginning, so the newest config of every chart is at hand when a page opens,
and every record that arrives after is handed to the pages that listen (server-sent
events). The database is never polled for charts.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal
from uuid import UUID

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError
from pydantic import SecretStr, ValidationError

from dashboard.views import BackfillSummary
from schema.exceptions import KafkaUnavailableError
from streams.admin import partitions
from streams.messages import (
    Alert,
    BackfillProgress,
    ChartConfigMessage,
    CommandBase,
    CommandResult,
    Record,
)
from streams.security import aiokafka_auth
from streams.settings import Settings
from streams.topics import PRODUCER_REQUEST_BYTES, split_tenant, topic_name

log = structlog.get_logger()

EventKind = Literal["chart", "alert", "backfill", "result"]
FROM_BEGINNING = ("chart-configs", "alerts", "backfill-progress")
FROM_NOW = ("command-results",)
RECORDS: dict[str, tuple[EventKind, type[Record]]] = {
    "chart-configs": ("chart", ChartConfigMessage),
    "alerts": ("alert", Alert),
    "backfill-progress": ("backfill", BackfillProgress),
    "command-results": ("result", CommandResult),
}
ALERTS_KEPT = 200
FETCH_WAIT_MS = 50
"""How long the broker holds a fetch with nothing new (aiokafka's default, 500 ms, was
most of a chart's way from the topic to the page)."""
LISTENER_QUEUE = 256


@dataclass
class BackfillTally:
    """What the backfill-progress records of one metric add up to (a chunk reported
    twice counts once: records can be delivered again)."""

    metric_id: UUID
    chunks: int = 1
    written: dict[int, int] = field(default_factory=dict)
    error: str | None = None

    def add(self, progress: BackfillProgress) -> None:
        self.chunks = max(self.chunks, progress.chunks or 1)
        if progress.state == "written":
            self.written[progress.chunk or 1] = progress.points
        elif progress.state == "failed":
            self.error = progress.error or "failed"

    def summary(self) -> BackfillSummary:
        done = len(self.written) >= self.chunks
        return BackfillSummary(
            metric_id=self.metric_id,
            state="failed" if self.error else "written" if done else "running",
            chunks=self.chunks,
            chunks_written=len(self.written),
            points=sum(self.written.values()),
            error=self.error,
        )


@dataclass(frozen=True)
class Event:
    """One record of the organisation's topics, as a page receives it."""

    kind: EventKind
    data: dict[str, Any]


class TenantLink:
    """The organisation's producer and consumer, and what it has read so far."""

    def __init__(self, settings: Settings, password: SecretStr) -> None:
        org = settings.kafka.username
        assert org is not None, "a tenant link authenticates as its organisation"
        self.org = org
        self.password = password
        self.settings = settings
        self.charts: dict[UUID, ChartConfigMessage] = {}
        self.alerts: list[Alert] = []
        self.backfill: dict[UUID, BackfillTally] = {}
        self._waiting: dict[UUID, asyncio.Future[CommandResult]] = {}
        self._listeners: set[asyncio.Queue[Event | None]] = set()
        auth = aiokafka_auth(settings)
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap,
            enable_auto_commit=False,
            max_partition_fetch_bytes=PRODUCER_REQUEST_BYTES,
            fetch_max_wait_ms=FETCH_WAIT_MS,
            **auth,
        )
        self._producer = AIOKafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap, acks="all", linger_ms=0, **auth
        )
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Assign the organisation's topics (charts, alerts and progress from their
        beginning, results from now) and start reading."""
        try:
            await self._consumer.start()
            await self._producer.start()
            assigned: list[TopicPartition] = []
            for base in (*FROM_BEGINNING, *FROM_NOW):
                name = topic_name(self.settings, base, self.org)
                ids = await partitions(self.settings, base, self.org)
                assigned += [TopicPartition(name, p) for p in ids]
            self._consumer.assign(assigned)
            first = [
                tp for tp in assigned if split_tenant(self.settings, tp.topic)[0] in FROM_BEGINNING
            ]
            await self._consumer.seek_to_beginning(*first)
            await self._consumer.seek_to_end(*[tp for tp in assigned if tp not in first])
            for tp in assigned:  # positions resolved now: a command sent next is answered after
                await self._consumer.position(tp)
        except KafkaError as exc:
            await self.stop()
            raise KafkaUnavailableError(f"Kafka at {self.settings.kafka_bootstrap}: {exc}") from exc
        self._task = asyncio.create_task(self._read(), name=f"tenant-link-{self.org}")

    async def stop(self) -> None:
        """Stop reading; every page listening is told the stream ended (it reconnects,
        through a new link if its session is still good)."""
        for queue in list(self._listeners):
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(None)
        self._listeners.clear()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._consumer.stop()
        await self._producer.stop()

    async def _read(self) -> None:
        while True:
            try:
                async for message in self._consumer:
                    base, _ = split_tenant(self.settings, message.topic)
                    self._take(base, message.value)
            except KafkaError as exc:  # the broker is away: aiokafka reconnects on the next read
                log.warning(
                    "dashboard.link_paused", organization_id=self.org, error=repr(exc)[:300]
                )
                await asyncio.sleep(1.0)

    def _take(self, base: str, value: bytes | None) -> None:
        """Keep and pass on one record; one that does not decode is logged and skipped (it
        stays on its topic: nothing is lost, and the pages carry on)."""
        kind, model = RECORDS[base]
        try:
            record = model.model_validate_json(value or b"null")
        except ValidationError as exc:
            log.warning(
                "dashboard.bad_record", topic=base, organization_id=self.org, error=str(exc)[:300]
            )
            return
        if isinstance(record, ChartConfigMessage):
            self.charts[record.dashboard_metric_id] = record
        elif isinstance(record, Alert):
            self.alerts = [*self.alerts, record][-ALERTS_KEPT:]
        elif isinstance(record, BackfillProgress):
            tally = self.backfill.setdefault(record.metric_id, BackfillTally(record.metric_id))
            tally.add(record)
            self._publish(Event(kind, tally.summary().model_dump(mode="json")))
            return
        elif isinstance(record, CommandResult) and record.command_id is not None:
            waiting = self._waiting.pop(record.command_id, None)
            if waiting is not None and not waiting.done():
                waiting.set_result(record)
        self._publish(Event(kind, record.model_dump(mode="json", by_alias=True)))

    def _publish(self, event: Event) -> None:
        for queue in list(self._listeners):
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:  # a page that stopped reading: it reconnects afresh
                self._listeners.discard(queue)

    @contextlib.asynccontextmanager
    async def listen(self) -> AsyncIterator[asyncio.Queue[Event | None]]:
        """A queue of every event from now on, starting with the newest config of each
        chart (so a page that opens misses none between its read and its subscription);
        ``None`` when the link stops."""
        queue: asyncio.Queue[Event | None] = asyncio.Queue(LISTENER_QUEUE + len(self.charts) + 1)
        for chart in self.charts.values():
            queue.put_nowait(Event("chart", chart.model_dump(mode="json", by_alias=True)))
        self._listeners.add(queue)
        try:
            yield queue
        finally:
            self._listeners.discard(queue)

    async def send(self, command: CommandBase, timeout_s: float) -> CommandResult:
        """Produce the command to ``commands.<org>`` as the organisation and wait for the
        worker's answer on ``command-results.<org>``."""
        answer: asyncio.Future[CommandResult] = asyncio.get_running_loop().create_future()
        self._waiting[command.command_id] = answer
        try:
            await self._producer.send_and_wait(
                topic_name(self.settings, "commands", self.org),
                key=self.org.encode(),
                value=command.to_bytes(),
            )
            return await asyncio.wait_for(answer, timeout_s)
        except KafkaError as exc:
            raise KafkaUnavailableError(f"Kafka at {self.settings.kafka_bootstrap}: {exc}") from exc
        finally:
            self._waiting.pop(command.command_id, None)


class TenantLinks:
    """The open links, one per organisation with a live session."""

    def __init__(self) -> None:
        self._links: dict[str, TenantLink] = {}
        self._lock = asyncio.Lock()

    async def open(self, tenant: Settings, password: SecretStr) -> TenantLink:
        """The organisation's link, started now if it has none, or restarted if its
        password changed (the old one may have been revoked)."""
        org = tenant.kafka.username
        assert org is not None
        async with self._lock:
            link = self._links.get(org)
            if link is not None and link.password.get_secret_value() == password.get_secret_value():
                return link
            if link is not None:
                await link.stop()
            link = TenantLink(tenant, password)
            await link.start()
            self._links[org] = link
            return link

    def get(self, org: str) -> TenantLink | None:
        return self._links.get(org)

    async def close(self, org: str) -> None:
        async with self._lock:
            link = self._links.pop(org, None)
            if link is not None:
                await link.stop()

    async def close_all(self) -> None:
        for org in list(self._links):
            await self.close(org)
