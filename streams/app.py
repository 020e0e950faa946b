"""The Faust application: one agent per stage, plus the scheduler timer.

Each agent is a thin loop over a ``noack`` stream: take a batch of events
(``streams.batching.linger_take``: what is there, waiting for more only while more is
arriving), hand it to the stage's plain code (``agents.pipeline.process_batch``), produce
what comes back, wait for the broker to acknowledge every record, and only then
acknowledge the events. Faust's own ``take_events`` acknowledges a batch in a ``finally``
even when the loop body raised, so a crash would skip the batch; with a batch of events
that are never acknowledged automatically (``linger_take``, or ``noack_take`` with
``METRICLOOM_STAGE_BATCHING=fixed``) and explicit acks, a batch that is not finished is
never acknowledged, and is redelivered after a restart or a rebalance.

When a service is away (database, Docker or sandbox runner, model server, broker), the
agent keeps the batch and tries it again with capped backoff until the service is back:
it stops consuming instead of dead-lettering healthy work. The agent itself never raises;
if its own loop breaks, the worker stops (and is restarted) rather than leaving a batch
unacknowledged behind a live consumer.
"""

from __future__ import annotations

import asyncio
import random
import tempfile
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import faust
import structlog
from aiokafka.errors import KafkaError

from agents import scheduling
from agents.charting import ChartStage
from agents.codegen import CodegenStage
from agents.commands import CommandStage, OperatorStage
from agents.fetching import FetchStage
from agents.pipeline import Incoming, Outgoing, Send, Stage, encode, process_batch
from agents.services import Services
from agents.transforming import TransformStage
from agents.writing import WriteStage
from schema import policies
from schema.exceptions import KafkaUnavailableError, MetricloomError, ServiceUnavailableError
from streams import metrics
from streams.admin import admin_client
from streams.batching import BatchInfo, LingerPolicy, linger_take
from streams.ingress import CommandIngress
from streams.offsets import MetricloomApp
from streams.security import faust_credentials
from streams.settings import Settings
from streams.tables import TablelessManager
from streams.topics import PRODUCER_REQUEST_BYTES, TOPICS, topic_name

log = structlog.get_logger(__name__)

STAGES: list[tuple[str, Stage[Any]]] = [
    ("command-inbox", CommandStage()),
    ("operator-commands", OperatorStage()),
    ("poll-due", FetchStage()),
    ("raw-payloads", TransformStage()),
    ("points", WriteStage()),
    ("metric-updated", ChartStage()),
    ("codegen-requests", CodegenStage()),
]
"""Which topic feeds which stage: the whole data path, in order."""

Producer = Callable[[Sequence[Outgoing]], Awaitable[list[bool]]]
"""Produces records, answering which ones the broker acknowledged."""


