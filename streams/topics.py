"""Topic declarations: names, keys, and the configuration each topic is created with.

Every name is prefixed with ``METRICLOOM_TOPIC_PREFIX`` (empty by default), so several
deployments or test runs can share a cluster. Partition count and replication factor
come from the settings (``METRICLOOM_TOPIC_PARTITIONS``, ``METRICLOOM_TOPIC_REPLICATION``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import UnknownTopicOrPartitionError

from schema.exceptions import MetricloomError
from streams.settings import Settings


class MissingTopicError(MetricloomError):
    """The topic has not been created (topics are created by a worker when it starts)."""


@dataclass(frozen=True)
class TopicSpec:
    key: str
    value: str
    compacted: bool = False
    config: dict[str, str] = field(default_factory=dict)


TOPICS: dict[str, TopicSpec] = {
    "commands": TopicSpec(
        "organization id", "Command (create_metric | create_dashboard_metric | refresh_metric)"
    ),
    "command-results": TopicSpec("command id", "CommandResult"),
    "poll-due": TopicSpec("metric id", "PollDue"),
    "raw-payloads": TopicSpec("metric id", "RawPayload"),
    "points": TopicSpec("metric id", "PointsBatch"),
    "metric-updated": TopicSpec("metric id", "MetricUpdated"),
    "chart-configs": TopicSpec(
        "dashboard metric id",
        "ChartConfigMessage",
        compacted=True,
        config={
            "cleanup.policy": "compact",
            "min.cleanable.dirty.ratio": "0.1",
            "segment.ms": "3600000",
        },
    ),
    "codegen-requests": TopicSpec("template id or dashboard metric id", "CodegenRequest"),
    "backfill-progress": TopicSpec("metric id", "BackfillProgress"),
    "alerts": TopicSpec("template id or dashboard metric id", "Alert"),
    "dead-letter": TopicSpec(
        "metric id or stage", "DeadLetter", config={"retention.ms": str(30 * 86400 * 1000)}
    ),
}


def topic_name(settings: Settings, base: str) -> str:
    if base not in TOPICS:
        raise KeyError(f"unknown topic {base!r}")
    return f"{settings.topic_prefix}{base}"


async def ensure_topics(settings: Settings) -> list[str]:
    """Create the missing topics with their configuration; return the names created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(
                name=topic_name(settings, base),
                num_partitions=settings.topic_partitions,
                replication_factor=settings.topic_replication,
                topic_configs=dict(spec.config),
            )
            for base, spec in TOPICS.items()
            if topic_name(settings, base) not in existing
        ]
        if missing:
            await admin.create_topics(missing)
        return [t.name for t in missing]
    finally:
        await admin.close()


async def partitions(settings: Settings, base: str) -> list[int]:
    """The partition ids of a topic; a topic that does not exist is an error (a consumer
    of it would otherwise wait forever)."""
    name = topic_name(settings, base)
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        (described,) = await admin.describe_topics([name])
    finally:
        await admin.close()
    if described["error_code"] == UnknownTopicOrPartitionError.errno:
        raise MissingTopicError(f"topic {name} does not exist (has a worker run?)")
    return sorted(p["partition"] for p in described["partitions"])
