"""The CLI's read verbs on the real database (and Kafka for ``status``): each returns what
the organisation has, and another organisation's rows never appear."""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from agents.services import keyring_for
from schema import catalog
from schema.models import Connection, DashboardMetric, PollFrequency
from streams.settings import Settings
from tests.conftest import run_cli
from tests.integration.conftest import stored_metric

pytestmark = [pytest.mark.integration]

TOKEN = "ghp_read-verbs-secret-token"


def cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(settings, *args)


def read_json(settings: Settings, *args: str) -> Any:
    done = cli(settings, *args, "--json")
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == 1  # one JSON document
    return json.loads(done.stdout)


@pytest.fixture
async def two_tenants(db_conn: Any, settings: Settings) -> dict[str, Any]:
    """A metric on a dashboard and a connection with a token for each of two organisations."""
    made: dict[str, Any] = {}
    for org in ("acme", "beta"):
        connection = Connection(
            id=uuid.uuid4(),
            organization_id=org,
            provider="github",
            auth="token",
            token=TOKEN,
        )
        await catalog.insert_connection(db_conn, connection, keyring_for(settings))
        metric = await stored_metric(
            db_conn,
            f"read-{org}",
            org=org,
            frequency=PollFrequency.HOURLY,
            next_poll_at=datetime.now(UTC) + timedelta(hours=1),
            connection_id=connection.id,
        )
        chart = DashboardMetric(
            id=uuid.uuid4(),
            organization_id=org,
            dashboard_id=f"board-{org}",
            metric_id=metric.id,
            title=f"stars of {org}",
            chart_type="bar",
            date_range_days=30,
            aggregation="last",
        )
        await catalog.insert_dashboard_metric(db_conn, chart)
        made[org] = {"metric": metric.id, "connection": connection.id, "chart": chart.id}
    return made


def test_metric_list_and_show_are_scoped(settings: Settings, two_tenants: dict[str, Any]) -> None:
    """acme's list holds its metric and not beta's; showing beta's id as acme is one line,
    exit 1; show carries the state fields and the metric's charts."""
    listed = {m["id"] for m in read_json(settings, "metric", "list", "--org", "acme")}
    assert str(two_tenants["acme"]["metric"]) in listed
    assert str(two_tenants["beta"]["metric"]) not in listed

    shown = read_json(
        settings, "metric", "show", str(two_tenants["acme"]["metric"]), "--org", "acme"
    )
    for field in (
        "status",
        "last_fetched_at",
        "last_error",
        "failure_state",
        "next_poll_at",
        "backfill",
    ):
        assert field in shown
    assert shown["status"] == "active"
    assert [c["id"] for c in shown["dashboards"]] == [str(two_tenants["acme"]["chart"])]

    foreign = cli(settings, "metric", "show", str(two_tenants["beta"]["metric"]), "--org", "acme")
    assert foreign.returncode == 1
    assert foreign.stderr.strip() == (
        f"error: organisation 'acme' has no metric {two_tenants['beta']['metric']}"
    )
    table = cli(settings, "metric", "list", "--org", "acme")
    assert table.returncode == 0 and str(two_tenants["acme"]["metric"]) in table.stdout


def test_dashboard_and_connection_lists_are_scoped_and_never_show_a_token(
    settings: Settings, two_tenants: dict[str, Any]
) -> None:
    """Dashboards and connections of acme only; a connection says it has a token, and no
    output holds the token."""
    boards = read_json(settings, "dashboard", "list", "--org", "acme")
    charts = {c["id"] for board in boards for c in board["charts"]}
    assert str(two_tenants["acme"]["chart"]) in charts
    assert str(two_tenants["beta"]["chart"]) not in charts
    assert "board-beta" not in {board["id"] for board in boards}

    connections = read_json(settings, "connection", "list", "--org", "acme")
    by_id = {c["id"]: c for c in connections}
    assert str(two_tenants["beta"]["connection"]) not in by_id
    # Other tests leave acme connections without tokens; this one was stored with one.
    assert by_id[str(two_tenants["acme"]["connection"])]["has_token"] is True
    for args in (
        ("connection", "list", "--org", "acme"),
        ("connection", "list", "--org", "acme", "--json"),
    ):
        done = cli(settings, *args)
        assert TOKEN not in done.stdout + done.stderr


