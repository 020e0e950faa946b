"""The one loop every stage runs in, and the one error policy.

A stage is plain code: it decodes a consumed message into a record and handles a batch of
decoded records, returning what to send. It knows nothing of Faust; the Faust agent (see
``streams/app.py``) feeds it batches, produces what comes back and acknowledges the batch
only once the broker has acknowledged every record it caused.

The error policy, in one place (:func:`process_batch`):

* a message that does not decode or validate (null, empty, not UTF-8, not JSON, a lone
  surrogate, an unknown schema version) is poison: it goes to the dead-letter topic alone,
  and the stage may add its own answer (the command stage's rejection);
* a failure of a service the stage depends on (database, Docker, the model server, Kafka)
  is raised as :class:`~schema.exceptions.ServiceUnavailableError`: the agent stops
  consuming and retries the batch with capped backoff until the service is back. Nothing
  healthy is dead-lettered because a service was away;
* a failure that belongs to one message (a provider's 404, a transformer's exception) is
  the stage's to report: it records it on the metric and returns a dead letter for it;
* anything else (a bug, a record that breaks the batch's SQL or cannot be encoded) is
  isolated: the batch is handled again one message at a time, and only the message that
  still fails is dead-lettered, with the exception; the others go on.

Stages are idempotent (a batch may be handled again whole or one by one): they key their
effects on the ids their records carry.
"""

from __future__ import annotations

import base64
import hashlib
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar
from uuid import UUID, uuid5

import structlog

from agents.services import Services
from schema.exceptions import ServiceUnavailableError
from streams.messages import COMMAND_NAMESPACE, DeadLetter, Record, Tombstone
from streams.topics import DEAD_LETTER_ORIGINAL_BYTES, TOPICS

log = structlog.get_logger(__name__)

R = TypeVar("R")


class MalformedRecordError(ValueError):
    """A consumed record is not what its topic carries (empty, not JSON, ...)."""


class RecordTooLargeError(ValueError):
    """A record a stage produced is larger than its topic takes."""


class UnencodableRecordError(ValueError):
    """A record a stage produced cannot be serialised (a lone surrogate in a string)."""


@dataclass(frozen=True)
class Incoming:
    """A consumed Kafka message as plain values (``value`` None: a null record)."""

    topic: str
    partition: int | None
    offset: int | None
    key: bytes | None
    value: bytes | None

    def body(self) -> bytes:
        """The value, for decoding; a null or empty record is poison."""
        if not self.value:
            raise MalformedRecordError("the record has no value (null or empty)")
        return self.value


@dataclass(frozen=True)
class Send:
    """A record to produce: ``topic`` is the registry name (without the prefix); ``org``
    names the organisation for an organisation's own topic (``chart-configs.<org>``)."""

    topic: str
    key: str
    record: Record
    org: str | None = None


@dataclass(frozen=True)
class Outgoing:
    """A record encoded for the wire, checked against its topic's size limit; ``topic``
    is the name without the deployment's prefix (``chart-configs.acme``)."""

    topic: str
    key: bytes
    value: bytes
    tombstone: bool = False
    """Produce a null value (a :class:`streams.messages.Tombstone`; ``value`` is empty)."""


class Stage(ABC, Generic[R]):
    """One stage of the pipeline: decode, then handle a batch."""

    name: str

    @abstractmethod
    def decode(self, message: Incoming) -> R:
        """Parse and validate one message; raise ValueError (or ValidationError) if bad."""

    @abstractmethod
    async def handle(self, services: Services, batch: list[tuple[Incoming, R]]) -> list[Send]:
        """Process decoded records; must be idempotent (a batch may be handled again)."""

    def rejected(self, message: Incoming, error: Exception) -> list[Send]:
        """Extra answer to a poison message besides its dead letter (none by default)."""
        return []

    async def delivered(self, services: Services, batch: Sequence[Incoming]) -> None:
        """Called once the broker has acknowledged every record the batch caused, before
        the batch is acknowledged itself (nothing to do by default)."""


