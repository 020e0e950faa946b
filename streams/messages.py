"""The records on metricloom's Kafka topics: pydantic models, JSON on the wire.

Every record carries ``schema_version``; a consumer rejects a version it does not know
(to the dead-letter topic) rather than guessing. Credentials never appear here: the fetch
stage resolves them from its own settings.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal
from uuid import UUID, uuid4, uuid5

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter, model_validator

from schema.models import (
    Aggregation,
    ChartConfig,
    ChartSettings,
    ChartType,
    DataPoint,
    DateRange,
    PollFrequency,
    StorableText,
)

SCHEMA_VERSION: Literal[1] = 1
COMMAND_NAMESPACE = UUID("6f1c3f57-5a43-4a55-9a39-2a0b8f0f6a01")


def utcnow() -> datetime:
    return datetime.now(UTC)


class Record(BaseModel):
    """Base of every message: strict about unknown fields, versioned."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = SCHEMA_VERSION

    def to_bytes(self) -> bytes:
        return self.model_dump_json(by_alias=True).encode()


# --- commands (in: topic "commands", key: organization id) ------------------------------


Text = Annotated[StorableText, Field(max_length=2000)]
"""Text a command carries into the database: no NUL (PostgreSQL text cannot hold it)."""


class CommandBase(Record):
    """A tenant's command. ``organization_id`` may be left out: the organisation is the one
    whose ``commands.<org>`` topic the command was produced to; one that names another
    organisation is rejected."""

    command_id: UUID = Field(default_factory=uuid4)
    organization_id: StorableText = Field(min_length=1, max_length=200)


class CreateMetric(CommandBase):
    """Create a metric from a template; ``metric_id`` defaults to one derived from
    ``command_id``, so a re-delivered command creates nothing twice."""

    type: Literal["create_metric"] = "create_metric"
    template_id: Text
    params: dict[Text, Text] = Field(default_factory=dict)
    poll_frequency: PollFrequency | None = None
    metric_id: UUID | None = None
    connection_id: UUID | None = None

    def resolved_metric_id(self) -> UUID:
        return self.metric_id or uuid5(COMMAND_NAMESPACE, f"metric:{self.command_id}")


class CreateDashboardMetric(CommandBase):
    """Place a metric on a dashboard with its own chart preferences."""

    type: Literal["create_dashboard_metric"] = "create_dashboard_metric"
    dashboard_id: StorableText = Field(min_length=1, max_length=200)
    metric_id: UUID
    title: Annotated[StorableText, Field(max_length=200)] | None = None
    chart_type: ChartType | None = None
    date_range_days: DateRange = 30
    """Days back from now; ``"all"`` (or null): all time."""
    aggregation: Aggregation = "last"
    dashboard_metric_id: UUID | None = None

    def resolved_dashboard_metric_id(self) -> UUID:
        return self.dashboard_metric_id or uuid5(
            COMMAND_NAMESPACE, f"dashboard-metric:{self.command_id}"
        )


class RefreshMetric(CommandBase):
    """Poll a metric now, whatever its schedule."""

    type: Literal["refresh_metric"] = "refresh_metric"
    metric_id: UUID


class ChangeChart(CommandBase):
    """Change a chart in plain words ("show weekly averages as a bar chart"): the chart
    transformer is regenerated from its current code, the request and a sample."""

    type: Literal["change_chart"] = "change_chart"
    dashboard_metric_id: UUID
    request: StorableText = Field(min_length=3, max_length=2000)


class RollbackTransformer(CommandBase):
    """Make an earlier version of a dashboard metric's chart transformer current again (as
    a new version; history keeps all). A template's transformer is every organisation's:
    rolling it back is an operator command (:class:`RollbackTemplateTransformer`)."""

    type: Literal["rollback_transformer"] = "rollback_transformer"
    template_id: Text | None = None
    dashboard_metric_id: UUID | None = None
    version: int = Field(ge=1)


class PauseMetric(CommandBase):
    """Stop polling a metric (and spending its provider's quota) until it is resumed; its
    points and charts stay. A tick already on its way is not fetched."""

    type: Literal["pause_metric"] = "pause_metric"
    metric_id: UUID


