"""`metricloom metric import`: bring an existing set of metrics into metricloom (the design's
migration phase) from a file, one metric per line: JSON Lines, or CSV (by the ``.csv``
suffix) with a header row.

Each metric becomes a ``create_metric`` command whose id is derived from what identifies the
metric (organisation, template, parameters, connection), and a line that names a dashboard
also a ``create_dashboard_metric`` whose id is derived from the metric's and the
dashboard's, so importing the same file again, or a file that repeats a line, creates
nothing twice: the command stage answers a command it has seen with its first answer.
Creating the metrics does the rest of the phase: a template's first metric has its
transformer written from a real sample, and a template with a historical endpoint
backfills each metric's history.

The whole file is read and checked before anything is sent: a bad line is one error
naming ``file:line``, and nothing of the file is imported.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
from pathlib import Path
from typing import Annotated, Any
from uuid import UUID, uuid5

import typer
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from metricloom.apps import metric_app
from metricloom.console import OptionalOrg, describe, fail, is_organization_id, print_json
from schema.exceptions import MetricloomError
from schema.models import Aggregation, ChartType, DateRange, PollFrequency, StorableText
from streams.messages import (
    COMMAND_NAMESPACE,
    CommandBase,
    CommandResult,
    CreateDashboardMetric,
    CreateMetric,
    Text,
)
from streams.settings import get_settings

MAX_LINES = 100_000
METRIC_FIELDS = ("organization_id", "template_id", "poll_frequency", "connection_id")
CHART_FIELDS = ("dashboard_id", "chart_type", "date_range_days", "aggregation", "title")
CSV_FIELDS = METRIC_FIELDS + CHART_FIELDS
"""A CSV's columns besides ``params.NAME`` (one per template parameter); empty cells are
left out."""


class ImportedChart(BaseModel):
    """Where an imported metric is drawn (optional)."""

    model_config = ConfigDict(extra="forbid")

    dashboard_id: Annotated[StorableText, Field(min_length=1, max_length=200)]
    chart_type: ChartType | None = None
    date_range_days: DateRange = 30
    aggregation: Aggregation = "last"
    title: Annotated[StorableText, Field(max_length=200)] | None = None


class ImportedMetric(BaseModel):
    """One line of an import file."""

    model_config = ConfigDict(extra="forbid")

    organization_id: str | None = None
    """The metric's organisation; the import's ``--org`` where a line gives none."""
    template_id: Text
    params: dict[Text, Text] = Field(default_factory=dict)
    poll_frequency: PollFrequency | None = None
    connection_id: UUID | None = None
    dashboard: ImportedChart | None = None

    @field_validator("organization_id")
    @classmethod
    def _an_organisation(cls, value: str | None) -> str | None:
        if value is not None and not is_organization_id(value):
            raise ValueError(f"{value!r} is not an organisation id")
        return value

    def commands(self, org: str) -> list[CommandBase]:
        """The metric's create_metric (the same metric, the same id: the frequency is not
        part of its identity, so a metric imported again keeps its tier; change it with
        `metric set-frequency`), then its chart's create_dashboard_metric, if any."""
        identity = json.dumps(
            [org, self.template_id, sorted(self.params.items()), str(self.connection_id)]
        )
        create = CreateMetric(
            command_id=uuid5(COMMAND_NAMESPACE, f"import:{identity}"),
            organization_id=org,
            template_id=self.template_id,
            params=self.params,
            poll_frequency=self.poll_frequency,
            connection_id=self.connection_id,
        )
        if self.dashboard is None:
            return [create]
        chart = uuid5(
            COMMAND_NAMESPACE, f"import-chart:{create.command_id}:{self.dashboard.dashboard_id}"
        )
        place = CreateDashboardMetric(
            command_id=chart,
            organization_id=org,
            metric_id=create.resolved_metric_id(),
            dashboard_metric_id=chart,
            **self.dashboard.model_dump(),
        )
        return [create, place]


def _json_lines(text: str) -> list[tuple[int, dict[str, Any] | str]]:
    return [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]


def _csv_rows(text: str) -> list[tuple[int, dict[str, Any] | str]]:
    """CSV rows as import entries: ``params.NAME`` columns become ``params``, the chart's
    columns ``dashboard`` (when ``dashboard_id`` is given); empty cells are left out."""
    reader = csv.DictReader(io.StringIO(text))
    unknown = [
        f for f in reader.fieldnames or [] if f not in CSV_FIELDS and not f.startswith("params.")
    ]
    if unknown:
        raise ValueError(
            f"line 1: unknown column(s) {unknown}: give {', '.join(CSV_FIELDS)} or params.NAME"
        )
    rows: list[tuple[int, dict[str, Any] | str]] = []
    for row in reader:
        cells = {k: v for k, v in row.items() if k is not None and v not in (None, "")}
        entry: dict[str, Any] = {
            "params": {
                k.removeprefix("params."): v for k, v in cells.items() if k.startswith("params.")
            }
        }
        chart = {k: cells[k] for k in CHART_FIELDS if k in cells}
        if chart:
            entry["dashboard"] = chart
        entry |= {k: cells[k] for k in METRIC_FIELDS if k in cells}
        rows.append((reader.line_num, entry))
    return rows


