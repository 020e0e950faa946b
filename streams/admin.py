"""Kafka administration: creating the topics and reading their partitions."""

from __future__ import annotations

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import UnknownTopicOrPartitionError

from streams.settings import Settings
from streams.topics import TOPICS, MissingTopicError, topic_name


def admin_client(settings: Settings) -> AIOKafkaAdminClient:
    return AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)


async def ensure_topics(settings: Settings) -> list[str]:
    """Create the missing topics with their configuration; return the names created."""
    admin = admin_client(settings)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(
                name=topic_name(settings, base),
                num_partitions=settings.topic_partitions,
                replication_factor=settings.topic_replication,
                topic_configs=spec.config,
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
    admin = admin_client(settings)
    await admin.start()
    try:
        (described,) = await admin.describe_topics([name])
    finally:
        await admin.close()
    if described["error_code"] == UnknownTopicOrPartitionError.errno:
        raise MissingTopicError(f"topic {name} does not exist (run `metricloom setup`)")
    return sorted(p["partition"] for p in described["partitions"])


async def delete_topics(settings: Settings) -> list[str]:
    """Delete this prefix's topics, Faust's own included (test runs clean up after
    themselves: a broker with thousands of stale partitions restarts in minutes)."""
    admin = admin_client(settings)
    await admin.start()
    try:
        ours = {topic_name(settings, base) for base in TOPICS}
        existing = set(await admin.list_topics())
        doomed = sorted(
            t for t in existing if t in ours or t.startswith(f"{settings.app_id}-__assignor")
        )
        if doomed:
            await admin.delete_topics(doomed)
        return doomed
    finally:
        await admin.close()
