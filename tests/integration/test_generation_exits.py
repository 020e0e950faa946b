"""Every transformer state has an exit: a first sample that cannot be fetched, a heal whose
request is lost, a failed transformer, a history that cannot be sampled yet. Through the
codegen stage and the scheduler's pass on a database of their own (the templates here
must start without a transformer), the real demo API and the real sandbox."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest
from psycopg.rows import dict_row
from pydantic import SecretStr

from agents.codegen import CodegenStage
from agents.commands import CommandStage, OperatorStage
from agents.fetching import FetchStage
from agents.pipeline import Incoming, Send
from agents.scheduling import due_generations
from agents.services import Services
from schema import catalog, jobs
from schema.models import Metric, PollFrequency
from streams.messages import (
    Alert,
    CodegenRequest,
    CommandResult,
    CreateMetric,
    GenerateTransformer,
    PollDue,
    RegenerateTransformer,
)
from streams.settings import Settings
from tests.conftest import inbox_message, migrated_database

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def own_database(run_id: str) -> Iterator[str]:
    with migrated_database(f"metricloom_exits_{run_id}") as url:
        yield url


@pytest.fixture
async def svc(settings: Settings, own_database: str) -> AsyncIterator[Services]:
    services = Services.from_settings(
        settings.model_copy(update={"database_url": SecretStr(own_database)})
    )
    yield services
    await services.close()


@pytest.fixture
async def conn(own_database: str) -> AsyncIterator[Any]:
    connection = await psycopg.AsyncConnection.connect(
        own_database, autocommit=True, row_factory=dict_row
    )
    yield connection
    await connection.close()


async def _create(svc: Services, template_id: str, repo: str, org: str = "exits-org") -> list[Send]:
    """A create_metric through the command stage, as the worker would handle it."""
    command = CreateMetric(
        organization_id=org, template_id=template_id, params={"OWNER": "octocat", "REPO": repo}
    )
    message = inbox_message(command.to_bytes(), org)
    return await CommandStage().handle(svc, [(message, command)])


async def _codegen(svc: Services, request: CodegenRequest) -> list[Send]:
    message = Incoming("codegen-requests", 0, 1, None, request.to_bytes())
    return await CodegenStage().handle(svc, [(message, request)])


def _requests(sends: list[Send]) -> list[CodegenRequest]:
    return [s.record for s in sends if isinstance(s.record, CodegenRequest)]


async def _job(conn: Any, target: str) -> dict[str, Any] | None:
    cur = await conn.execute("SELECT * FROM generation_jobs WHERE target = %s", (target,))
    row: dict[str, Any] | None = await cur.fetchone()
    return row


async def test_a_first_sample_that_cannot_be_fetched_is_tried_again_then_given_up(
    svc: Services, conn: Any
) -> None:
    """GitHub answers 202 while it computes statistics: no transformer yet, no dead letter;
    the job waits, the metric says why, the scheduler sends the request again when it is
    due, and past the bound an alert names the organisations waiting."""
    [request] = _requests(await _create(svc, "github-code-frequency", "computing"))
    assert await _codegen(svc, request) == []
    job = await _job(conn, "metric:github-code-frequency")
    assert job is not None and job["due_at"] > datetime.now(UTC) + timedelta(seconds=20)
    assert "202 Accepted" in job["last_error"]
    cur = await conn.execute(
        "SELECT last_error FROM metrics WHERE template_id = 'github-code-frequency'"
    )
    assert "waiting for template 'github-code-frequency'" in (await cur.fetchone())["last_error"]
    assert await catalog.get_metric_transformer(conn, "github-code-frequency") is None

    later = datetime.now(UTC) + timedelta(hours=1)
    again = await due_generations(conn, later, attempts=3)
    assert [s.record.template_id for s in again] == ["github-code-frequency"]  # type: ignore[attr-defined]
    sends: list[Send] = []
    for hour in range(2, 5):  # lost each time: sent again at each deadline, then given up
        sends += await due_generations(conn, later + timedelta(hours=hour), attempts=3)
    alerts = [(s.topic, s.org, s.record) for s in sends if isinstance(s.record, Alert)]
    assert sorted((topic, org) for topic, org, _ in alerts) == [
        ("alerts", "exits-org"),
        ("operator-alerts", None),
    ]
    alert = alerts[0][2]
    assert alert.organizations == ["exits-org"] and "gave up after 3 attempts" in alert.message
    assert await _job(conn, "metric:github-code-frequency") is None


async def test_a_sample_that_comes_later_writes_the_transformer_and_polls(
    svc: Services, conn: Any
) -> None:
    """Two 202s, then an answer: the job's retries end with a transformer and the first
    polls of every metric that waited for it (the one named and the one created since)."""
    repo = "computing-2"  # the demo API answers this path 202 twice, then the repository
    [request] = _requests(await _create(svc, "github-repo-forks", repo))
    second = await _create(svc, "github-repo-forks", "other", org="exits-org-2")
    assert _requests(second) and _requests(second)[0].metric_id != request.metric_id
    assert await _codegen(svc, request) == []  # 202
    assert await _codegen(svc, request) == []  # 202
    sends = await _codegen(svc, request)
    polls = {s.record.metric_id for s in sends if isinstance(s.record, PollDue)}
    assert len(polls) == 2 and request.metric_id in polls
    assert await _job(conn, "metric:github-repo-forks") is None
    assert await catalog.get_metric_transformer(conn, "github-repo-forks") is not None


async def test_a_lost_heal_is_sent_again_then_the_transformer_is_failed(
    svc: Services, conn: Any, demo_api_url: str
) -> None:
    """A transformer set to regenerating whose request never finishes: the scheduler sends
    it again at each deadline; past the bound it is ``failed`` with an alert. Then its
    metrics are not fetched (no request reaches the provider) until an operator's
    ``regenerate`` brings a working version back."""
    await _create(svc, "github-repo-open-issues", "first")
    [request] = await catalog_requests(conn)
    transformer_sends = await _codegen(svc, request)
    assert any(isinstance(s.record, PollDue) for s in transformer_sends)
    transformer = await catalog.get_metric_transformer(conn, "github-repo-open-issues")
    assert transformer is not None
    await catalog.set_transformer_status(conn, "github-repo-open-issues", "regenerating")
    heal = CodegenRequest(
        kind="metric",
        reason="heal",
        template_id="github-repo-open-issues",
        version=transformer.version,
    )
    await jobs.open_job(
        conn, "metric:github-repo-open-issues", heal.model_dump(mode="json"), datetime.now(UTC)
    )
    later = datetime.now(UTC) + timedelta(hours=1)
    sends: list[Send] = []
    for hour in range(4):
        sends += await due_generations(conn, later + timedelta(hours=hour), attempts=3)
    assert any(isinstance(s.record, Alert) for s in sends)
    failed = await catalog.get_metric_transformer(conn, "github-repo-open-issues")
    assert failed is not None and failed.status == "failed"

    metric = Metric(
        id=uuid.uuid4(),
        organization_id="exits-org",
        template_id="github-repo-open-issues",
        params={"OWNER": "octocat", "REPO": f"held-{uuid.uuid4().hex[:6]}"},
        poll_frequency=PollFrequency.DAILY,
        next_poll_at=None,
    )
    await catalog.insert_metric(conn, metric)
    tick = PollDue(metric_id=metric.id, due_at=datetime.now(UTC))
    path = f"/github/repos/octocat/{metric.params['REPO']}"
    assert (
        await FetchStage().handle(svc, [(Incoming("poll-due", 0, 1, None, tick.to_bytes()), tick)])
        == []
    )
    assert path not in httpx.get(f"{demo_api_url}/demo/stats").json()["paths"]
    held = await catalog.get_metric(conn, metric.id)
    assert held is not None and "failed" in (held.last_error or "")

    operator = RegenerateTransformer(template_id="github-repo-open-issues")
    message = Incoming("operator-commands", 0, 1, None, operator.to_bytes())
    answered = await OperatorStage().handle(svc, [(message, operator)])
    [regenerate] = _requests(answered)
    sends = await _codegen(svc, regenerate)
    healed = await catalog.get_metric_transformer(conn, "github-repo-open-issues")
    assert healed is not None and healed.status == "active" and healed.version == failed.version + 1
    assert metric.id in {s.record.metric_id for s in sends if isinstance(s.record, PollDue)}


async def catalog_requests(conn: Any) -> list[CodegenRequest]:
    """The open job's request for github-repo-open-issues (what the command asked for)."""
    job = await _job(conn, "metric:github-repo-open-issues")
    assert job is not None
    return [CodegenRequest.model_validate(job["request"])]


