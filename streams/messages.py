"""The records on metricloom's Kafka topics: pydantic models, JSON on the wire.

Every record carries ``schema_version``; a consumer rejects a version it does not know
(to the dead-letter topic) rather than guessing. Credentials never appear here: the fetch
stage resolves them from its own settings.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal
from uuid import UUID, uuid4, uuid5

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter

from schema.models import ChartConfig, ChartType, DataPoint, PollFrequency

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


class CommandBase(Record):
    command_id: UUID = Field(default_factory=uuid4)
    organization_id: str = Field(min_length=1, max_length=200)


class CreateMetric(CommandBase):
    """Create a metric from a template; ``metric_id`` defaults to one derived from
    ``command_id``, so a re-delivered command creates nothing twice."""

    type: Literal["create_metric"] = "create_metric"
    template_id: str
    params: dict[str, str] = Field(default_factory=dict)
    poll_frequency: PollFrequency | None = None
    metric_id: UUID | None = None
    connection_id: UUID | None = None

    def resolved_metric_id(self) -> UUID:
        return self.metric_id or uuid5(COMMAND_NAMESPACE, f"metric:{self.command_id}")


class CreateDashboardMetric(CommandBase):
    """Place a metric on a dashboard with its own chart preferences."""

    type: Literal["create_dashboard_metric"] = "create_dashboard_metric"
    dashboard_id: str = Field(min_length=1)
    metric_id: UUID
    title: str | None = None
    chart_type: ChartType | None = None
    date_range_days: int = Field(30, ge=1, le=3660)
    aggregation: Literal["sum", "avg", "min", "max", "last", "count"] = "last"
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
    request: str = Field(min_length=3, max_length=2000)


class RollbackTransformer(CommandBase):
    """Make an earlier version current again (as a new version; history keeps all).
    Name a template for its MetricTransformer, or a dashboard metric for its chart."""

    type: Literal["rollback_transformer"] = "rollback_transformer"
    template_id: str | None = None
    dashboard_metric_id: UUID | None = None
    version: int = Field(ge=1)


Command = Annotated[
    CreateMetric | CreateDashboardMetric | RefreshMetric | ChangeChart | RollbackTransformer,
    Field(discriminator="type"),
]
COMMAND_ADAPTER: TypeAdapter[Command] = TypeAdapter(Command)


class CommandResult(Record):
    """Out on "command-results", key: command id. Every command gets exactly one."""

    command_id: UUID | None
    organization_id: str | None = None
    type: str | None = None
    status: Literal["accepted", "rejected"]
    error: str | None = None
    metric_id: UUID | None = None
    dashboard_metric_id: UUID | None = None
    at: AwareDatetime = Field(default_factory=utcnow)


# --- the data path (key: metric id) -----------------------------------------------------


class PollDue(Record):
    """A metric is due for a fetch (topic "poll-due")."""

    metric_id: UUID
    due_at: AwareDatetime
    reason: Literal["schedule", "created", "refresh", "retry", "backfill"] = "schedule"
    window: tuple[date, date] | None = None
    chunk: int | None = None
    chunks: int | None = None


class RawPayload(Record):
    """What the fetch stage got from the provider (topic "raw-payloads")."""

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
    """Points a MetricTransformer produced from one payload (topic "points")."""

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
    dashboard metric id, so one target's requests are handled one at a time)."""

    kind: Literal["metric", "chart"]
    reason: Literal["created", "heal", "change"]
    template_id: str | None = None
    metric_id: UUID | None = None
    dashboard_metric_id: UUID | None = None
    organization_id: str | None = None
    user_prompt: str | None = None
    errors: list[str] = Field(default_factory=list)


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
    message: str
    at: AwareDatetime = Field(default_factory=utcnow)


class DeadLetter(Record):
    """A message a stage could not process, with why (topic "dead-letter").

    ``original`` is the message's value as text (UTF-8, invalid bytes replaced); replaying
    it to ``topic`` after fixing the cause re-runs the stage.
    """

    stage: str
    topic: str
    partition: int | None = None
    offset: int | None = None
    key: str | None = None
    error_type: str
    error: str
    original: str
    metric_id: UUID | None = None
    failed_at: AwareDatetime = Field(default_factory=utcnow)
