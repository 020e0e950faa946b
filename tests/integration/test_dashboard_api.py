"""The dashboard's HTTP API on the real broker, database and worker: login with the
organisation's Kafka password, the read API scoped to the session's organisation, and
commands sent as the organisation."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from streams.messages import COMMAND_ADAPTER
from templates import load_templates
from tests.integration.dashboard_support import (  # noqa: F401  (fixtures)
    ORG,
    OTHER,
    DashboardServer,
    Tenant,
    command,
    dashboard,
    dashboard_tenants,
    logged_in,
    wait_until,
    web_build,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def sessions(
    dashboard: DashboardServer,  # noqa: F811
    dashboard_tenants: dict[str, Tenant],  # noqa: F811
) -> Iterator[dict[str, httpx.Client]]:
    clients = {org: logged_in(dashboard, tenant) for org, tenant in dashboard_tenants.items()}
    try:
        yield clients
    finally:
        for client in clients.values():
            client.close()


def test_login_takes_the_organisations_kafka_password(
    dashboard: DashboardServer,  # noqa: F811
    dashboard_tenants: dict[str, Tenant],  # noqa: F811
) -> None:
    """The broker judges the password: a wrong one, an unknown organisation and a reserved
    principal are one and the same 401; a malformed body is a one-line 422; the right one gives an HttpOnly, SameSite=Strict
    session cookie that names no organisation and holds no password."""
    tenant = dashboard_tenants[ORG]
    with httpx.Client(base_url=dashboard.url) as client:
        for org, password in ((ORG, "wrong"), ("nobody-here", "x"), ("worker", "x")):
            refused = client.post("/api/login", json={"organization_id": org, "password": password})
            assert refused.status_code == 401
            assert refused.json() == {"detail": "organisation or password not accepted"}
        assert client.get("/api/session").status_code == 401
        for body in ({}, {"organization_id": "", "password": "x"}, [1]):
            bad = client.post("/api/login", json=body)
            assert bad.status_code == 422
            assert isinstance(bad.json()["detail"], str) and "\n" not in bad.json()["detail"]
        answer = client.post(
            "/api/login", json={"organization_id": tenant.org, "password": tenant.password}
        )
        assert answer.status_code == 200
        cookie = answer.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie
        assert tenant.password not in cookie and tenant.org not in cookie
        assert client.get("/api/session").json() == {"organization_id": ORG}
        client.cookies.set("metricloom_session", client.cookies["metricloom_session"] + "x")
        assert client.get("/api/session").status_code == 401


def test_reads_are_scoped_to_the_sessions_organisation(
    sessions: dict[str, httpx.Client],
) -> None:
    """One organisation's metric is invisible to another: not in its list, 404 by id under
    its own path, 403 under the owner's path."""
    mine, theirs = sessions[ORG], sessions[OTHER]
    metric = command(
        theirs,
        OTHER,
        {
            "type": "create_metric",
            "template_id": "github-repo-forks",
            "params": {"OWNER": "octocat", "REPO": "scoped"},
            "poll_frequency": "manual",
        },
    )["metric_id"]
    assert metric in [m["id"] for m in theirs.get(f"/api/orgs/{OTHER}/metrics").json()]
    assert metric not in [m["id"] for m in mine.get(f"/api/orgs/{ORG}/metrics").json()]
    assert mine.get(f"/api/orgs/{ORG}/metrics/{metric}").status_code == 404
    for path in ("metrics", f"metrics/{metric}", "dashboards", "transformers", "dead-letters"):
        assert mine.get(f"/api/orgs/{OTHER}/{path}").status_code == 403, path
    refused = mine.post(
        f"/api/orgs/{OTHER}/commands", json={"type": "refresh_metric", "metric_id": metric}
    )
    assert refused.status_code == 403
    with httpx.Client(base_url=str(mine.base_url)) as anonymous:
        assert anonymous.get(f"/api/orgs/{OTHER}/metrics").status_code == 401
    assert mine.get(f"/api/orgs/{ORG}/metrics/not-a-uuid").json()["detail"].startswith("path.")