class ResumeMetric(CommandBase):
    """Poll a paused metric again: it is scheduled from now on its own grid."""

    type: Literal["resume_metric"] = "resume_metric"
    metric_id: UUID


class DeleteMetric(CommandBase):
    """Delete a metric with everything keyed on it: points, rollups, charts (dashboard
    metrics and their chart transformers), schedule and poll ledger. Ticks, payloads and
    points still on their way are skipped with a log line."""

    type: Literal["delete_metric"] = "delete_metric"
    metric_id: UUID


class SetMetricFrequency(CommandBase):
    """Poll a metric on another tier; its next poll moves to the new tier's grid."""

    type: Literal["set_metric_frequency"] = "set_metric_frequency"
    metric_id: UUID
    frequency: PollFrequency


class RemoveChart(CommandBase):
    """Take a chart (a dashboard metric) off its dashboard, with its chart transformer and
    every version of it; the metric and its points stay."""

    type: Literal["remove_chart"] = "remove_chart"
    dashboard_id: StorableText = Field(min_length=1, max_length=200)
    dashboard_metric_id: UUID


class RemoveConnection(CommandBase):
    """Forget how an organisation reaches a provider (its token with it); refused while a
    metric still uses the connection."""

    type: Literal["remove_connection"] = "remove_connection"
    connection_id: UUID


ManagementCommand = (
    PauseMetric | ResumeMetric | DeleteMetric | SetMetricFrequency | RemoveChart | RemoveConnection
)
"""The commands that change or remove what exists (``agents/management.py``)."""


class TenantCommand(Record):
    """A record an organisation produced to its ``commands.<org>`` topic, as the worker's
    ingress passes it on (internal topic ``command-inbox``): the organisation is the one
    whose topic it came from — never what the record says — and the record's own bytes and
    coordinates are kept (its natural command id and its rejection name them)."""

    organization_id: str
    topic: str
    partition: int
    offset: int
    key: str | None = None
    value: str | None = None
    value_base64: str | None = None
    received_at: AwareDatetime = Field(default_factory=utcnow)

    def body(self) -> bytes | None:
        """The original record's value (None for a null record)."""
        if self.value_base64 is not None:
            import base64

            return base64.b64decode(self.value_base64)
        return self.value.encode() if self.value is not None else None


# --- operator commands (in: topic "operator-commands", the worker principal's only) -------


OPERATOR: Literal["operator"] = "operator"
"""The organisation operator commands are logged under: they act for the deployment."""


class OperatorCommandBase(Record):
    command_id: UUID = Field(default_factory=uuid4)
    organization_id: Literal["operator"] = OPERATOR


class RollbackTemplateTransformer(OperatorCommandBase):
    """Make an earlier version of a template's shared transformer current again."""

    type: Literal["rollback_template_transformer"] = "rollback_template_transformer"
    template_id: Text
    version: int = Field(ge=1)


class RegenerateTransformer(OperatorCommandBase):
    """Write a template's transformer again from a fresh sample (the way out of
    ``failed``); its metrics are fetched again once a new version is saved."""

    type: Literal["regenerate_transformer"] = "regenerate_transformer"
    template_id: Text
    reason: Text = "an operator asked for it"


class GenerateTransformer(OperatorCommandBase):
    """Write a template's first transformer now, from a real sample of one of its metrics
    (design phase 6: pre-generate after an import; also the way out of a first generation
    that gave up). A template that has a transformer is accepted as it is; one without an
    active metric has nothing to sample and is rejected."""

    type: Literal["generate_transformer"] = "generate_transformer"
    template_id: Text


OperatorCommand = Annotated[
    RollbackTemplateTransformer | RegenerateTransformer | GenerateTransformer,
    Field(discriminator="type"),
]
OPERATOR_ADAPTER: TypeAdapter[OperatorCommand] = TypeAdapter(OperatorCommand)


Command = Annotated[
    CreateMetric
    | CreateDashboardMetric
    | RefreshMetric
    | ChangeChart
    | RollbackTransformer
    | PauseMetric
    | ResumeMetric
    | DeleteMetric
    | SetMetricFrequency
    | RemoveChart
    | RemoveConnection,
    Field(discriminator="type"),
]
COMMAND_ADAPTER: TypeAdapter[Command] = TypeAdapter(Command)
AnyCommand = (
    CreateMetric
    | CreateDashboardMetric
    | RefreshMetric
    | ChangeChart
    | RollbackTransformer
    | ManagementCommand
    | RollbackTemplateTransformer
    | RegenerateTransformer
    | GenerateTransformer
)
"""A tenant's or an operator's command (what the command log keeps)."""


