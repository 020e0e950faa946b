"""How the pipeline is doing, read from Kafka: each consumer group's lag per topic (the
stages' inputs), and an organisation's records on one of its topics (its alerts).

``metricloom status`` prints these beside what the database says (transformers not
``active``) and the dead-letter counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from schema.exceptions import KafkaUnavailableError
from streams.admin import admin_client, partitions
from streams.security import aiokafka_auth
from streams.settings import Settings
from streams.topics import topic_name

STAGE_OF_TOPIC = {
    "command-inbox": "commands",
    "operator-commands": "operator-commands",
    "poll-due": "fetch",
    "raw-payloads": "transform",
    "points": "write",
    "metric-updated": "chart",
    "codegen-requests": "codegen",
    "commands": "ingress",
}
"""The stage that consumes each topic (by registry name)."""


@dataclass(frozen=True)
class Lag:
    """How far a consumer group is behind the end of one topic (all partitions)."""

    group: str
    topic: str
    stage: str
    lag: int
    partitions: int


async def consumer_lag(settings: Settings, org: str) -> list[Lag]:
    """Each stage's lag: its consumer group's committed offset against the end of each
    partition of its input topic (the ingress's: the organisation's commands topic). A
    partition the group has not committed on yet counts from the partition's start."""
    inputs: list[tuple[str, str, str | None]] = [
        (settings.app_id, base, None) for base in STAGE_OF_TOPIC if base != "commands"
    ]
    inputs.append((f"{settings.app_id}-ingress", "commands", org))
    admin = admin_client(settings)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        enable_auto_commit=False,
        **aiokafka_auth(settings),
    )
    out: list[Lag] = []
    try:
        await admin.start()
        await consumer.start()
        for group, base, tenant in inputs:
            topic = topic_name(settings, base, tenant)
            tps = [TopicPartition(topic, p) for p in await partitions(settings, base, tenant)]
            committed = await admin.list_consumer_group_offsets(group, partitions=tps)
            starts = await consumer.beginning_offsets(tps)
            ends = await consumer.end_offsets(tps)
            behind = 0
            for tp in tps:
                meta = committed.get(tp)
                position = meta.offset if meta is not None and meta.offset >= 0 else starts[tp]
                behind += max(0, ends[tp] - position)
            out.append(Lag(group, topic, STAGE_OF_TOPIC[base], behind, len(tps)))
    except KafkaError as exc:
        raise KafkaUnavailableError(f"Kafka at {settings.kafka_bootstrap}: {exc}") from exc
    finally:
        await consumer.stop()
        await admin.close()
    return out


async def read_to_end(settings: Settings, base: str, org: str | None = None) -> list[Any]:
    """Every record on a topic now (decoded JSON values), oldest first per partition."""
    import json

    topic = topic_name(settings, base, org)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        enable_auto_commit=False,
        **aiokafka_auth(settings),
    )
    values: list[Any] = []
    try:
        await consumer.start()
        tps = [TopicPartition(topic, p) for p in await partitions(settings, base, org)]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        for tp, offset in (await consumer.beginning_offsets(tps)).items():
            consumer.seek(tp, offset)
        pending = {tp for tp in tps if await consumer.position(tp) < ends[tp]}
        while pending:
            batch = await consumer.getmany(*pending, timeout_ms=1000)
            for tp, messages in batch.items():
                values += [json.loads(m.value) for m in messages if m.offset < ends[tp] and m.value]
            pending = {tp for tp in pending if await consumer.position(tp) < ends[tp]}
    except KafkaError as exc:
        raise KafkaUnavailableError(f"Kafka at {settings.kafka_bootstrap}: {exc}") from exc
    finally:
        await consumer.stop()
    return values