async def test_a_history_that_cannot_be_sampled_yet_keeps_the_polling_code(
    svc: Services, conn: Any
) -> None:
    """Commit activity whose history endpoint answers 202: the polling transformer is
    saved and the metric polled (no backfill yet); the history's own job, once its sample
    comes, writes the historical transformer and sends the backfill."""
    [request] = _requests(await _create(svc, "github-commit-activity", "computing-history"))
    sends = await _codegen(svc, request)
    ticks = [s.record for s in sends if isinstance(s.record, PollDue)]
    assert [t.reason for t in ticks] == ["created"]
    saved = await catalog.get_metric_transformer(conn, "github-commit-activity")
    assert saved is not None and saved.historical_pending
    job = await _job(conn, "historical:github-commit-activity")
    assert job is not None and job["request"]["historical"] is True

    await conn.execute(
        "UPDATE metrics SET params = %s WHERE id = %s",
        ('{"OWNER": "octocat", "REPO": "history"}', request.metric_id),
    )
    history = CodegenRequest.model_validate(job["request"])
    sends = await _codegen(svc, history)
    backfill = [s.record for s in sends if isinstance(s.record, PollDue)]
    assert backfill and all(t.reason == "backfill" for t in backfill)
    done = await catalog.get_metric_transformer(conn, "github-commit-activity")
    assert done is not None and not done.historical_pending and done.historical_code


