"""The topic registry: names, keys, record sizes and the configuration each topic is
created with. Plain declarations (no Kafka client here: see ``streams/admin.py``).

Every name is prefixed with ``METRICLOOM_TOPIC_PREFIX`` (empty by default), so several
deployments or test runs can share a cluster. Partition count and replication factor
come from the settings (``METRICLOOM_TOPIC_PARTITIONS``, ``METRICLOOM_TOPIC_REPLICATION``).

Sizes, chosen together (see the README's "Record sizes"): a provider body is capped at
``METRICLOOM_FETCH__MAX_BODY_BYTES`` (10 MiB by default), which must fit a ``raw-payloads``
record (16 MiB) with its envelope; a payload's points are split into ``points`` records
under the same limit; a dead letter keeps its original whole when it fits its topic and
otherwise a truncated head with the original's size and SHA-256. Commands, which other
services produce, are held to 1 MiB, the broker's default.
"""

from __future__ import annotations

from dataclasses import dataclass

from schema.exceptions import MetricloomError
from streams.settings import Settings

MIB = 1024 * 1024
DATA_RECORD_BYTES = 16 * MIB
"""The largest record on a metricloom data topic (``max.message.bytes``)."""
COMMAND_RECORD_BYTES = 1 * MIB
"""The largest command another service may produce."""
PRODUCER_REQUEST_BYTES = DATA_RECORD_BYTES + MIB
"""The producer's ``max_request_size``: one largest record and its batch header."""
DEAD_LETTER_ORIGINAL_BYTES = DATA_RECORD_BYTES - MIB
"""How much of an original a dead letter keeps (the rest of the record is the error)."""
DAY_MS = 86_400_000


class MissingTopicError(MetricloomError):
    """The topic has not been created (``metricloom setup`` or a worker creates them)."""


@dataclass(frozen=True)
class TopicSpec:
    key: str
    value: str
    max_bytes: int = DATA_RECORD_BYTES
    compacted: bool = False
    retention_days: int | None = None

    @property
    def config(self) -> dict[str, str]:
        """The topic-level configuration it is created with."""
        config = {"max.message.bytes": str(self.max_bytes)}
        if self.compacted:
            config |= {
                "cleanup.policy": "compact",
                "min.cleanable.dirty.ratio": "0.1",
                "segment.ms": "3600000",
            }
        if self.retention_days is not None:
            config["retention.ms"] = str(self.retention_days * DAY_MS)
        return config


TOPICS: dict[str, TopicSpec] = {
    "commands": TopicSpec("organization id", "Command", max_bytes=COMMAND_RECORD_BYTES),
    "operator-commands": TopicSpec(
        "template id", "OperatorCommand", max_bytes=COMMAND_RECORD_BYTES
    ),
    "command-results": TopicSpec("command id", "CommandResult"),
    "poll-due": TopicSpec("metric id", "PollDue", retention_days=7),
    "raw-payloads": TopicSpec("metric id", "RawPayload", retention_days=7),
    "points": TopicSpec("metric id", "PointsBatch", retention_days=7),
    "metric-updated": TopicSpec("metric id", "MetricUpdated", retention_days=7),
    "chart-configs": TopicSpec("dashboard metric id", "ChartConfigMessage", compacted=True),
    "codegen-requests": TopicSpec("template id or dashboard metric id", "CodegenRequest"),
    "backfill-progress": TopicSpec("metric id", "BackfillProgress", retention_days=7),
    "alerts": TopicSpec("template id or dashboard metric id", "Alert"),
    "dead-letter": TopicSpec("metric id or stage", "DeadLetter", retention_days=30),
}


def topic_name(settings: Settings, base: str) -> str:
    if base not in TOPICS:
        raise KeyError(f"unknown topic {base!r}")
    return f"{settings.topic_prefix}{base}"