def test_templates_and_transformer_versions(
    settings: Settings, two_tenants: dict[str, Any]
) -> None:
    """Templates with the organisation's metric count and their parameters; a template's
    transformer versions (with code on show, a diff between two), refused to an
    organisation without a metric of the template; a chart's versions only to its owner."""
    templates = {t["id"]: t for t in read_json(settings, "template", "list", "--org", "acme")}
    assert templates["github-repo-stars"]["metrics"] >= 1
    shown = read_json(settings, "template", "show", "github-repo-stars", "--org", "acme")
    assert [p["name"] for p in shown["params"]] == ["OWNER", "REPO"]

    versions = read_json(settings, "transformer", "versions", "github-repo-stars", "--org", "acme")
    assert versions and versions[-1]["current"] and "code" not in versions[-1]
    current = read_json(settings, "transformer", "show", "github-repo-stars", "--org", "acme")
    assert current["version"] == versions[-1]["version"] and current["code"].strip()
    diff = read_json(
        settings, "transformer", "diff", "github-repo-stars@1", "github-repo-stars", "--org", "acme"
    )
    assert diff["from"] == "github-repo-stars@1"

    refused = cli(settings, "transformer", "versions", "github-repo-stars", "--org", "sched-org")
    assert refused.returncode == 1 and refused.stderr.count("\n") == 1
    theirs = cli(
        settings, "transformer", "versions", str(two_tenants["beta"]["chart"]), "--org", "acme"
    )
    assert theirs.returncode == 1 and "has no transformer" in theirs.stderr


def test_status_reports_lag_dead_letters_alerts_and_transformers(
    settings: Settings, two_tenants: dict[str, Any], worker: Any
) -> None:
    """status answers one JSON document with each part; the running worker's group shows
    with its stages."""
    doc = read_json(settings, "status", "--org", "acme")
    assert doc["organization"] == "acme"
    assert {"consumer_lag", "dead_letters", "alerts", "transformers_not_active"} <= set(doc)
    assert {"fetch", "write", "chart", "commands"} <= {lag["stage"] for lag in doc["consumer_lag"]}


def test_connection_rotate_replaces_the_token_of_that_organisation_only(
    settings: Settings, two_tenants: dict[str, Any]
) -> None:
    """The new token is read from stdin, sealed, and is what the fetch path opens next;
    another organisation's connection is refused in one line and keeps its token; the
    token is never printed."""
    new_token = "ghp_rotated-read-verbs-token"

    def rotate(org: str, connection_id: Any, *extra: str) -> subprocess.CompletedProcess[str]:
        return run_cli(
            settings,
            "connection",
            "rotate",
            str(connection_id),
            "--org",
            org,
            *extra,
            stdin=new_token + "\n",
        )

    async def token_of(connection_id: Any, org: str) -> str | None:
        from schema.db import Database

        db = Database(settings.database_url.get_secret_value(), max_size=1)
        try:
            async with db.transaction() as conn:
                found = await catalog.get_connection(
                    conn, connection_id, org, keyring_for(settings)
                )
        finally:
            await db.close()
        assert found is not None and found.token is not None
        return found.token.get_secret_value()

    acme, beta = two_tenants["acme"]["connection"], two_tenants["beta"]["connection"]
    no_stdin = rotate("acme", acme)
    assert no_stdin.returncode == 2
    assert no_stdin.stderr.strip() == (
        "error: give the new token on stdin with --token-stdin (never on the command line)"
    )

    foreign = rotate("acme", beta, "--token-stdin")
    assert foreign.returncode == 1
    assert foreign.stderr.strip() == f"error: organisation 'acme' has no connection {beta}"

    done = rotate("acme", acme, "--token-stdin", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "connection_id": str(acme),
        "provider": "github",
        "token": "replaced",
    }
    assert new_token not in done.stdout + done.stderr + foreign.stderr
    assert asyncio.run(token_of(acme, "acme")) == new_token
    assert asyncio.run(token_of(beta, "beta")) == TOKEN