def create_app(settings: Settings, services: Services) -> faust.App:
    """Build the Faust app for these settings; nothing connects until it starts."""
    datadir = Path(tempfile.gettempdir()) / "metricloom-faust"
    datadir.mkdir(exist_ok=True)
    app = MetricloomApp(
        settings.app_id,
        # No idempotent producer: aiokafka's does not recover from the broker losing its
        # sequence state in a restart (every later send fails with OutOfOrderSequence);
        # the runner sends again only what the broker did not acknowledge (README).
        broker=[f"kafka://{host}" for host in settings.kafka_bootstrap.split(",")],
        key_serializer="raw",
        value_serializer="raw",
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication,
        store="memory://",
        # Faust makes a data directory even with in-memory tables; keep it out of the
        # working directory (one per app id, so test workers do not collide).
        datadir=str(datadir / settings.app_id),
        web_enabled=False,
        autodiscover=False,
        broker_credentials=faust_credentials(settings),
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        producer_max_request_size=PRODUCER_REQUEST_BYTES,
        producer_request_timeout=settings.kafka.produce_timeout_s,
        consumer_max_fetch_size=PRODUCER_REQUEST_BYTES,
        broker_commit_every=settings.kafka.commit_every,
        broker_commit_interval=settings.kafka.commit_interval_s,
        # A dead worker's partitions move to the others within the session timeout.
        consumer_group_instance_id=settings.kafka.group_instance_id,
        broker_session_timeout=settings.kafka.session_timeout_s,
        broker_heartbeat_interval=settings.kafka.heartbeat_interval_s,
        broker_rebalance_timeout=settings.kafka.rebalance_timeout_s,
        broker_max_poll_interval=settings.kafka.max_poll_interval_s,
        # Stages are idempotent: a rebalance need not wait for the batch in hand (its events
        # are redelivered to the partition's next owner).
        stream_wait_empty=False,
        stream_recovery_delay=0.0,
        TableManager=TablelessManager,
    )
    sources = {
        base: app.topic(
            topic_name(settings, base),
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
            partitions=settings.topic_partitions,
            replicas=settings.topic_replication,
            config=TOPICS[base].config,
        )
        for base, _ in STAGES
    }
    tenant_topics = TenantTopics(settings)

    async def produce(records: Sequence[Outgoing]) -> list[bool]:
        """Produce every record and wait for the broker's answers: which were acknowledged
        (the runner raises for the rest, and sends only those again). A record for an
        organisation whose topics are gone (the tenant was removed) is dropped, logged."""
        pending: list[Awaitable[object]] = []
        for record in records:
            name = f"{settings.topic_prefix}{record.topic}"
            if "." in record.topic and not await tenant_topics.exists(name):
                log.warning("produce.no_tenant_topic", topic=name)
                metrics.UNDELIVERABLE.labels(topic=record.topic.partition(".")[0]).inc()
                pending.append(_done())
                continue
            try:
                value = None if record.tombstone else record.value  # None: deletes the key
                sent = await app.producer.send(name, record.key, value, None, None, None)
                pending.append(sent)
            except KafkaError as exc:
                pending.append(_failed(exc))
        answers = await asyncio.gather(*pending, return_exceptions=True)
        acked = [not isinstance(answer, BaseException) for answer in answers]
        for record, ok in zip(records, acked, strict=True):
            if ok:
                metrics.PRODUCED.labels(topic=record.topic.partition(".")[0]).inc()
        return acked

    for source, stage in STAGES:
        runner = StageRunner(stage, services, produce, settings)
        app.agent(sources[source], name=f"metricloom.{stage.name}")(runner.agent(app))

    @app.task  # type: ignore[untyped-decorator]
    async def ingress() -> None:
        """Tenants' commands, from their own topics into the command stage's inbox."""
        await CommandIngress(settings).run()

    async def send_all(sends: list[Send]) -> None:
        records = [encode(send) for send in sends]
        if not all(await produce(records)):
            raise KafkaUnavailableError("the broker did not take every record")

    @app.timer(  # type: ignore[untyped-decorator]
        interval=settings.scheduler_interval_s, on_leader=True, name="metricloom.scheduler"
    )
    async def scheduler() -> None:
        try:
            await scheduling.run_once(services, send_all)
        except MetricloomError as exc:  # the next run retries; the claim rolled back
            log.error("scheduler.failed", error=str(exc))

    @app.timer(interval=3600.0, on_leader=True, name="metricloom.housekeeping")  # type: ignore[untyped-decorator]
    async def housekeeping() -> None:
        try:
            async with services.db.transaction() as conn:
                done = await policies.housekeeping(conn, settings.retention_days)
            log.info("housekeeping.done", **done)
        except MetricloomError as exc:
            log.error("housekeeping.failed", error=str(exc))

    return app