async def _generate(svc: Services, template_id: str) -> tuple[CommandResult, list[CodegenRequest]]:
    """A generate_transformer operator command through the operator stage."""
    command = GenerateTransformer(template_id=template_id)
    message = Incoming("operator-commands", 0, 1, None, command.to_bytes())
    sends = await OperatorStage().handle(svc, [(message, command)])
    [result] = [s.record for s in sends if isinstance(s.record, CommandResult)]
    return result, _requests(sends)


async def test_generate_writes_a_first_transformer_that_gave_up_from_a_real_sample(
    svc: Services, conn: Any
) -> None:
    """Design phase 6 (`metricloom transformer generate`): a template whose first
    generation was lost gets its transformer from a sample of its metric, which is then
    polled; asked while the first generation is in flight, or again once done, nothing
    more is sent; a template with no metric, or none of that name, is refused in one line."""
    [lost] = _requests(await _create(svc, "github-repo-stars", "generate-me"))
    in_flight, requests = await _generate(svc, "github-repo-stars")
    assert (in_flight.status, in_flight.metric_id, requests) == ("accepted", None, [])
    assert in_flight.note == "being generated already"
    await jobs.close(conn, jobs.metric_target("github-repo-stars"))  # given up: no owner left
    assert await catalog.get_metric_transformer(conn, "github-repo-stars") is None

    result, [request] = await _generate(svc, "github-repo-stars")
    assert (result.status, result.metric_id) == ("accepted", lost.metric_id)
    assert await _job(conn, "metric:github-repo-stars") is not None  # owned again
    sends = await _codegen(svc, request)
    saved = await catalog.get_metric_transformer(conn, "github-repo-stars")
    assert saved is not None and saved.status == "active"
    assert lost.metric_id in {s.record.metric_id for s in sends if isinstance(s.record, PollDue)}

    again, requests = await _generate(svc, "github-repo-stars")
    assert (again.status, again.metric_id, requests) == ("accepted", None, [])
    assert again.note == "has a transformer"

    refused, requests = await _generate(svc, "open-meteo-temperature")
    assert refused.status == "rejected" and requests == []
    assert "has no active metric to take a sample from" in (refused.error or "")
    unknown, _ = await _generate(svc, "no-such-template")
    assert unknown.status == "rejected" and "no-such-template" in (unknown.error or "")