def test_a_dashboard_reads_only_the_sessions_own_charts(
    sessions: dict[str, httpx.Client],
) -> None:
    """Two organisations chart on a dashboard of the same name: each reads its own chart
    (with its metric's state) and count, never the other's; a dashboard only the other has
    is 404 under its own path."""
    metrics, charts = {}, {}
    for org in (ORG, OTHER):
        metrics[org] = command(
            sessions[org],
            org,
            {
                "type": "create_metric",
                "template_id": "github-repo-forks",
                "params": {"OWNER": "octocat", "REPO": f"board-{org}"},
                "poll_frequency": "manual",
            },
        )["metric_id"]
        charts[org] = command(
            sessions[org],
            org,
            {
                "type": "create_dashboard_metric",
                "dashboard_id": "same-name",
                "metric_id": metrics[org],
                "chart_type": "bar",
                "date_range_days": 7,
                "aggregation": "last",
            },
        )["dashboard_metric_id"]
    command(
        sessions[OTHER],
        OTHER,
        {
            "type": "create_dashboard_metric",
            "dashboard_id": "theirs-only",
            "metric_id": metrics[OTHER],
            "chart_type": "line",
            "date_range_days": 30,
            "aggregation": "last",
        },
    )
    mine = sessions[ORG]
    board = mine.get(f"/api/orgs/{ORG}/dashboards/same-name").json()
    assert [c["dashboard_metric_id"] for c in board["charts"]] == [charts[ORG]]
    chart = board["charts"][0]
    assert (chart["chart_type"], chart["date_range_days"]) == ("bar", 7)
    assert chart["metric"]["params"]["REPO"] == f"board-{ORG}"
    listed = {d["id"]: d["charts"] for d in mine.get(f"/api/orgs/{ORG}/dashboards").json()}
    assert listed["same-name"] == 1 and "theirs-only" not in listed
    assert mine.get(f"/api/orgs/{ORG}/dashboards/theirs-only").status_code == 404
    transformers = mine.get(f"/api/orgs/{ORG}/transformers").json()
    assert charts[OTHER] not in {t["dashboard_metric_id"] for t in transformers}


def test_a_metric_reads_with_its_state_and_backfill(sessions: dict[str, httpx.Client]) -> None:
    """A metric of a template with history, created through the dashboard: its state,
    its template's transformer with code, and its backfill progress (the metric's last
    record, and every chunk tallied from backfill-progress.<org>), all from the API."""
    client = sessions[ORG]
    metric = command(
        client,
        ORG,
        {"type": "create_metric", "template_id": "posthog-events", "params": {"PROJECT_ID": "7"}},
    )["metric_id"]

    def backfilled() -> dict[str, Any] | None:
        state: dict[str, Any] = client.get(f"/api/orgs/{ORG}/metrics/{metric}").json()
        backfill = state["backfill"]
        return state if backfill and backfill["state"] == "written" else None

    state = wait_until(backfilled, 120, "the backfill")
    assert state["status"] == "active" and state["failure_state"] == "ok"
    assert state["backfill"]["points"] > 0
    assert state["backfill"]["chunks"] >= 1
    assert state["transformer_status"] == "active"
    assert state["last_fetched_at"] and state["next_poll_at"]

    def whole() -> dict[str, Any] | None:
        tallies = client.get(f"/api/orgs/{ORG}/backfill").json()
        found = [t for t in tallies if t["metric_id"] == metric and t["state"] == "written"]
        return found[0] if found else None

    tally = wait_until(whole, 120, "every backfill chunk")
    assert tally["chunks_written"] == tally["chunks"] >= 1 and tally["points"] > 0
    histories = client.get(f"/api/orgs/{ORG}/transformers").json()
    posthog = next(h for h in histories if h.get("template_id") == "posthog-events")
    current = posthog["versions"][0]
    assert current["current"] and current["language"] == "typescript"  # the default language
    assert "function transform" in current["code"]


def test_templates_list_every_template_with_its_parameters(
    sessions: dict[str, httpx.Client],
) -> None:
    """The catalogue a new metric is made from: every shipped template, its patterns."""
    listed = {t["id"]: t for t in sessions[ORG].get("/api/templates").json()}
    shipped = load_templates()
    assert set(listed) == set(shipped)
    for template_id, template in shipped.items():
        assert [p["name"] for p in listed[template_id]["params"]] == template.param_names
        assert listed[template_id]["has_history"] == (template.historical is not None)


