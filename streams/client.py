"""A small Kafka client for metricloom's users: send a command and wait for its result,
and follow the chart configs. The CLI uses it; so can any Python service."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from schema.exceptions import MetricloomError
from streams.messages import CommandBase, CommandResult
from streams.settings import Settings
from streams.topics import topic_name


class KafkaUnavailableError(MetricloomError):
    """The Kafka cluster cannot be reached."""


class CommandTimeoutError(MetricloomError):
    """No worker answered the command in time (is a worker running?)."""


async def _end_positions(
    consumer: AIOKafkaConsumer, producer: AIOKafkaProducer, topic: str
) -> None:
    """Assign every partition of ``topic`` at its current end, before anything is sent."""
    partitions = await producer.partitions_for(topic)
    tps = [TopicPartition(topic, p) for p in sorted(partitions)]
    consumer.assign(tps)
    await consumer.seek_to_end(*tps)
    for tp in tps:  # resolve the positions now, before the command is produced
        await consumer.position(tp)


async def send_command(
    settings: Settings, command: CommandBase, timeout_s: float = 60.0
) -> CommandResult:
    """Produce ``command`` on the commands topic and wait for its CommandResult."""
    results = topic_name(settings, "command-results")
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False
    )
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    try:
        await consumer.start()
        await producer.start()
        await _end_positions(consumer, producer, results)
        await producer.send_and_wait(
            topic_name(settings, "commands"),
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
    settings: Settings, base_topic: str, from_beginning: bool = False
) -> AsyncIterator[tuple[str | None, Any]]:
    """Yield (key, decoded JSON value) from a topic, forever."""
    consumer = AIOKafkaConsumer(
        topic_name(settings, base_topic),
        bootstrap_servers=settings.kafka_bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest" if from_beginning else "latest",
    )
    try:
        await consumer.start()
    except KafkaError as exc:
        raise KafkaUnavailableError(f"Kafka at {settings.kafka_bootstrap}: {exc}") from exc
    try:
        async for message in consumer:
            key = message.key.decode() if message.key else None
            yield key, json.loads(message.value) if message.value else None
    finally:
        await consumer.stop()