def encode(send: Send) -> Outgoing:
    """Serialise a record for its topic; raise if it cannot be, or is too large."""
    try:
        tombstone = isinstance(send.record, Tombstone)
        value = b"" if tombstone else send.record.to_bytes()
        key = send.key.encode()
    except (ValueError, UnicodeError) as exc:  # pydantic's serialisation error is a ValueError
        raise UnencodableRecordError(
            f"{type(send.record).__name__} for {send.topic} cannot be encoded: {exc}"
        ) from exc
    spec = TOPICS[send.topic]
    if spec.tenant != (send.org is not None):
        raise ValueError(f"{send.topic} {'needs' if spec.tenant else 'takes no'} organisation")
    if len(value) > spec.max_bytes:
        raise RecordTooLargeError(
            f"{type(send.record).__name__} for {send.topic} is {len(value)} bytes"
            f" (the topic takes {spec.max_bytes})"
        )
    topic = f"{send.topic}.{send.org}" if send.org is not None else send.topic
    return Outgoing(topic, key, value, tombstone)


def dead_letter_id(stage: str, message: Incoming) -> UUID:
    """The same failed message gets the same dead-letter id, however often it fails."""
    where = f"{message.topic}:{message.partition}:{message.offset}"
    if message.offset is None:
        digest = hashlib.sha256(message.value or b"").hexdigest()
        where = f"{message.topic}:{digest}"
    return uuid5(COMMAND_NAMESPACE, f"dead-letter:{stage}:{where}")


def dead_letter(
    stage: str,
    message: Incoming,
    error: Exception | str,
    metric_id: UUID | None = None,
    organization_id: str | None = None,
) -> Send:
    """The dead-letter record for ``message``: its original and what went wrong.

    The original is kept whole when it fits the dead-letter topic (as text when it is
    UTF-8, else base64), and otherwise its head, with its size and SHA-256 either way, so a
    dead letter always fits and ``metricloom dead-letter replay`` can tell whether it has
    the whole original."""
    error_type = type(error).__name__ if isinstance(error, Exception) else "StageError"
    raw = message.value or b""
    kept = raw[:DEAD_LETTER_ORIGINAL_BYTES]
    try:
        text: str | None = kept.decode("utf-8")
        encoded = None
    except UnicodeDecodeError:
        text, encoded = None, base64.b64encode(kept).decode()
    key = message.key.decode("utf-8", "replace") if message.key else None
    record = DeadLetter(
        id=dead_letter_id(stage, message),
        stage=stage,
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        key=key,
        error_type=error_type,
        error=str(error).encode("utf-8", "replace").decode()[:4000],
        original=text,
        original_base64=encoded,
        original_null=message.value is None,
        original_bytes=len(raw),
        original_sha256=hashlib.sha256(raw).hexdigest(),
        truncated=len(kept) < len(raw),
        metric_id=metric_id,
        organization_id=organization_id,
    )
    return Send("dead-letter", key or stage, record)


async def process_batch(
    stage: Stage[R], services: Services, batch: Sequence[Incoming]
) -> list[Outgoing]:
    """Decode, handle, encode; apply the error policy. Raises ServiceUnavailableError
    (for the caller to retry the batch later); returns the records to produce."""
    out: list[Outgoing] = []
    decoded: list[tuple[Incoming, R]] = []
    for message in batch:
        try:
            decoded.append((message, stage.decode(message)))
        except (ValueError, UnicodeError) as exc:  # ValidationError is a ValueError
            log.warning(
                "stage.poison",
                stage=stage.name,
                topic=message.topic,
                partition=message.partition,
                offset=message.offset,
                error=str(exc)[:500],
            )
            out += _refusal(stage, message, exc)
    if not decoded:
        return out
    try:
        return out + [encode(send) for send in await stage.handle(services, decoded)]
    except ServiceUnavailableError:
        raise
    except Exception:
        log.exception("stage.batch_failed", stage=stage.name, batch=len(decoded))
    for item in decoded:  # again, one at a time: only what still fails is dead-lettered
        try:
            out += [encode(send) for send in await stage.handle(services, [item])]
        except ServiceUnavailableError:
            raise
        except Exception as exc:
            log.exception("stage.message_failed", stage=stage.name, offset=item[0].offset)
            out += _refusal(stage, item[0], exc)
    return out


def _refusal(stage: Stage[R], message: Incoming, error: Exception) -> list[Outgoing]:
    """The dead letter (and the stage's own answer) for a message it cannot process."""
    out = [encode(dead_letter(stage.name, message, error))]
    for send in stage.rejected(message, error):
        try:
            out.append(encode(send))
        except ValueError as exc:  # the answer quotes the bad record; the dead letter stays
            log.warning("stage.answer_unencodable", stage=stage.name, error=str(exc)[:300])
    return out
