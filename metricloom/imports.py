"""`metricloom metric import`: bring an existing set of metrics into metricloom (the design's
migration phase) from a JSON Lines file, one metric per line.

Each line becomes a ``create_metric`` command whose id is derived from what identifies the
metric (organisation, template, parameters, connection), so importing the same file again,
or a file that repeats a line, creates nothing twice: the command stage answers a command
it has seen with its first answer. Creating the metrics does the rest of the phase: a
template's first metric has its transformer written from a real sample, and a template
with a historical endpoint backfills each metric's history.

The whole file is read and checked before anything is sent: a bad line is one error
naming the line, and nothing of the file is imported.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Any
from uuid import UUID, uuid5

import typer
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from metricloom.apps import metric_app
from metricloom.console import Org, describe, fail, print_json
from schema.exceptions import MetricloomError
from schema.models import PollFrequency
from streams.messages import COMMAND_NAMESPACE, CommandResult, CreateMetric, Text
from streams.settings import get_settings

MAX_LINES = 100_000


class ImportedMetric(BaseModel):
    """One line of an import file."""

    model_config = ConfigDict(extra="forbid")

    template_id: Text
    params: dict[Text, Text] = Field(default_factory=dict)
    poll_frequency: PollFrequency | None = None
    connection_id: UUID | None = None

    def command(self, org: str) -> CreateMetric:
        """The create_metric command for this metric: the same metric, the same id. The
        frequency is not part of the identity: a metric imported again keeps its tier
        (change it with `metric set-frequency`)."""
        identity = json.dumps(
            [org, self.template_id, sorted(self.params.items()), str(self.connection_id)]
        )
        return CreateMetric(
            command_id=uuid5(COMMAND_NAMESPACE, f"import:{identity}"),
            organization_id=org,
            template_id=self.template_id,
            params=self.params,
            poll_frequency=self.poll_frequency,
            connection_id=self.connection_id,
        )


def read_import_file(path: Path, org: str) -> list[CreateMetric]:
    """The commands of an import file, one per distinct metric, in file order; ValueError
    naming the first bad line. Blank lines are skipped."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read {path}: {exc}") from exc
    commands: dict[UUID, CreateMetric] = {}
    lines = text.splitlines()
    if len(lines) > MAX_LINES:
        raise ValueError(f"{path} has {len(lines)} lines: import at most {MAX_LINES} at a time")
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            entry = ImportedMetric.model_validate_json(line)
        except ValidationError as exc:
            raise ValueError(f"{path}:{number}: {describe(exc)}") from exc
        command = entry.command(org)
        commands.setdefault(command.command_id, command)
    if not commands:
        raise ValueError(f"{path} holds no metric (one JSON object per line)")
    return list(commands.values())


@metric_app.command("import")
def metric_import(
    file: Annotated[Path, typer.Argument(help="JSON Lines: one metric per line.")],
    org: Org,
    timeout: Annotated[
        float, typer.Option(min=1.0, help="Seconds to wait for all the worker's answers.")
    ] = 300.0,
) -> None:
    """Create the metrics a file lists (`{"template_id": ..., "params": {...},
    "poll_frequency": ..., "connection_id": ...}` per line). Importing again creates nothing
    twice. Prints one JSON summary; exit 1 if any metric was rejected (each is listed)."""
    try:
        commands = read_import_file(file, org)
    except ValueError as exc:
        fail(str(exc), 2)
    from streams.client import CommandTimeoutError, send_commands

    try:
        results = asyncio.run(send_commands(get_settings(), commands, timeout))
    except CommandTimeoutError as exc:
        fail(f"{exc} (is `metricloom worker` running?)")
    except MetricloomError as exc:
        fail(str(exc))
    summary = summarise(commands, results)
    print_json(summary)
    if summary["rejected"]:
        raise typer.Exit(1)


def summarise(commands: list[CreateMetric], results: dict[UUID, CommandResult]) -> dict[str, Any]:
    """How many metrics the file names and how many the worker accepted; each rejection
    with its template, parameters and reason."""
    rejected = [
        {"template_id": c.template_id, "params": c.params, "error": results[c.command_id].error}
        for c in commands
        if results[c.command_id].status != "accepted"
    ]
    return {
        "metrics": len(commands),
        "accepted": len(commands) - len(rejected),
        "rejected": rejected,
    }
