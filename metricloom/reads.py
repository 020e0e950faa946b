"""Read verbs: what an organisation has and how it is doing, read from the database as the
application role (``schema/reads.py``) and, for ``status``, from Kafka. ``--org`` is
required on every one and scopes everything it prints; ``--json`` prints one JSON document
instead of a table."""

from __future__ import annotations

import asyncio
import difflib
from collections import Counter
from typing import Annotated, Any
from uuid import UUID

import typer

from metricloom.apps import app, connection_app, dashboard_app, metric_app, transformer_app
from metricloom.console import Json, Org, fail, in_transaction, jsonable, show, table
from schema import reads
from schema.db import Conn
from streams.settings import get_settings

template_app = typer.Typer(
    no_args_is_help=True, pretty_exceptions_enable=False, help="The metric templates."
)
app.add_typer(template_app, name="template")


NOT_PRINTED = {"graph_config"}
"""A chart's last published config (its data points): the dashboard draws it; a person
reading charts here wants their settings."""


def _backfill(state: reads.BackfillState | None) -> str:
    if state is None:
        return "-"
    chunks = state.chunks or 1
    return f"{state.state} {state.chunk or chunks}/{chunks}"


@metric_app.command("list")
def metric_list(org: Org, json: Json = False) -> None:
    """The organisation's metrics with their state."""
    found = in_transaction(lambda conn: reads.metrics(conn, org))
    rows = [
        {
            "id": m.id,
            "template": m.template_id,
            "status": m.status,
            "frequency": m.poll_frequency,
            "last_fetched_at": m.last_fetched_at,
            "next_poll_at": m.next_poll_at,
            "failure": m.failure_state,
            "charts": m.charts,
        }
        for m in found
    ]
    show(found, json, table(rows, list(rows[0]) if rows else [], "(no metrics)"))


@metric_app.command("show")
def metric_show(
    metric_id: Annotated[UUID, typer.Argument(help="The metric's id.")],
    org: Org,
    json: Json = False,
) -> None:
    """One metric: its parameters, status, last fetch and error, failure state, next
    poll, backfill progress, and the charts showing it."""

    async def query(conn: Conn) -> tuple[reads.MetricState | None, list[reads.Chart]]:
        return await reads.metric(conn, org, metric_id), await reads.charts(conn, org, metric_id)

    found, charts = in_transaction(query)
    if found is None:
        fail(f"organisation {org!r} has no metric {metric_id}")
    fields = {
        "id": found.id,
        "template": found.template_id,
        "params": found.params,
        "status": found.status,
        "frequency": found.poll_frequency,
        "next_poll_at": found.next_poll_at,
        "last_fetched_at": found.last_fetched_at,
        "last_error": found.last_error,
        "last_error_at": found.last_error_at,
        "failure_state": f"{found.failure_state} ({found.failure_count} failures)",
        "backfill": _backfill(found.backfill),
        "connection": found.connection_id,
        "created_at": found.created_at,
    }
    text = table([{"field": k, "value": v} for k, v in fields.items()], ["field", "value"])
    chart_rows = [
        {"chart": c.id, "dashboard": c.dashboard_id, "type": c.chart_type} for c in charts
    ]
    text += "\n\n" + table(chart_rows, ["chart", "dashboard", "type"], "(on no dashboard)")
    printed = [c.model_dump(mode="json", exclude=NOT_PRINTED) for c in charts]
    show({**jsonable(found), "dashboards": printed}, json, text)


@dashboard_app.command("list")
def dashboard_list(org: Org, json: Json = False) -> None:
    """The organisation's dashboards and their charts."""
    found = in_transaction(lambda conn: reads.dashboards(conn, org))
    rows = [
        {
            "dashboard": d.id,
            "chart": c.id,
            "metric": c.metric_id,
            "type": c.chart_type,
            "days": "all" if c.date_range_days is None else c.date_range_days,
            "aggregation": c.aggregation,
            "version": c.transformer_version,
            "drawn_at": c.graph_config_at,
            "title": c.title,
        }
        for d in found
        for c in d.charts
    ]
    printed = [
        d.model_dump(mode="json", exclude={"charts": {"__all__": NOT_PRINTED}}) for d in found
    ]
    show(printed, json, table(rows, list(rows[0]) if rows else [], "(no dashboards)"))


