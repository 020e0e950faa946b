"""The ingress: tenants' commands, from their own topics into the worker's inbox.

Each organisation produces to ``commands.<org>``, which only its principal may write. The
ingress subscribes to every such topic by pattern (a tenant added later is picked up
within ``METADATA_MAX_AGE_MS``) and passes each record on to the internal
``command-inbox`` topic as a ``TenantCommand``: stamped with the organisation of the topic
it came from, its bytes and coordinates kept. Offsets are committed only after the broker
has acknowledged the envelopes, so a record is passed on at least once; the command stage
recognises a repeat by the command's id (or, without one, by these coordinates).

Why not a Faust agent: Faust's aiokafka driver does not subscribe by pattern ("pattern
does not work", in its own source), and tenants come and go while the worker runs.
"""

from __future__ import annotations

import asyncio
import base64
import re

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError

from streams.messages import TenantCommand
from streams.security import aiokafka_auth
from streams.settings import Settings
from streams.topics import COMMAND_RECORD_BYTES, ORGANIZATION_ID, PRODUCER_REQUEST_BYTES, topic_name

log = structlog.get_logger(__name__)

METADATA_MAX_AGE_MS = 10_000


def tenant_commands_pattern(settings: Settings) -> re.Pattern[str]:
    org = ORGANIZATION_ID.pattern.removeprefix("^").removesuffix("$")
    return re.compile(f"^{re.escape(settings.topic_prefix)}commands\\.({org})$")


def envelope(
    settings: Settings,
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes | None,
) -> TenantCommand:
    """The inbox record for one tenant record (the organisation from its topic)."""
    match = tenant_commands_pattern(settings).match(topic)
    assert match is not None
    text: str | None = None
    encoded: str | None = None
    if value is not None:
        try:
            text = value.decode("utf-8")
        except UnicodeDecodeError:
            encoded = base64.b64encode(value).decode()
    return TenantCommand(
        organization_id=match.group(1),
        topic=topic,
        partition=partition,
        offset=offset,
        key=key.decode("utf-8", "replace") if key else None,
        value=text,
        value_base64=encoded,
    )


class CommandIngress:
    """Runs until cancelled; a broker that is away is waited for, never skipped."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def run(self) -> None:
        settings = self.settings
        auth = aiokafka_auth(settings)
        consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap,
            group_id=f"{settings.app_id}-ingress",
            group_instance_id=(
                f"{settings.kafka.group_instance_id}-ingress"
                if settings.kafka.group_instance_id
                else None
            ),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            metadata_max_age_ms=METADATA_MAX_AGE_MS,
            max_partition_fetch_bytes=COMMAND_RECORD_BYTES + 65536,
            session_timeout_ms=int(settings.kafka.session_timeout_s * 1000),
            heartbeat_interval_ms=int(settings.kafka.heartbeat_interval_s * 1000),
            **auth,
        )
        producer = AIOKafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap,
            acks="all",
            max_request_size=PRODUCER_REQUEST_BYTES,
            linger_ms=0,
            **auth,
        )
        inbox = topic_name(settings, "command-inbox")
        await self._start(consumer, producer)
        consumer.subscribe(pattern=tenant_commands_pattern(settings).pattern)
        log.info("ingress.started", pattern=tenant_commands_pattern(settings).pattern)
        try:
            while True:
                try:
                    await self._pass_on(consumer, producer, inbox)
                except KafkaError as exc:  # the broker is away: wait, then take it again
                    log.warning("ingress.paused", error=repr(exc)[:300])
                    await asyncio.sleep(1.0)
        finally:
            await consumer.stop()
            await producer.stop()

    async def _start(self, consumer: AIOKafkaConsumer, producer: AIOKafkaProducer) -> None:
        while True:
            try:
                await consumer.start()
                await producer.start()
                return
            except KafkaError as exc:
                log.warning("ingress.waiting", error=repr(exc)[:300])
                await asyncio.sleep(1.0)

    async def _pass_on(
        self, consumer: AIOKafkaConsumer, producer: AIOKafkaProducer, inbox: str
    ) -> None:
        batch = await consumer.getmany(timeout_ms=1000, max_records=500)
        if not batch:
            return
        pending = []
        offsets = {}
        for tp, records in batch.items():
            for record in records:
                item = envelope(
                    self.settings, tp.topic, tp.partition, record.offset, record.key, record.value
                )
                pending.append(
                    await producer.send(
                        inbox, value=item.to_bytes(), key=item.organization_id.encode()
                    )
                )
            offsets[tp] = records[-1].offset + 1
        try:
            await asyncio.gather(*pending)
            await consumer.commit(offsets)
        except KafkaError:
            # Take these again, not the ones after them. A partition a rebalance took away
            # meanwhile (a new tenant's topic joins the pattern) cannot be sought, and need
            # not be: whoever it goes to starts at its committed offset, before these.
            assigned = consumer.assignment()
            for tp, records in batch.items():
                if tp in assigned:
                    consumer.seek(tp, records[0].offset)
            raise
