"""The Faust application: one agent per stage, plus the scheduler timer.

Each agent is a thin loop: take a batch of events, hand it to the stage's plain code
(``agents.pipeline.process_batch``), produce what comes back and wait for the broker to
acknowledge it. Faust acknowledges the consumed events only after the loop body finished,
so offsets move only once a batch's effects (rows, produced records) are durable.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import faust
import structlog

from agents import scheduling
from agents.charting import ChartStage
from agents.codegen import CodegenStage
from agents.commands import CommandStage
from agents.fetching import FetchStage
from agents.pipeline import Incoming, Send, Stage, process_batch
from agents.services import Services
from agents.transforming import TransformStage
from agents.writing import WriteStage
from schema import policies
from schema.exceptions import MetricloomError
from streams.settings import Settings
from streams.topics import TOPICS, topic_name

log = structlog.get_logger(__name__)

STAGES: list[tuple[str, Stage[Any]]] = [
    ("commands", CommandStage()),
    ("poll-due", FetchStage()),
    ("raw-payloads", TransformStage()),
    ("points", WriteStage()),
    ("metric-updated", ChartStage()),
    ("codegen-requests", CodegenStage()),
]
"""Which topic feeds which stage: the whole data path, in order."""


def create_app(settings: Settings, services: Services) -> faust.App:
    """Build the Faust app for these settings; nothing connects until it starts."""
    datadir = Path(tempfile.gettempdir()) / "metricloom-faust"
    datadir.mkdir(exist_ok=True)
    app = faust.App(
        settings.app_id,
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
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        broker_commit_every=100,
        broker_commit_interval=1.0,
    )
    topics = {
        base: app.topic(
            topic_name(settings, base),
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
            partitions=settings.topic_partitions,
            replicas=settings.topic_replication,
            compacting=spec.compacted or None,
            config=dict(spec.config) or None,
        )
        for base, spec in TOPICS.items()
    }

    async def send_all(sends: list[Send]) -> None:
        """Produce every record and wait until the broker has acknowledged all of them."""
        pending = [
            await topics[s.topic].send(key=s.key.encode(), value=s.record.to_bytes()) for s in sends
        ]
        if pending:
            await asyncio.gather(*pending)

    for source, stage in STAGES:
        app.agent(topics[source], name=f"metricloom.{stage.name}")(
            _stage_agent(stage, services, send_all, settings)
        )

    @app.timer(  # type: ignore[untyped-decorator]
        interval=settings.scheduler_interval_s, on_leader=True, name="metricloom.scheduler"
    )
    async def scheduler() -> None:
        try:
            await scheduling.run_once(services, send_all)
        except MetricloomError as exc:  # the next run retries; the claim rolled back
            log.error("scheduler.failed", error=str(exc))

    if settings.retention_days is not None:
        retention_days = settings.retention_days

        @app.timer(interval=3600.0, on_leader=True, name="metricloom.retention")  # type: ignore[untyped-decorator]
        async def retention() -> None:
            try:
                async with services.db.transaction() as conn:
                    if await policies.license_of(conn) != "timescale":
                        dropped = await policies.enforce_retention(conn, retention_days)
                        log.info("retention.enforced", chunks_dropped=dropped)
            except MetricloomError as exc:
                log.error("retention.failed", error=str(exc))

    return app


def _stage_agent(
    stage: Stage[Any],
    services: Services,
    send_all: Callable[[list[Send]], Awaitable[None]],
    settings: Settings,
) -> Callable[[Any], Awaitable[None]]:
    async def agent(stream: Any) -> None:
        async for events in stream.take_events(
            settings.stage_batch_size, within=settings.stage_batch_window_s
        ):
            batch = [
                Incoming(
                    topic=event.message.topic,
                    partition=event.message.partition,
                    offset=event.message.offset,
                    key=event.key,
                    value=event.value,
                )
                for event in events
            ]
            await send_all(await process_batch(stage, services, batch))

    agent.__name__ = f"{stage.name}_agent"
    agent.__qualname__ = agent.__name__
    return agent