@template_app.command("list")
def template_list(org: Org, json: Json = False) -> None:
    """The metric templates, with how many metrics of each the organisation has."""
    from templates import load_templates

    used = in_transaction(lambda conn: reads.metrics_per_template(conn, org))
    docs = [
        {
            "id": t.id,
            "name": t.name,
            "provider": t.provider,
            "params": [p.name for p in t.params],
            "history": t.historical is not None,
            "frequency": t.default_poll_frequency.value,
            "metrics": used.get(t.id, 0),
        }
        for t in sorted(load_templates().values(), key=lambda t: t.id)
    ]
    show(docs, json, table(docs, list(docs[0]) if docs else []))


@template_app.command("show")
def template_show(
    template_id: Annotated[str, typer.Argument(help="The template's id.")],
    org: Org,
    json: Json = False,
) -> None:
    """A template: what it measures, its parameters (with the pattern each value must
    match) and its defaults."""
    from templates import TemplateError, get_template

    try:
        template = get_template(template_id)
    except TemplateError as exc:
        fail(str(exc), 2)
    used = in_transaction(lambda conn: reads.metrics_per_template(conn, org)).get(template.id, 0)
    doc = {
        "id": template.id,
        "name": template.name,
        "description": template.description,
        "provider": template.provider,
        "params": [{"name": p.name, "pattern": p.pattern} for p in template.params],
        "history": template.historical is not None,
        "default_poll_frequency": template.default_poll_frequency.value,
        "default_chart_type": template.default_chart_type,
        "unit": template.unit,
        "metrics": used,
    }
    head = {k: v for k, v in doc.items() if k != "params"}
    text = table([{"field": k, "value": v} for k, v in head.items()], ["field", "value"])
    text += "\n\n" + table(doc["params"], ["name", "pattern"], "(no parameters)")  # type: ignore[arg-type]
    show(doc, json, text)


def _versions(org: str, target: str) -> list[reads.TransformerVersion]:
    found = in_transaction(lambda conn: reads.transformer_versions(conn, org, target))
    if not found:
        fail(
            f"organisation {org!r} has no transformer {target!r}: name a template it has a"
            " metric of, or one of its charts (dashboard metric id)"
        )
    return found


def _version(org: str, ref: str) -> reads.TransformerVersion:
    """``TARGET@VERSION`` (``TARGET`` alone: the current version)."""
    target, at, number = ref.rpartition("@") if "@" in ref else (ref, "", "")
    if at and not number.isdigit():
        fail(f"{ref!r}: the version after @ must be a number (TARGET@VERSION)", 2)
    versions = _versions(org, target)
    if not at:
        return next(v for v in versions if v.current)
    for version in versions:
        if version.version == int(number):
            return version
    fail(f"{target!r} has versions {versions[0].version}..{versions[-1].version}, not {number}")


TransformerRef = Annotated[
    str,
    typer.Argument(
        help="TARGET@VERSION (TARGET alone: current): a template id or a chart's id.",
    ),
]


@transformer_app.command("versions")
def transformer_versions(
    target: Annotated[str, typer.Argument(help="A template id, or a chart's id.")],
    org: Org,
    json: Json = False,
) -> None:
    """Every version of a template's transformer (one the organisation has a metric of)
    or of one of its charts' transformers, oldest first."""
    found = _versions(org, target)
    rows = [
        {
            "version": v.version,
            "current": v.current,
            "status": v.status,
            "language": v.language,
            "generator": v.generator,
            "chart_type": v.chart_type,
            "request": v.user_prompt,
            "at": v.created_at,
            "lines": len(v.code.splitlines()),
        }
        for v in found
    ]
    show(
        [v.model_dump(mode="json", exclude={"code", "historical_code"}) for v in found],
        json,
        table(rows, list(rows[0])),
    )


