"""Reading and replaying the dead-letter topic (``metricloom dead-letter``).

A dead letter keeps its original record (whole, unless it was too large) and where it came
from. Replaying produces the original again to its topic with its key, so the stage runs
it again once its cause is fixed; every stage is idempotent, and each dead letter is
replayed once (recorded in the database), so replaying is safe to repeat.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError
from pydantic import ValidationError

from schema.db import Database
from schema.exceptions import KafkaUnavailableError, MetricloomError
from streams.admin import partitions
from streams.messages import DeadLetter, TenantCommand
from streams.security import aiokafka_auth
from streams.settings import Settings
from streams.topics import PRODUCER_REQUEST_BYTES, TOPICS, split_tenant, topic_name


class ReplayRefusedError(MetricloomError):
    """A dead letter that cannot be replayed (truncated, or its topic unknown)."""


@dataclass(frozen=True)
class Filter:
    """Which dead letters: by stage, error type, organisation and time (all optional)."""

    stage: str | None = None
    error_type: str | None = None
    organization_id: str | None = None
    since: datetime | None = None
    ids: frozenset[str] = frozenset()

    def matches(self, letter: DeadLetter) -> bool:
        return (
            (self.stage is None or letter.stage == self.stage)
            and (self.error_type is None or letter.error_type == self.error_type)
            and (self.organization_id is None or letter.organization_id == self.organization_id)
            and (self.since is None or letter.failed_at >= self.since)
            and (not self.ids or str(letter.id) in self.ids or _short(letter) in self.ids)
        )


def _short(letter: DeadLetter) -> str:
    return str(letter.id)[:8]


async def read(settings: Settings, wanted: Filter) -> AsyncIterator[DeadLetter]:
    """The dead letters on the topic now (it keeps 30 days), oldest first per partition."""
    topic = topic_name(settings, "dead-letter")
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        enable_auto_commit=False,
        max_partition_fetch_bytes=PRODUCER_REQUEST_BYTES,
        **aiokafka_auth(settings),
    )
    try:
        await consumer.start()
        tps = [TopicPartition(topic, p) for p in await partitions(settings, "dead-letter")]
        consumer.assign(tps)
        begins = await consumer.beginning_offsets(tps)
        ends = await consumer.end_offsets(tps)
        starts: dict[TopicPartition, int] = dict(begins)
        if wanted.since is not None:
            found = await consumer.offsets_for_times(
                dict.fromkeys(tps, int(wanted.since.timestamp() * 1000))
            )
            starts = {tp: at.offset if at is not None else ends[tp] for tp, at in found.items()}
        for tp in tps:
            consumer.seek(tp, starts[tp])
        pending = {tp for tp in tps if await consumer.position(tp) < ends[tp]}
        while pending:
            batch = await consumer.getmany(*pending, timeout_ms=1000)
            for tp, messages in batch.items():
                for message in messages:
                    if message.offset >= ends[tp]:
                        continue
                    try:
                        letter = DeadLetter.model_validate_json(message.value or b"")
                    except ValidationError:
                        continue  # not ours (an older format): nothing to replay
                    if wanted.matches(letter):
                        yield letter
            pending = {tp for tp in pending if await consumer.position(tp) < ends[tp]}
    except KafkaError as exc:
        raise KafkaUnavailableError(f"Kafka at {settings.kafka_bootstrap}: {exc}") from exc
    finally:
        await consumer.stop()


@dataclass(frozen=True)
class Replayed:
    letter: DeadLetter
    outcome: str  # "replayed", "already replayed", or why not


async def replay(
    settings: Settings, letters: list[DeadLetter], force: bool = False
) -> list[Replayed]:
    """Produce each letter's original again to its topic, once per dead letter (``force``:
    again even if replayed before)."""
    db = Database(settings.database_url.get_secret_value(), max_size=1)
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        acks="all",
        max_request_size=PRODUCER_REQUEST_BYTES,
        **aiokafka_auth(settings),
    )
    out: list[Replayed] = []
    try:
        await producer.start()
        for letter in letters:
            if letter.truncated:
                out.append(Replayed(letter, "not replayable: the original was truncated"))
                continue
            base, org = split_tenant(settings, letter.topic)
            if base not in TOPICS:
                out.append(Replayed(letter, f"not replayable: unknown topic {letter.topic!r}"))
                continue
            async with db.transaction() as conn:
                await _forget_rejection(conn, letter)
                cur = await conn.execute(
                    "INSERT INTO dead_letter_replays (dead_letter_id, topic) VALUES (%s, %s)"
                    " ON CONFLICT (dead_letter_id) DO UPDATE SET replayed_at = now()"
                    " WHERE %s RETURNING replayed_at",
                    (letter.id, letter.topic, force),
                )
                if await cur.fetchone() is None:
                    out.append(Replayed(letter, "already replayed (--force to replay again)"))
                    continue
                await producer.send_and_wait(
                    topic_name(settings, base, org),
                    value=letter.original_value(),
                    key=letter.key.encode() if letter.key else None,
                )
            out.append(Replayed(letter, "replayed"))
    except KafkaError as exc:
        raise KafkaUnavailableError(f"Kafka at {settings.kafka_bootstrap}: {exc}") from exc
    finally:
        await producer.stop()
        await db.close()
    return out


async def _forget_rejection(conn: Any, letter: DeadLetter) -> None:
    """A rejected command is remembered (so a redelivery answers nothing twice); replaying
    it after fixing its cause must run it again, so its rejection is forgotten first."""
    if letter.topic not in ("command-inbox", "operator-commands") or letter.original is None:
        return
    try:
        doc = orjson.loads(letter.original)
        if letter.topic == "command-inbox":  # the tenant's record, inside its envelope
            doc = orjson.loads(TenantCommand.model_validate(doc).body() or b"")
        command_id = UUID(str(doc.get("command_id")))
    except (ValueError, AttributeError):
        return  # no id of its own: replayed, it is a new command anyway
    await conn.execute(
        "DELETE FROM command_log WHERE command_id = %s AND status = 'rejected'", (command_id,)
    )
