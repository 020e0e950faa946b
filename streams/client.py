"""A small Kafka client for metricloom's users: send a command and wait for its result,
and follow the chart configs. The CLI uses it; so can any Python service."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from schema.exceptions import KafkaUnavailableError, MetricloomError
from streams.admin import partitions
from streams.messages import CommandBase, CommandResult, OperatorCommandBase
from streams.settings import Settings
from streams.topics import topic_name


class CommandTimeoutError(MetricloomError):
    """No worker answered the command in time (is a worker running?)."""


async def _end_positions(consumer: AIOKafkaConsumer, settings: Settings, base_topic: str) -> None:
    """Assign every partition of the topic at its current end, before anything is sent."""
    topic = topic_name(settings, base_topic)
    tps = [TopicPartition(topic, p) for p in await partitions(settings, base_topic)]
    consumer.assign(tps)
    await consumer.seek_to_end(*tps)
    for tp in tps:  # resolve the positions now, before the command is produced
        await consumer.position(tp)


async def send_command(
    settings: Settings,
    command: CommandBase | OperatorCommandBase,
    timeout_s: float = 60.0,
) -> CommandResult:
    """Produce ``command`` on its topic (``commands``, or ``operator-commands`` for an
    operator command) and wait for its CommandResult."""
    topic = "operator-commands" if isinstance(command, OperatorCommandBase) else "commands"
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap, acks="all", enable_idempotence=True
    )
    try:
        await consumer.start()
        await producer.start()
        await _end_positions(consumer, settings, "command-results")
        await producer.send_and_wait(
            topic_name(settings, topic),
            key=command.organization_id.encode(),
            value=command.to_bytes(),
        )
        async with asyncio.timeout(timeout_s):
            async for message in consumer:
                result = CommandResult.model_validate_json(message.value or b"{}")
                if result.command_id == command.command_id:
                    return result
    except TimeoutError as exc:
        raise CommandTimeoutError(
            f"no result for command {command.command_id} within {timeout_s} s"
        ) from exc
    except KafkaError as exc:
        raise KafkaUnavailableError(f"Kafka at {settings.kafka_bootstrap}: {exc}") from exc
    finally:
        await producer.stop()
        await consumer.stop()
    raise CommandTimeoutError(f"no result for command {command.command_id}")


async def follow(
    settings: Settings,
    base_topic: str,
    from_beginning: bool = False,
    since: datetime | None = None,
) -> AsyncIterator[tuple[str | None, Any]]:
    """Yield (key, decoded JSON value) from a topic, forever: from its oldest record, from
    the first record stamped at or after ``since``, or (default) from now on."""
    topic = topic_name(settings, base_topic)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest" if from_beginning else "latest",
    )
    try:
        await consumer.start()
        consumer.assign([TopicPartition(topic, p) for p in await partitions(settings, base_topic)])
        if since is not None:
            await _seek_to_time(consumer, since)
    except KafkaError as exc:
        await consumer.stop()
        raise KafkaUnavailableError(f"Kafka at {settings.kafka_bootstrap}: {exc}") from exc
    except BaseException:
        await consumer.stop()
        raise
    try:
        async for message in consumer:
            key = message.key.decode() if message.key else None
            yield key, json.loads(message.value) if message.value else None
    finally:
        await consumer.stop()


async def _seek_to_time(consumer: AIOKafkaConsumer, since: datetime) -> None:
    """Position each partition at its first record stamped at or after ``since`` (a naive
    time is UTC), or at its end when it has none."""
    if since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    stamp = int(since.timestamp() * 1000)
    partitions = consumer.assignment()
    found = await consumer.offsets_for_times(dict.fromkeys(partitions, stamp))
    for tp in partitions:
        at = found.get(tp)
        if at is None:
            await consumer.seek_to_end(tp)
        else:
            consumer.seek(tp, at.offset)