def read_import_file(path: Path, org: str | None) -> list[CommandBase]:
    """The commands of an import file, each once, in file order (a metric before its chart),
    each for its line's organisation or else ``org``; ValueError naming the first bad line."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read {path}: {exc}") from exc
    if text.count("\n") > MAX_LINES:
        raise ValueError(f"{path} has over {MAX_LINES} lines: import at most that at a time")
    try:
        entries = _csv_rows(text) if path.suffix.lower() == ".csv" else _json_lines(text)
    except (ValueError, csv.Error) as exc:
        raise ValueError(f"{path}: {exc}") from exc
    commands: dict[UUID, CommandBase] = {}
    for number, entry in entries:
        try:
            if isinstance(entry, str):
                metric = ImportedMetric.model_validate_json(entry)
            else:
                metric = ImportedMetric.model_validate(entry)
        except ValidationError as exc:
            raise ValueError(f"{path}:{number}: {describe(exc)}") from exc
        owner = metric.organization_id or org
        if owner is None:
            raise ValueError(f"{path}:{number}: no organisation: give organization_id or --org")
        for command in metric.commands(owner):
            commands.setdefault(command.command_id, command)
    if not commands:
        raise ValueError(f"{path} holds no metric (one per line)")
    return list(commands.values())


@metric_app.command("import")
def metric_import(
    file: Annotated[Path, typer.Argument(help="JSON Lines, or CSV: one metric per line.")],
    org: OptionalOrg = None,
    timeout: Annotated[
        float, typer.Option(min=1.0, help="Seconds to wait for all the worker's answers.")
    ] = 300.0,
) -> None:
    """Create the metrics a file lists (`{"organization_id": ..., "template_id": ...,
    "params": {...}, "poll_frequency": ..., "connection_id": ..., "dashboard":
    {"dashboard_id": ...}}` per line, or CSV columns; a line without organization_id is
    --org's). Importing again creates nothing twice. Prints one JSON summary; exit 1 if
    anything was rejected (each is listed)."""
    try:
        commands = read_import_file(file, org)
    except ValueError as exc:
        fail(str(exc), 2)
    from streams.client import CommandTimeoutError, send_commands

    by_org: dict[str, list[CommandBase]] = {}
    for command in commands:  # one organisation's commands at a time, each in file order
        by_org.setdefault(command.organization_id, []).append(command)

    async def send_all() -> tuple[dict[UUID, CommandResult], str | None]:
        """Every organisation's answers within one deadline for the whole file; on a
        timeout or an outage, the answers so far and what stopped the rest."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        results: dict[UUID, CommandResult] = {}
        for owner, batch in by_org.items():
            left = deadline - loop.time()
            try:
                if left <= 0:
                    raise CommandTimeoutError(f"no answer within {timeout:g} s")
                results |= await send_commands(get_settings(), batch, left)
            except MetricloomError as exc:  # the timeout, Kafka away, a refused principal
                return results, f"organisation {owner!r}: {exc}"
        return results, None

    results, stopped = asyncio.run(send_all())
    summary = summarise(commands, results)
    print_json(summary)
    if stopped is not None:
        fail(
            f"{stopped}; {summary['unanswered']} of {len(commands)} commands unanswered"
            " (is `metricloom worker` running?); importing the file again creates nothing twice"
        )
    if summary["rejected"]:
        raise typer.Exit(1)


def summarise(commands: list[CommandBase], results: dict[UUID, CommandResult]) -> dict[str, Any]:
    """How many metrics and charts the file names, how many the worker accepted and how
    many it has not answered (an import stopped by a timeout or an outage); each rejection
    with its organisation, what it was for and the reason."""
    rejected = []
    for command in commands:
        result = results.get(command.command_id)
        if result is None or result.status == "accepted":
            continue
        what: dict[str, Any] = {"organization_id": command.organization_id}
        if isinstance(command, CreateMetric):
            what |= {"template_id": command.template_id, "params": command.params}
        else:
            assert isinstance(command, CreateDashboardMetric)
            what |= {"metric_id": str(command.metric_id), "dashboard_id": command.dashboard_id}
        rejected.append({**what, "error": result.error})
    metrics = sum(isinstance(c, CreateMetric) for c in commands)
    unanswered = sum(c.command_id not in results for c in commands)
    return {
        "metrics": metrics,
        "charts": len(commands) - metrics,
        "accepted": len(commands) - len(rejected) - unanswered,
        "rejected": rejected,
        "unanswered": unanswered,
    }
