"""A small Kafka client for metricloom's users: send a command and wait for its result,
and follow an organisation's topics. The CLI uses it; so can any Python service.

A tenant's client authenticates as its organisation (``METRICLOOM_KAFKA__USERNAME`` /
``__PASSWORD``): it may write only ``commands.<org>`` and read only its own answer topics.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from schema.exceptions import KafkaUnavailableError, MetricloomError
from streams.admin import partitions
from streams.messages import CommandBase, CommandResult, OperatorCommandBase
from streams.security import aiokafka_auth
from streams.settings import Settings
from streams.topics import topic_name


class CommandTimeoutError(MetricloomError):
    """No worker answered the command in time (is a worker running?)."""


def _consumer(settings: Settings, **options: Any) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        enable_auto_commit=False,
        **aiokafka_auth(settings),
        **options,
    )


async def _end_positions(
    consumer: AIOKafkaConsumer, settings: Settings, base: str, org: str | None
) -> None:
    """Assign every partition of the topic at its current end, before anything is sent."""
    topic = topic_name(settings, base, org)
    tps = [TopicPartition(topic, p) for p in await partitions(settings, base, org)]
    consumer.assign(tps)
    await consumer.seek_to_end(*tps)
    for tp in tps:  # resolve the positions now, before the command is produced
        await consumer.position(tp)


async def send_command(
    settings: Settings,
    command: CommandBase | OperatorCommandBase,
    timeout_s: float = 60.0,
) -> CommandResult:
    """Produce ``command`` and wait for its CommandResult: a tenant's on ``commands.<org>``
    (answered on ``command-results.<org>``), an operator's on ``operator-commands``
    (answered on ``operator-results``)."""
    return (await send_commands(settings, [command], timeout_s))[command.command_id]


async def send_commands(
    settings: Settings,
    commands: Sequence[CommandBase | OperatorCommandBase],
    timeout_s: float = 60.0,
) -> dict[UUID, CommandResult]:
    """Produce the commands (one organisation's, or all the operator's) in order and wait
    until each has its CommandResult, keyed by command id; ``timeout_s`` is for all of
    them. CommandTimeoutError names how many are still unanswered."""
    first = commands[0]
    if isinstance(first, OperatorCommandBase):
        topic, results, org = "operator-commands", "operator-results", None
    else:
        topic, results, org = "commands", "command-results", first.organization_id
    if any(c.organization_id != first.organization_id for c in commands):
        raise ValueError("send_commands takes one organisation's commands at a time")
    waiting = {c.command_id for c in commands}
    answers: dict[UUID, CommandResult] = {}
    consumer = _consumer(settings)
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        acks="all",
        enable_idempotence=True,
        **aiokafka_auth(settings),
    )
    try:
        await consumer.start()
        await producer.start()
        await _end_positions(consumer, settings, results, org)
        sent = [
            await producer.send(
                topic_name(settings, topic, org),
                key=c.organization_id.encode(),
                value=c.to_bytes(),
            )
            for c in commands
        ]
        await asyncio.gather(*sent)  # every record acknowledged by the broker
        async with asyncio.timeout(timeout_s):
            async for message in consumer:
                result = CommandResult.model_validate_json(message.value or b"{}")
                if result.command_id in waiting:
                    waiting.discard(result.command_id)
                    answers[result.command_id] = result
                    if not waiting:
                        return answers
    except TimeoutError as exc:
        raise CommandTimeoutError(_unanswered(waiting, timeout_s)) from exc
    except KafkaError as exc:
        raise KafkaUnavailableError(f"Kafka at {settings.kafka_bootstrap}: {exc}") from exc
    finally:
        await producer.stop()
        await consumer.stop()
    raise CommandTimeoutError(_unanswered(waiting, timeout_s))


def _unanswered(waiting: set[UUID], timeout_s: float) -> str:
    if len(waiting) == 1:
        return f"no result for command {next(iter(waiting))} within {timeout_s} s"
    return f"no result for {len(waiting)} commands within {timeout_s} s"


async def follow(
    settings: Settings,
    base_topic: str,
    org: str | None = None,
    from_beginning: bool = False,
    since: datetime | None = None,
) -> AsyncIterator[tuple[str | None, Any]]:
    """Yield (key, decoded JSON value) from a topic (an organisation's, with ``org``),
    forever: from its oldest record, from the first record stamped at or after ``since``,
    or (default) from now on."""
    topic = topic_name(settings, base_topic, org)
    consumer = _consumer(settings, auto_offset_reset="earliest" if from_beginning else "latest")
    try:
        await consumer.start()
        tps = [TopicPartition(topic, p) for p in await partitions(settings, base_topic, org)]
        consumer.assign(tps)
        if since is not None:
            await _seek_to_time(consumer, since)
        elif from_beginning:
            for tp, offset in (await consumer.beginning_offsets(tps)).items():
                consumer.seek(tp, offset)
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