def test_a_bad_command_is_refused_in_one_line(sessions: dict[str, httpx.Client]) -> None:
    """A body that is no command, or names another organisation, is a 422 whose detail is
    one line; nothing is produced."""
    client = sessions[ORG]
    for body in (
        {"type": "donut"},
        {"type": "create_dashboard_metric", "dashboard_id": "x", "metric_id": "nope"},
        {"type": "refresh_metric", "organization_id": OTHER, "metric_id": ORG},
    ):
        answer = client.post(f"/api/orgs/{ORG}/commands", json=body)
        assert answer.status_code == 422, answer.text
        detail = answer.json()["detail"]
        assert isinstance(detail, str) and detail and "\n" not in detail, detail


def test_a_rejected_command_answers_the_workers_reason(sessions: dict[str, httpx.Client]) -> None:
    """A well-formed command the worker rejects comes back as its CommandResult."""
    answer = sessions[ORG].post(
        f"/api/orgs/{ORG}/commands",
        json={"type": "create_metric", "template_id": "github-repo-stars", "params": {}},
    )
    assert answer.status_code == 200
    result = answer.json()
    assert result["status"] == "rejected" and "REPO" in result["error"]


def test_dead_letters_are_the_organisations_own(sessions: dict[str, httpx.Client]) -> None:
    """A poll the provider answers 404 is dead-lettered: the owner sees it, the other
    organisation does not."""
    mine, theirs = sessions[ORG], sessions[OTHER]

    def create(repo: str) -> str:
        body = {
            "type": "create_metric",
            "template_id": "github-repo-open-issues",
            "params": {"OWNER": "octocat", "REPO": repo},
            "poll_frequency": "manual",
        }
        return str(command(mine, ORG, body)["metric_id"])

    # a metric that works first, so the template has its transformer: the first metric
    # of a template waits for its sample instead of failing
    working = create("works")
    wait_until(
        lambda: mine.get(f"/api/orgs/{ORG}/metrics/{working}").json()["last_fetched_at"],
        90,
        "the template's first poll",
    )
    metric = create("missing")

    def lettered() -> list[dict[str, Any]]:
        letters = mine.get(f"/api/orgs/{ORG}/dead-letters").json()
        return [letter for letter in letters if letter["metric_id"] == metric]

    found = wait_until(lettered, 90, "the metric's dead letter", interval=2)
    assert "404" in found[0]["error"]
    assert metric not in [
        d["metric_id"] for d in theirs.get(f"/api/orgs/{OTHER}/dead-letters").json()
    ]


SET_FREQUENCY = "set_metric_frequency" in str(COMMAND_ADAPTER.json_schema())


@pytest.mark.skipif(
    not SET_FREQUENCY, reason="set_metric_frequency is the management branch's (not merged)"
)
def test_the_poll_frequency_selector_command_sets_it(sessions: dict[str, httpx.Client]) -> None:
    """What the chart's poll-frequency selector sends changes the metric's frequency."""
    client = sessions[ORG]
    metric = command(
        client,
        ORG,
        {
            "type": "create_metric",
            "template_id": "github-repo-stars",
            "params": {"OWNER": "octocat", "REPO": "frequency"},
            "poll_frequency": "manual",
        },
    )["metric_id"]
    command(
        client, ORG, {"type": "set_metric_frequency", "metric_id": metric, "frequency": "hourly"}
    )
    assert client.get(f"/api/orgs/{ORG}/metrics/{metric}").json()["poll_frequency"] == "hourly"


def test_an_event_stream_ends_with_its_session(
    dashboard: DashboardServer,  # noqa: F811
    dashboard_tenants: dict[str, Tenant],  # noqa: F811
) -> None:
    """A page's event stream is open while its session is: after a logout the server
    ends it (within its 5-second session check), and a new one is refused."""
    client = logged_in(dashboard, dashboard_tenants[OTHER])
    cookies = dict(client.cookies)
    try:
        with client.stream("GET", f"/api/orgs/{OTHER}/events", timeout=30) as events:
            assert events.status_code == 200
            assert events.headers["content-type"].startswith("text/event-stream")
            with httpx.Client(base_url=dashboard.url, cookies=cookies) as same:
                assert same.post("/api/logout").status_code == 204
            started = time.monotonic()
            for _ in events.iter_lines():
                pass
            assert time.monotonic() - started < 15
        assert client.get(f"/api/orgs/{OTHER}/events").status_code == 401
    finally:
        client.close()