class StageRunner:
    """Runs one stage's batches under the delivery contract: a batch's events are
    acknowledged only after every record it caused is acknowledged by the broker; a service
    that is away pauses the stage (capped backoff) instead of losing or dead-lettering it."""

    def __init__(
        self, stage: Stage[Any], services: Services, produce: Producer, settings: Settings
    ) -> None:
        self.stage = stage
        self.services = services
        self.produce = produce
        self.settings = settings

    def agent(self, app: faust.App) -> Callable[[Any], Awaitable[None]]:
        settings = self.settings

        async def agent(stream: Any) -> None:
            info = BatchInfo()
            stream.enable_acks = False  # a noack stream: only a finished batch is acked
            batches: AsyncGenerator[list[Any], None]
            if settings.stage_batching == "fixed":
                batches = stream.noack_take(
                    settings.stage_batch_size, within=settings.stage_batch_window_s
                )
            else:
                policy = LingerPolicy(
                    settings.stage_batch_size,
                    floor_s=settings.stage_linger_min_s,
                    ceiling_s=settings.stage_batch_window_s,
                )
                batches = linger_take(stream, policy, info=info)
            try:
                async for events in batches:
                    started = time.monotonic()
                    batch = [
                        Incoming(
                            topic=_base_topic(settings, event.message.topic),
                            partition=event.message.partition,
                            offset=event.message.offset,
                            key=event.message.key,
                            value=event.message.value,
                        )
                        for event in events
                    ]
                    await self.run(batch)
                    for event in events:
                        await stream.ack(event)
                    log.debug(
                        "stage.batch",
                        stage=self.stage.name,
                        size=len(batch),
                        linger_s=round(info.linger_s, 4),
                        waited_s=round(info.waited_s, 4),
                        run_s=round(time.monotonic() - started, 4),
                    )
            except asyncio.CancelledError:
                raise
            except BaseException as exc:  # the loop itself broke: stop, do not skip
                log.critical("stage.loop_broken", stage=self.stage.name, error=repr(exc))
                await app.crash(exc)
                raise
            finally:  # closed now, not when collected: Faust's take turns acks back on
                await batches.aclose()
                stream.enable_acks = False

        agent.__name__ = f"{self.stage.name}_agent"
        agent.__qualname__ = agent.__name__
        return agent

    async def run(self, batch: Sequence[Incoming]) -> None:
        """Process and deliver one batch, however long a service stays away. A record the
        broker took in an earlier attempt of the same batch is not sent again (the stages'
        answers to a repeat are the same bytes)."""
        delay = self.settings.pause_initial_s
        paused_at: float | None = None
        delivered: set[Outgoing] = set()
        while True:
            started = time.monotonic()
            try:
                records = await process_batch(self.stage, self.services, batch)
                todo = [r for r in records if r not in delivered]
                acked = await self.produce(todo)
                delivered.update(r for r, ok in zip(todo, acked, strict=True) if ok)
                if not all(acked):
                    missing = acked.count(False)
                    raise KafkaUnavailableError(f"the broker did not take {missing} record(s)")
                await self.stage.delivered(self.services, batch)
            except ServiceUnavailableError as exc:
                if paused_at is None:
                    paused_at = time.monotonic()
                    metrics.PAUSES.labels(stage=self.stage.name).inc()
                metrics.PAUSED.labels(stage=self.stage.name).set(1)
                log.warning(
                    "stage.paused",
                    stage=self.stage.name,
                    batch=len(batch),
                    error=str(exc)[:500],
                    retry_in_s=round(delay, 2),
                    paused_s=round(time.monotonic() - paused_at, 1),
                )
                await asyncio.sleep(delay * random.uniform(0.8, 1.2))  # noqa: S311 - jitter
                delay = min(delay * 2, self.settings.pause_max_s)
                continue
            if paused_at is not None:
                metrics.PAUSED.labels(stage=self.stage.name).set(0)
                log.info(
                    "stage.resumed",
                    stage=self.stage.name,
                    paused_s=round(time.monotonic() - paused_at, 1),
                )
            metrics.BATCHES.labels(stage=self.stage.name).observe(time.monotonic() - started)
            metrics.CONSUMED.labels(stage=self.stage.name).inc(len(batch))
            return


async def _failed(exc: BaseException) -> None:
    """A send that failed before it was queued, as an answer to gather."""
    raise exc


async def _done() -> None:
    """A record settled without a send (its tenant is gone), as an answer to gather."""


class TenantTopics:
    """Which organisations' topics exist (a removed tenant's are gone). A name not known
    is looked up at once, so a tenant added a moment ago is never taken for a removed one;
    a name found missing is looked up again at most every ``REFRESH_S`` (a removed
    tenant's records do not each cost a lookup)."""

    REFRESH_S = 10.0

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._known: set[str] = set()
        self._missing: dict[str, float] = {}  # name → when it was last found missing

    async def exists(self, name: str) -> bool:
        if name in self._known:
            return True
        missing_at = self._missing.get(name)
        if missing_at is not None and time.monotonic() - missing_at <= self.REFRESH_S:
            return False
        admin = admin_client(self.settings)
        try:
            await admin.start()
            self._known = set(await admin.list_topics())
        except KafkaError:
            return True  # cannot tell: try the send (a broker away pauses the stage)
        finally:
            await admin.close()
        if name in self._known:
            self._missing.pop(name, None)
            return True
        self._missing[name] = time.monotonic()
        return False


def _base_topic(settings: Settings, name: str) -> str:
    """The registry name of a prefixed topic name."""
    return name[len(settings.topic_prefix) :] if name.startswith(settings.topic_prefix) else name
