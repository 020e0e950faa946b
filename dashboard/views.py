"""What the read API answers: pydantic models, so the OpenAPI document is generated from
the same definitions the handlers return (``dashboard/openapi.json``).

The reads themselves (SQL and row validation) are :mod:`schema.reads`, shared with the
CLI; the views here are the API's shapes of those rows (its field names, newest version
first), each made from a read model by its ``of`` (fields copied by name).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from schema import reads
from schema.models import ChartConfig, ChartType, PollFrequency
from schema.reads import BackfillState


class View(BaseModel):
    model_config = ConfigDict(frozen=True)


class Login(View):
    """An organisation's id and its Kafka password (what `metricloom tenant add` printed)."""

    organization_id: str = Field(min_length=1, max_length=63)
    password: SecretStr = Field(min_length=1, max_length=1000)


class SessionView(View):
    organization_id: str


class Problem(View):
    """An error, in one line."""

    detail: str


class BackfillSummary(View):
    """A metric's whole backfill as read from ``backfill-progress.<org>``: chunks may be
    written in any order, so progress is the count of distinct chunks written."""

    metric_id: UUID
    state: Literal["running", "written", "failed"]
    chunks: int
    chunks_written: int
    points: int
    error: str | None = None


class MetricState(View):
    """A metric, its schedule and how its polls are going."""

    id: UUID
    template_id: str
    params: dict[str, str]
    poll_frequency: PollFrequency
    status: Literal["active", "paused", "failed"]
    last_fetched_at: datetime | None
    last_error: str | None
    last_error_at: datetime | None
    failure_state: Literal["ok", "retrying", "failed"]
    failure_count: int
    next_poll_at: datetime | None
    backfill: BackfillState | None
    transformer_status: Literal["active", "regenerating", "failed"] | None
    """The template's shared transformer: ``None`` while none is written yet."""
    transformer_version: int | None
    created_at: datetime

    @classmethod
    def of(cls, metric: reads.MetricState) -> MetricState:
        return cls.model_validate(metric, from_attributes=True)


class ChartView(View):
    """A chart on a dashboard: its preferences, the config last published, and the state
    of the metric behind it (for "last updated" and the error state)."""

    dashboard_metric_id: UUID
    dashboard_id: str
    metric_id: UUID
    title: str
    chart_type: ChartType | None
    date_range_days: int | None
    aggregation: str | None
    chart_transformer_version: int | None
    user_prompt: str | None
    config: ChartConfig | None
    config_at: datetime | None
    metric: MetricState

    @classmethod
    def of(cls, chart: reads.Chart, metric: reads.MetricState) -> ChartView:
        """The API's names for a chart's fields, with its metric's state inlined."""
        return cls.model_validate(
            chart.model_dump(exclude={"graph_config"})
            | {
                "dashboard_metric_id": chart.id,
                "chart_transformer_version": chart.transformer_version,
                "config": chart.graph_config,
                "config_at": chart.graph_config_at,
                "metric": MetricState.of(metric),
            }
        )


class DashboardSummary(View):
    id: str
    charts: int

    @classmethod
    def of(cls, dashboard: reads.Dashboard) -> DashboardSummary:
        return cls(id=dashboard.id, charts=len(dashboard.charts))


class DashboardView(View):
    id: str
    charts: list[ChartView]

    @classmethod
    def of(
        cls, dashboard: reads.Dashboard, metrics: list[reads.MetricState]
    ) -> DashboardView | None:
        """A dashboard's charts with their metrics' states (None: no chart of it has its
        metric among ``metrics``)."""
        by_id = {metric.id: metric for metric in metrics}
        charts = [
            ChartView.of(chart, by_id[chart.metric_id])
            for chart in dashboard.charts
            if chart.metric_id in by_id
        ]
        return cls(id=dashboard.id, charts=charts) if charts else None


class TemplateParamView(View):
    name: str
    pattern: str


class TemplateView(View):
    """A template of the catalogue: what a new metric needs."""

    id: str
    name: str
    description: str
    provider: str
    params: list[TemplateParamView]
    default_poll_frequency: PollFrequency
    default_chart_type: ChartType
    has_history: bool
    historical_data_limit_days: int | None
    unit: str


class TransformerVersion(View):
    """One version of a transformer, with its code."""

    version: int
    current: bool
    code: str
    historical_code: str | None = None
    status: str | None = None
    generator: str
    user_prompt: str | None = None
    chart_type: str | None = None
    created_at: datetime | None
    language: Literal["python", "typescript"] = "python"

    @classmethod
    def of(cls, version: reads.TransformerVersion) -> TransformerVersion:
        return cls.model_validate(version, from_attributes=True)


class TransformerHistory(View):
    """A transformer and every kept version: a template's (shared by every organisation
    whose metrics use it) or a chart's (the organisation's own)."""

    kind: Literal["metric", "chart"]
    template_id: str | None = None
    dashboard_metric_id: UUID | None = None
    title: str | None = None
    versions: list[TransformerVersion]
    """Newest first."""

    @classmethod
    def of(cls, transformer: reads.Transformer) -> TransformerHistory:
        return cls.model_validate(
            transformer.model_dump(exclude={"versions"})
            | {"versions": [TransformerVersion.of(v) for v in reversed(transformer.versions)]}
        )


class DeadLetterView(View):
    """A message of the organisation a stage could not process, and why."""

    id: UUID
    stage: str
    topic: str
    error_type: str
    error: str
    metric_id: UUID | None
    failed_at: datetime
    original: str | None


class AlertView(View):
    kind: str
    template_id: str | None
    dashboard_metric_id: UUID | None
    message: str
    at: datetime


class CommandAnswer(View):
    """The worker's answer to a command the dashboard sent (``CommandResult``)."""

    command_id: UUID | None
    type: str | None
    status: Literal["accepted", "rejected"]
    error: str | None
    metric_id: UUID | None
    dashboard_metric_id: UUID | None


CommandBody = dict[str, Any]
"""A command as `commands.<org>` takes it (README: Commands); ``organization_id`` may be
left out: it is the session's."""
