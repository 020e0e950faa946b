"""Kafka administration with aiokafka: creating topics and reading their partitions.

(Principals and ACLs, which aiokafka cannot manage, are in ``streams/tenants.py``.)
"""

from __future__ import annotations

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import UnknownTopicOrPartitionError

from streams.security import aiokafka_auth
from streams.settings import Settings
from streams.topics import INTERNAL, TENANT, TOPICS, MissingTopicError, topic_name


def admin_client(settings: Settings) -> AIOKafkaAdminClient:
    return AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap, **aiokafka_auth(settings)
    )


async def _create(settings: Settings, wanted: dict[str, str]) -> list[str]:
    """Create the topics of ``wanted`` (full name -> registry name) that are missing."""
    admin = admin_client(settings)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(
                name=name,
                num_partitions=settings.topic_partitions,
                replication_factor=settings.topic_replication,
                topic_configs=TOPICS[base].config,
            )
            for name, base in wanted.items()
            if name not in existing
        ]
        if missing:
            await admin.create_topics(missing)
        return [t.name for t in missing]
    finally:
        await admin.close()


async def ensure_topics(settings: Settings) -> list[str]:
    """Create the worker's own topics that are missing; return the names created."""
    return await _create(settings, {topic_name(settings, base): base for base in INTERNAL})


async def ensure_tenant_topics(settings: Settings, org: str) -> list[str]:
    """Create an organisation's topics (``commands.<org>``, ``chart-configs.<org>``, ...)."""
    return await _create(settings, {topic_name(settings, base, org): base for base in TENANT})


async def partitions(settings: Settings, base: str, org: str | None = None) -> list[int]:
    """The partition ids of a topic; a topic that does not exist is an error (a consumer
    of it would otherwise wait forever)."""
    name = topic_name(settings, base, org)
    admin = admin_client(settings)
    await admin.start()
    try:
        (described,) = await admin.describe_topics([name])
    finally:
        await admin.close()
    if described["error_code"] == UnknownTopicOrPartitionError.errno:
        raise MissingTopicError(
            f"topic {name} does not exist"
            + (f" (is {org!r} a tenant? `metricloom tenant add {org}`)" if org else "")
            + ("" if org else " (run `metricloom setup`)")
        )
    if described["error_code"]:
        raise MissingTopicError(f"topic {name}: error {described['error_code']}")
    return sorted(p["partition"] for p in described["partitions"])


async def delete_topics(settings: Settings) -> list[str]:
    """Delete this prefix's topics, every organisation's and Faust's own included (test runs
    clean up after themselves: a broker with thousands of stale partitions restarts in
    minutes). Refused without a prefix: that would be a deployment's topics."""
    if not settings.topic_prefix:
        raise ValueError("delete_topics only deletes a prefixed (test) deployment's topics")
    admin = admin_client(settings)
    await admin.start()
    try:
        doomed = []
        for name in await admin.list_topics():
            if not name.startswith(settings.topic_prefix):
                continue
            bare = name[len(settings.topic_prefix) :]
            family = bare.partition(".")[0]
            if bare in INTERNAL or family in TENANT or bare.startswith("metricloom-__assignor"):
                doomed.append(name)
        if doomed:
            await admin.delete_topics(sorted(doomed))
        return doomed
    finally:
        await admin.close()