class CommandResult(Record):
    """Out on "command-results", key: command id. Every command gets exactly one. A record
    that is not a command at all is answered with its ``partition`` and ``offset``."""

    command_id: UUID | None
    organization_id: str | None = None
    type: str | None = None
    status: Literal["accepted", "rejected"]
    error: str | None = None
    note: str | None = Field(None, max_length=200)
    """Why an accepted command had nothing to do ("has a transformer")."""
    metric_id: UUID | None = None
    dashboard_metric_id: UUID | None = None
    partition: int | None = None
    offset: int | None = None
    at: AwareDatetime = Field(default_factory=utcnow)


# --- the data path (key: metric id) -----------------------------------------------------


def poll_id_for(
    metric_id: UUID | str, due_at: datetime | str, reason: str, chunk: int | None = None
) -> UUID:
    """A poll's identity: its metric, when it fell due, why, and which backfill chunk. The
    fetch stage keys its poll ledger on it, so a tick delivered twice fetches once."""
    stamp = due_at.isoformat() if isinstance(due_at, datetime) else str(due_at)
    return uuid5(COMMAND_NAMESPACE, f"poll:{metric_id}:{stamp}:{reason}:{chunk}")


class PollDue(Record):
    """A metric is due for a fetch (topic "poll-due"). ``poll_id`` defaults to the
    identity of (metric, due time, reason, chunk): the same tick is the same poll."""

    poll_id: UUID = Field(default=UUID(int=0), description="derived when not given")
    metric_id: UUID
    due_at: AwareDatetime
    reason: Literal["schedule", "created", "refresh", "retry", "backfill"] = "schedule"
    window: tuple[date, date] | None = None
    chunk: int | None = None
    chunks: int | None = None

    @model_validator(mode="before")
    @classmethod
    def _identity(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("poll_id") and "metric_id" in data:
            due = data.get("due_at")
            if isinstance(due, str):
                due = datetime.fromisoformat(due.replace("Z", "+00:00"))
            if isinstance(due, datetime):
                reason = str(data.get("reason") or "schedule")
                chunk = data.get("chunk")
                chunk_number = int(chunk) if isinstance(chunk, int | str) else None
                data = {
                    **data,
                    "poll_id": poll_id_for(data["metric_id"], due, reason, chunk_number),
                }
        return data


class RawPayload(Record):
    """What the fetch stage got from the provider for one poll (topic "raw-payloads")."""

    poll_id: UUID | None = None
    metric_id: UUID
    organization_id: str
    template_id: str
    fetched_at: AwareDatetime
    endpoint: str
    payload: Any
    historical: bool = False
    chunk: int | None = None
    chunks: int | None = None


class PointsBatch(Record):
    """Points a MetricTransformer produced from one payload (topic "points"). A payload
    whose points do not fit one record comes as ``parts`` records, ``part`` 1..n."""

    poll_id: UUID | None = None
    part: int = Field(1, ge=1)
    parts: int = Field(1, ge=1)
    metric_id: UUID
    organization_id: str
    template_id: str
    transformer_version: int
    fetched_at: AwareDatetime
    replace: bool = False
    historical: bool = False
    chunk: int | None = None
    chunks: int | None = None
    points: list[DataPoint]


class MetricUpdated(Record):
    """Points for a metric are committed to the database (topic "metric-updated")."""

    metric_id: UUID
    organization_id: str
    points_written: int
    first_ts: AwareDatetime | None
    last_ts: AwareDatetime | None


class ChartConfigMessage(Record):
    """The current chart of one dashboard metric (compacted topic "chart-configs",
    key: dashboard metric id; the newest record per key is the chart)."""

    dashboard_metric_id: UUID
    organization_id: str
    dashboard_id: str
    metric_id: UUID
    transformer_version: int
    generated_at: AwareDatetime = Field(default_factory=utcnow)
    config: ChartConfig


class CodegenRequest(Record):
    """Write (or rewrite) a transformer (topic "codegen-requests", key: template id or
    dashboard metric id, so one target's requests are handled one at a time).
    ``historical``: the template's historical transformer only; ``version``: the version a
    heal was asked against; ``request_id``: the change a chart request carries out. A chart
    request names its dashboard metric and that dashboard metric's organisation (the
    codegen stage loads it by both); a metric request's organisation is the one of the
    metric it names, if any (an operator's regeneration names none)."""

    kind: Literal["metric", "chart"]
    reason: Literal["created", "heal", "change"]
    template_id: str | None = None
    metric_id: UUID | None = None
    dashboard_metric_id: UUID | None = None
    organization_id: str | None = None
    user_prompt: str | None = None
    errors: list[str] = Field(default_factory=list)
    historical: bool = False
    version: int | None = None
    request_id: UUID | None = None
    chart: ChartSettings | None = None
    """A chart change's settings, read from its request by the command stage."""

    @model_validator(mode="after")
    def _chart_names_its_owner(self) -> CodegenRequest:
        if self.kind == "chart" and (self.dashboard_metric_id is None or not self.organization_id):
            raise ValueError("a chart request names its dashboard_metric_id and organization_id")
        return self


class Tombstone(Record):
    """Deletes its key from a compacted topic: on the wire a null value (nothing of this
    model is sent). A removed chart's on ``chart-configs.<org>``, keyed by its dashboard
    metric id, so compaction drops its configs and subscribers learn it is gone."""


class BackfillProgress(Record):
    """Progress of a metric's historical backfill (topic "backfill-progress", key: metric
    id): ``fetched`` when the history is in hand, ``written`` with the points stored."""

    metric_id: UUID
    organization_id: str
    state: Literal["fetched", "written", "failed"]
    chunk: int | None = None
    chunks: int | None = None
    points: int = 0
    first_ts: AwareDatetime | None = None
    last_ts: AwareDatetime | None = None
    error: str | None = None
    at: AwareDatetime = Field(default_factory=utcnow)


class Alert(Record):
    """Something needs a person (topic "alerts"): a transformer could not be healed."""

    kind: Literal["transformer_failed", "chart_transformer_failed"]
    template_id: str | None = None
    dashboard_metric_id: UUID | None = None
    organizations: list[str] = Field(default_factory=list)
    message: str
    at: AwareDatetime = Field(default_factory=utcnow)


class DeadLetter(Record):
    """A message a stage could not process, with why (topic "dead-letter").

    The original value is ``original`` (text, when it is UTF-8) or ``original_base64``
    (when it is not), whole unless ``truncated``; ``original_bytes`` and
    ``original_sha256`` describe the whole original either way. Replaying a whole original
    to ``topic`` after fixing the cause re-runs the stage (``metricloom dead-letter
    replay``); ``id`` is the same for the same failed message, so a replay is recorded once.
    """

    id: UUID
    stage: str
    topic: str
    partition: int | None = None
    offset: int | None = None
    key: str | None = None
    error_type: str
    error: str
    original: str | None = None
    original_base64: str | None = None
    original_null: bool = False
    original_bytes: int = 0
    original_sha256: str = ""
    truncated: bool = False
    metric_id: UUID | None = None
    organization_id: str | None = None
    failed_at: AwareDatetime = Field(default_factory=utcnow)

    def original_value(self) -> bytes | None:
        """The original record's value as bytes (None for a null record)."""
        if self.original_null:
            return None
        if self.original_base64 is not None:
            import base64

            return base64.b64decode(self.original_base64)
        return (self.original or "").encode()


RECORD_TYPES: dict[str, type[Record]] = {
    "command-results": CommandResult,
    "operator-results": CommandResult,
    "operator-alerts": Alert,
    "command-inbox": TenantCommand,
    "poll-due": PollDue,
    "raw-payloads": RawPayload,
    "points": PointsBatch,
    "metric-updated": MetricUpdated,
    "chart-configs": ChartConfigMessage,
    "codegen-requests": CodegenRequest,
    "backfill-progress": BackfillProgress,
    "alerts": Alert,
    "dead-letter": DeadLetter,
}
"""The record type on each topic the worker produces to (``commands`` holds the
``Command`` union, which other services produce)."""
