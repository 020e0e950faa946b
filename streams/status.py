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
from streams.topics import split_tenant, topic_name

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


async def consumer_lag(settings: Settings) -> list[Lag]:
    """The worker's consumer groups (the stages' and the ingress's) and their lag per
    topic: committed offsets against each partition's end."""
    groups = [settings.app_id, f"{settings.app_id}-ingress"]
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
        for group in groups:
            committed = await admin.list_consumer_group_offsets(group)
            if not committed:
                continue
            ends = await consumer.end_offsets(list(committed))
            per_topic: dict[str, list[int]] = {}
            for tp, meta in committed.items():
                behind = max(0, ends.get(tp, 0) - max(meta.offset, 0))
                per_topic.setdefault(tp.topic, []).append(behind)
            for topic, lags in sorted(per_topic.items()):
                if not topic.startswith(settings.topic_prefix):
                    continue
                base, _ = split_tenant(settings, topic)
                stage = STAGE_OF_TOPIC.get(base, base)
                out.append(Lag(group, topic, stage, sum(lags), len(lags)))
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
