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

import re
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


ORGANIZATION_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
"""What an organisation id may be: it names its topics (``commands.<org>``) and its Kafka
principal, so it is kept to what a topic name and a principal both take, lower case."""
RESERVED_PRINCIPALS = frozenset({"admin", "worker", "dashboard", "operator", "anonymous"})


class InvalidOrganizationError(MetricloomError):
    """An organisation id that cannot name topics and a principal."""


def check_organization(org: str) -> str:
    if not ORGANIZATION_ID.match(org) or org in RESERVED_PRINCIPALS:
        raise InvalidOrganizationError(
            f"organisation id {org!r} must match {ORGANIZATION_ID.pattern} and not be one of"
            f" {', '.join(sorted(RESERVED_PRINCIPALS))}"
        )
    return org


@dataclass(frozen=True)
class TopicSpec:
    key: str
    value: str
    max_bytes: int = DATA_RECORD_BYTES
    compacted: bool = False
    retention_days: int | None = None
    tenant: bool = False
    """One topic per organisation, ``<name>.<org>``, which only that organisation's
    principal may use (write ``commands``, read the others) besides the worker."""

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
    # an organisation's own topics, "<name>.<org>"
    "commands": TopicSpec(
        "any (the organisation is the topic's)", "Command", COMMAND_RECORD_BYTES, tenant=True
    ),
    "command-results": TopicSpec("command id", "CommandResult", tenant=True),
    "chart-configs": TopicSpec(
        "dashboard metric id", "ChartConfigMessage", compacted=True, tenant=True
    ),
    "alerts": TopicSpec("template id or dashboard metric id", "Alert", tenant=True),
    "backfill-progress": TopicSpec("metric id", "BackfillProgress", retention_days=7, tenant=True),
    # the worker's own
    "command-inbox": TopicSpec("organization id", "TenantCommand", retention_days=7),
    "operator-commands": TopicSpec("template id", "OperatorCommand", COMMAND_RECORD_BYTES),
    "operator-results": TopicSpec("command id", "CommandResult"),
    "operator-alerts": TopicSpec("template id or dashboard metric id", "Alert"),
    "poll-due": TopicSpec("metric id", "PollDue", retention_days=7),
    "raw-payloads": TopicSpec("metric id", "RawPayload", retention_days=7),
    "points": TopicSpec("metric id", "PointsBatch", retention_days=7),
    "metric-updated": TopicSpec("metric id", "MetricUpdated", retention_days=7),
    "codegen-requests": TopicSpec("template id or dashboard metric id", "CodegenRequest"),
    "dead-letter": TopicSpec("metric id or stage", "DeadLetter", retention_days=30),
}
INTERNAL = tuple(base for base, spec in TOPICS.items() if not spec.tenant)
TENANT = tuple(base for base, spec in TOPICS.items() if spec.tenant)


def topic_name(settings: Settings, base: str, org: str | None = None) -> str:
    """A topic's full name: the deployment's prefix, the name, and for an organisation's
    topic its id (``<prefix>chart-configs.acme``)."""
    spec = TOPICS.get(base)
    if spec is None:
        raise KeyError(f"unknown topic {base!r}")
    if spec.tenant != (org is not None):
        raise KeyError(f"topic {base!r} {'needs' if spec.tenant else 'takes no'} organisation")
    return f"{settings.topic_prefix}{base}" + (f".{org}" if org is not None else "")


def split_tenant(settings: Settings, name: str) -> tuple[str, str | None]:
    """The registry name and organisation of a full topic name (the inverse of
    :func:`topic_name`); an organisation's topic is recognised by its dot."""
    bare = name[len(settings.topic_prefix) :] if name.startswith(settings.topic_prefix) else name
    base, dot, org = bare.partition(".")
    return (base, org) if dot else (bare, None)