@transformer_app.command("show")
def transformer_show(ref: TransformerRef, org: Org, json: Json = False) -> None:
    """A transformer version's code."""
    version = _version(org, ref)
    mark = "//" if version.language == "typescript" else "#"  # a comment in the code's language
    head = f"{version.target} version {version.version} ({version.language}, {version.generator})"
    text = f"{mark} {head}\n{version.code}"
    if version.historical_code:
        text += f"\n{mark} historical\n{version.historical_code}"
    show(version, json, text.rstrip())


@transformer_app.command("diff")
def transformer_diff(
    first: TransformerRef, second: TransformerRef, org: Org, json: Json = False
) -> None:
    """What changed between two transformer versions (unified diff)."""
    a, b = _version(org, first), _version(org, second)
    diff = "".join(
        difflib.unified_diff(
            a.code.splitlines(keepends=True),
            b.code.splitlines(keepends=True),
            f"{a.target}@{a.version}",
            f"{b.target}@{b.version}",
        )
    )
    doc = {"from": f"{a.target}@{a.version}", "to": f"{b.target}@{b.version}", "diff": diff}
    show(doc, json, diff.rstrip() or "(no difference)")


@connection_app.command("list")
def connection_list(org: Org, json: Json = False) -> None:
    """The organisation's connections (whether each holds a token; never the token)."""
    found = in_transaction(lambda conn: reads.connections(conn, org))
    rows = [
        {
            "id": c.id,
            "provider": c.provider,
            "auth": c.auth,
            "token": "stored" if c.has_token else "-",
            "nango": f"{c.nango_provider_config_key}/{c.nango_connection_id}"
            if c.auth == "nango"
            else "-",
            "metrics": c.metrics,
            "created_at": c.created_at,
        }
        for c in found
    ]
    show(found, json, table(rows, list(rows[0]) if rows else [], "(no connections)"))


@app.command("status")
def status(org: Org, json: Json = False) -> None:
    """How the pipeline is doing for an organisation: the stages' consumer lag, its dead
    letters per stage, its alerts, and the transformers its metrics use that are not
    `active`."""
    from streams.dead_letters import Filter, read
    from streams.status import consumer_lag, read_to_end

    settings = get_settings()

    async def from_kafka() -> tuple[list[Any], Counter[str], list[Any]]:
        lag = await consumer_lag(settings, org)
        letters = Counter(
            [
                letter.stage
                async for letter in read(settings, Filter(None, None, org, None, frozenset()))
            ]
        )
        alerts = await read_to_end(settings, "alerts", org)
        return lag, letters, alerts

    issues = in_transaction(lambda conn: reads.transformers_not_active(conn, org))
    lag, letters, alerts = asyncio.run(from_kafka())
    doc = {
        "organization": org,
        "consumer_lag": [vars(item) for item in lag],
        "dead_letters": dict(letters),
        "alerts": alerts,
        "transformers_not_active": jsonable(issues),
    }
    lag_rows = [vars(item) for item in lag]
    text = "\n\n".join(
        [
            "consumer lag\n" + table(lag_rows, ["stage", "group", "topic", "lag", "partitions"]),
            "dead letters\n"
            + table(
                [{"stage": s, "count": n} for s, n in sorted(letters.items())],
                ["stage", "count"],
            ),
            "alerts\n"
            + table(alerts[-20:], ["at", "kind", "template_id", "dashboard_metric_id", "message"]),
            "transformers not active\n"
            + table(
                jsonable(issues), ["template_id", "status", "version", "metrics", "last_error"]
            ),
        ]
    )
    show(doc, json, text)
