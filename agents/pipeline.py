"""The one loop every stage runs in, and the one error policy.

A stage is plain code: it decodes a message's bytes into a record and handles a batch of
decoded records, returning what to send. It knows nothing of Faust; the Faust agent (see
``streams/app.py``) only feeds it batches and sends what comes back.

The error policy, in one place (:func:`process_batch`):

* a message that does not decode or validate is poison: it goes to the dead-letter topic
  with the error, and the stage may add its own answer (the command stage's rejection);
* a failure of a service the stage depends on (database, Docker) is retried with
  jittered backoff, bounded in attempts and in time (stamina); when the bound is reached
  each message of the batch goes to the dead-letter topic with the error, so nothing is
  lost (the original bytes are kept for replay) and no partition is stuck;
* a failure that belongs to one message (a provider's 404, a transformer's exception) is
  the stage's to report: it records it on the metric and returns a dead letter for it;
* anything else is a bug: it is logged with its traceback and the batch is dead-lettered
  (kept for replay once fixed), so one bad batch never stops the agent.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar
from uuid import UUID

import stamina
import structlog
from pydantic import ValidationError

from agents.generators.openai_compatible import ModelUnavailableError
from agents.services import Services
from sandbox.exceptions import SandboxUnavailableError
from schema.exceptions import DatabaseUnavailableError
from streams.messages import DeadLetter, Record

log = structlog.get_logger(__name__)

TRANSIENT: tuple[type[Exception], ...] = (
    DatabaseUnavailableError,
    SandboxUnavailableError,
    ModelUnavailableError,
)
"""Failures of a dependency that may recover: retried (bounded), then dead-lettered."""

R = TypeVar("R")


@dataclass(frozen=True)
class Incoming:
    """A consumed Kafka message as plain values."""

    topic: str
    partition: int | None
    offset: int | None
    key: bytes | None
    value: bytes


@dataclass(frozen=True)
class Send:
    """A record to produce: ``topic`` is the base name (without the prefix)."""

    topic: str
    key: str
    record: Record


class Stage(ABC, Generic[R]):
    """One stage of the pipeline: decode, then handle a batch."""

    name: str

    @abstractmethod
    def decode(self, value: bytes) -> R:
        """Parse and validate one message value; raise ValueError/ValidationError if bad."""

    @abstractmethod
    async def handle(self, services: Services, batch: list[tuple[Incoming, R]]) -> list[Send]:
        """Process decoded records; must be idempotent (a batch may be retried whole)."""

    def rejected(self, message: Incoming, error: Exception) -> list[Send]:
        """Extra answer to a poison message besides its dead letter (none by default)."""
        return []


def dead_letter(
    stage: str, message: Incoming, error: Exception | str, metric_id: UUID | None = None
) -> Send:
    """The dead-letter record for ``message``: original bytes plus what went wrong."""
    error_type = type(error).__name__ if isinstance(error, Exception) else "StageError"
    key = message.key.decode("utf-8", "replace") if message.key else None
    record = DeadLetter(
        stage=stage,
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        key=key,
        error_type=error_type,
        error=str(error)[:4000],
        original=message.value.decode("utf-8", "replace"),
        metric_id=metric_id,
    )
    return Send("dead-letter", key or stage, record)


async def process_batch(
    stage: Stage[R], services: Services, batch: Sequence[Incoming]
) -> list[Send]:
    """Decode, handle with bounded retries, and apply the error policy."""
    sends: list[Send] = []
    decoded: list[tuple[Incoming, R]] = []
    for message in batch:
        try:
            decoded.append((message, stage.decode(message.value)))
        except (ValidationError, ValueError) as exc:
            log.warning(
                "stage.poison",
                stage=stage.name,
                topic=message.topic,
                offset=message.offset,
                error=str(exc)[:500],
            )
            sends.append(dead_letter(stage.name, message, exc))
            sends.extend(stage.rejected(message, exc))
    if not decoded:
        return sends
    settings = services.settings
    try:
        async for attempt in stamina.retry_context(
            on=TRANSIENT, attempts=settings.retry_attempts, timeout=settings.retry_timeout_s
        ):
            with attempt:
                handled = await stage.handle(services, decoded)
    except TRANSIENT as exc:
        log.error("stage.unavailable", stage=stage.name, batch=len(decoded), error=str(exc))
        return sends + [dead_letter(stage.name, message, exc) for message, _ in decoded]
    except Exception as exc:  # a bug must not stop the agent: keep the batch for replay
        log.exception("stage.bug", stage=stage.name, batch=len(decoded))
        return sends + [dead_letter(stage.name, message, exc) for message, _ in decoded]
    return sends + handled
