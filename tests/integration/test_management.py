"""Management commands through the real worker, Kafka and TimescaleDB: pause, resume,
delete, set-frequency, remove-chart; each scoped to the command's organisation."""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from psycopg import sql

from agents.pipeline import Incoming
from agents.services import Services, keyring_for
from agents.writing import WriteStage
from schema import catalog, lifecycle
from schema.models import Connection, DataPoint, PollFrequency
from streams.messages import (
    CommandBase,
    CreateDashboardMetric,
    CreateMetric,
    DeleteMetric,
    PauseMetric,
    PointsBatch,
    PollDue,
    RemoveChart,
    RemoveConnection,
    ResumeMetric,
    SetMetricFrequency,
)
from streams.security import aiokafka_auth
from streams.settings import Settings
from streams.status import read_to_end
from streams.topics import topic_name
from tests.conftest import WorkerProcess, run_cli
from tests.integration.conftest import Kafka, stored_metric

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TENANT_TABLES = (
    "metric_data_points",
    "metric_data_points_hourly",
    "metric_data_points_daily",
    "metric_data_points_weekly",
    "metric_dimensions_hourly",
    "metric_dimensions_daily",
    "metric_dimensions_weekly",
    "polls",
    "dashboard_metrics",
    "metrics",
)
"""Every table a metric's rows are in, keyed by ``metric_id`` (``metrics`` by ``id``)."""


def count_where(table: str, column: str) -> sql.Composed:
    return sql.SQL("SELECT count(*) AS n FROM {} WHERE {} = %s").format(
        sql.Identifier(table), sql.Identifier(column)
    )


async def answer(kafka: Kafka, command: CommandBase) -> dict[str, Any]:
    await kafka.command(command)
    _, result = await kafka.wait_for(
        "command-results",
        lambda v: v.get("command_id") == str(command.command_id),
        60,
        command.organization_id,
    )
    return result


async def metric_row(db_conn: Any, metric_id: uuid.UUID) -> dict[str, Any]:
    cur = await db_conn.execute(
        "SELECT status, poll_frequency, next_poll_at, last_fetched_at FROM metrics WHERE id = %s",
        (metric_id,),
    )
    row: dict[str, Any] = await cur.fetchone()
    return row


async def rows_of(db_conn: Any, metric_id: uuid.UUID) -> dict[str, int]:
    counts = {}
    for table in TENANT_TABLES:
        column = "id" if table == "metrics" else "metric_id"
        cur = await db_conn.execute(count_where(table, column), (metric_id,))
        counts[table] = (await cur.fetchone())["n"]
    cur = await db_conn.execute(
        "SELECT (SELECT count(*) FROM chart_transformers c JOIN removed_rows r"
        " ON r.id = c.dashboard_metric_id) + (SELECT count(*) FROM chart_transformer_versions v"
        " JOIN removed_rows r ON r.id = v.dashboard_metric_id) AS n"
    )
    counts["chart_transformers of removed charts"] = (await cur.fetchone())["n"]
    return counts


async def logged(
    worker: WorkerProcess, event: str, metric_id: uuid.UUID, timeout: float = 60
) -> str:
    """The worker's log line for ``event`` about this metric, once it is written."""
    async with asyncio.timeout(timeout):
        while True:
            for line in worker.output().splitlines():
                if f'"{event}"' in line and str(metric_id) in line:
                    return line
            await asyncio.sleep(0.2)  # polling the log file for the event, not a fixed wait


async def tombstone(settings: Settings, org: str, chart_id: uuid.UUID) -> None:
    """Return once the chart's tombstone (its key, a null value) is on the organisation's
    chart-configs topic."""
    consumer = AIOKafkaConsumer(
        topic_name(settings, "chart-configs", org),
        bootstrap_servers=settings.kafka_bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        **aiokafka_auth(settings),
    )
    await consumer.start()
    try:
        async with asyncio.timeout(60):
            async for message in consumer:
                if message.key == str(chart_id).encode() and message.value is None:
                    return
    finally:
        await consumer.stop()


async def dead_letters_for(settings: Settings, metric_id: uuid.UUID) -> list[Any]:
    letters = await read_to_end(settings, "dead-letter")
    return [v for v in letters if isinstance(v, dict) and v.get("metric_id") == str(metric_id)]


async def charted_metric(kafka: Kafka, org: str, repo: str) -> tuple[uuid.UUID, uuid.UUID]:
    """A metric with points and a drawn chart, made through commands like a user's."""
    created = await answer(
        kafka,
        CreateMetric(
            organization_id=org,
            template_id="github-repo-stars",
            params={"OWNER": "octocat", "REPO": repo},
        ),
    )
    assert created["status"] == "accepted", created
    chart_id = uuid.uuid4()
    placed = await answer(
        kafka,
        CreateDashboardMetric(
            organization_id=org,
            dashboard_id="manage",
            metric_id=created["metric_id"],
            dashboard_metric_id=chart_id,
        ),
    )
    assert placed["status"] == "accepted", placed
    await kafka.wait_for(
        "chart-configs",
        lambda v: v["dashboard_metric_id"] == str(chart_id) and v["config"]["chartData"],
        120,
        org,
    )
    return uuid.UUID(created["metric_id"]), chart_id


async def test_a_paused_metric_is_not_polled_and_resume_reschedules_it(
    worker: WorkerProcess, kafka: Kafka, db_conn: Any
) -> None:
    """A paused metric, due before a control metric, is not claimed by the scheduler pass
    that claims the control; a tick already on its way is skipped and logged, not fetched
    and not dead-lettered; resume puts it back on its tier's grid from now."""
    later = datetime.now(UTC) + timedelta(days=1)
    paused = await stored_metric(
        db_conn, "paused-repo", org="acme", frequency=PollFrequency.HOURLY, next_poll_at=later
    )
    control = await stored_metric(
        db_conn, "control-repo", org="acme", frequency=PollFrequency.HOURLY, next_poll_at=later
    )
    result = await answer(kafka, PauseMetric(organization_id="acme", metric_id=paused.id))
    assert result["status"] == "accepted", result
    due = datetime.now(UTC) - timedelta(minutes=5)
    await db_conn.execute(
        "UPDATE metrics SET next_poll_at = %s WHERE id = %s",
        (due - timedelta(minutes=1), paused.id),
    )
    await db_conn.execute("UPDATE metrics SET next_poll_at = %s WHERE id = %s", (due, control.id))
    async with asyncio.timeout(30):  # the scheduler's pass claims the control metric
        while (await metric_row(db_conn, control.id))["next_poll_at"] <= due:
            await asyncio.sleep(0.2)
    row = await metric_row(db_conn, paused.id)
    assert row["status"] == "paused"
    assert row["next_poll_at"] == due - timedelta(minutes=1)  # not claimed

    tick = PollDue(metric_id=paused.id, due_at=datetime.now(UTC), reason="refresh")
    await kafka.produce("poll-due", tick.to_bytes(), str(paused.id).encode())
    line = await logged(worker, "fetch.skipped", paused.id)
    assert '"paused"' in line
    assert (await metric_row(db_conn, paused.id))["last_fetched_at"] is None
    cur = await db_conn.execute(
        "SELECT count(*) AS n FROM polls WHERE metric_id = %s", (paused.id,)
    )
    assert (await cur.fetchone())["n"] == 0
    assert await dead_letters_for(kafka.settings, paused.id) == []

    before = datetime.now(UTC)
    result = await answer(kafka, ResumeMetric(organization_id="acme", metric_id=paused.id))
    assert result["status"] == "accepted", result
    row = await metric_row(db_conn, paused.id)
    assert row["status"] == "active"
    assert before <= row["next_poll_at"] <= before + timedelta(hours=1, seconds=5)


async def test_set_frequency_moves_the_next_poll(
    worker: WorkerProcess, kafka: Kafka, db_conn: Any
) -> None:
    """A daily metric due tomorrow, set to frequent, is due within 15 minutes; set to
    manual, it has no scheduled poll."""
    metric = await stored_metric(
        db_conn,
        "tiered-repo",
        org="acme",
        frequency=PollFrequency.DAILY,
        next_poll_at=datetime.now(UTC) + timedelta(hours=20),
    )
    before = datetime.now(UTC)
    command = SetMetricFrequency(
        organization_id="acme", metric_id=metric.id, frequency=PollFrequency.FREQUENT
    )
    assert (await answer(kafka, command))["status"] == "accepted"
    row = await metric_row(db_conn, metric.id)
    assert row["poll_frequency"] == "frequent"
    assert before <= row["next_poll_at"] <= before + timedelta(minutes=15, seconds=5)

    command = SetMetricFrequency(
        organization_id="acme", metric_id=metric.id, frequency=PollFrequency.MANUAL
    )
    assert (await answer(kafka, command))["status"] == "accepted"
    row = await metric_row(db_conn, metric.id)
    assert (row["poll_frequency"], row["next_poll_at"]) == ("manual", None)


async def test_another_organisations_metric_is_refused_and_unchanged(
    worker: WorkerProcess, kafka: Kafka, db_conn: Any
) -> None:
    """Pause, resume, set-frequency and delete naming another organisation's metric are
    rejected as "no metric", and the metric is as it was."""
    metric = await stored_metric(
        db_conn,
        "guarded-repo",
        org="acme",
        frequency=PollFrequency.DAILY,
        next_poll_at=datetime.now(UTC) + timedelta(hours=3),
    )
    before = await metric_row(db_conn, metric.id)
    commands: list[CommandBase] = [
        PauseMetric(organization_id="beta", metric_id=metric.id),
        ResumeMetric(organization_id="beta", metric_id=metric.id),
        SetMetricFrequency(
            organization_id="beta", metric_id=metric.id, frequency=PollFrequency.FREQUENT
        ),
        DeleteMetric(organization_id="beta", metric_id=metric.id),
    ]
    for command in commands:
        result = await answer(kafka, command)
        assert result["status"] == "rejected", result
        assert result["error"] == f"organisation 'beta' has no metric {metric.id}"
    assert await metric_row(db_conn, metric.id) == before


async def test_delete_leaves_nothing_behind_and_in_flight_records_are_skipped(
    worker: WorkerProcess, kafka: Kafka, db_conn: Any
) -> None:
    """After delete_metric no point, rollup row, poll, chart, chart transformer or schedule
    of the metric is left; a tick and points still on their way for it are skipped with a
    log line (no dead letter); the delete sent again is accepted and changes nothing."""
    metric_id, chart_id = await charted_metric(kafka, "acme", "doomed-repo")
    before = await rows_of(db_conn, metric_id)
    for table in ("metric_data_points", "metric_data_points_hourly", "dashboard_metrics"):
        assert before[table] > 0, before

    result = await answer(kafka, DeleteMetric(organization_id="acme", metric_id=metric_id))
    assert result["status"] == "accepted", result
    assert set((await rows_of(db_conn, metric_id)).values()) == {0}
    cur = await db_conn.execute(
        "SELECT count(*) AS n FROM chart_transformers WHERE dashboard_metric_id = %s", (chart_id,)
    )
    assert (await cur.fetchone())["n"] == 0
    await tombstone(kafka.settings, "acme", chart_id)

    tick = PollDue(metric_id=metric_id, due_at=datetime.now(UTC), reason="refresh")
    await kafka.produce("poll-due", tick.to_bytes(), str(metric_id).encode())
    points = PointsBatch(
        metric_id=metric_id,
        organization_id="acme",
        template_id="github-repo-stars",
        transformer_version=1,
        fetched_at=datetime.now(UTC),
        points=[DataPoint(timestamp=datetime.now(UTC), value=1.0)],
    )
    await kafka.produce("points", points.to_bytes(), str(metric_id).encode())
    assert '"deleted"' in await logged(worker, "fetch.skipped", metric_id)
    assert '"deleted"' in await logged(worker, "write.skipped", metric_id)
    assert set((await rows_of(db_conn, metric_id)).values()) == {0}
    assert await dead_letters_for(kafka.settings, metric_id) == []

    again = await answer(kafka, DeleteMetric(organization_id="acme", metric_id=metric_id))
    assert again["status"] == "accepted", again
    other = await answer(kafka, DeleteMetric(organization_id="beta", metric_id=metric_id))
    assert other["status"] == "rejected"


async def test_remove_chart_takes_only_that_chart(
    worker: WorkerProcess, kafka: Kafka, db_conn: Any
) -> None:
    """remove_chart deletes the dashboard metric and its chart transformer and keeps the
    metric; another organisation, or the wrong dashboard, is refused."""
    metric_id, chart_id = await charted_metric(kafka, "acme", "charted-repo")
    refused = [
        RemoveChart(organization_id="beta", dashboard_id="manage", dashboard_metric_id=chart_id),
        RemoveChart(organization_id="acme", dashboard_id="other", dashboard_metric_id=chart_id),
    ]
    for command in refused:
        result = await answer(kafka, command)
        assert result["status"] == "rejected", result
        assert str(chart_id) in result["error"]
    cur = await db_conn.execute(
        "SELECT count(*) AS n FROM dashboard_metrics WHERE id = %s", (chart_id,)
    )
    assert (await cur.fetchone())["n"] == 1

    remove = RemoveChart(
        organization_id="acme", dashboard_id="manage", dashboard_metric_id=chart_id
    )
    result = await answer(kafka, remove)
    assert result["status"] == "accepted", result
    assert result["metric_id"] == str(metric_id)
    for table, column in (
        ("dashboard_metrics", "id"),
        ("chart_transformers", "dashboard_metric_id"),
    ):
        cur = await db_conn.execute(count_where(table, column), (chart_id,))
        assert (await cur.fetchone())["n"] == 0, table
    assert (await metric_row(db_conn, metric_id))["status"] == "active"
    await tombstone(kafka.settings, "acme", chart_id)


async def test_a_connection_in_use_is_kept_and_an_unused_one_removed(
    worker: WorkerProcess, kafka: Kafka, db_conn: Any, settings: Settings
) -> None:
    """remove_connection is refused while a metric uses the connection (naming it) and for
    another organisation; once the metric is deleted the connection goes, token and all."""
    connection = Connection(id=uuid.uuid4(), organization_id="acme", provider="github", auth="none")
    await catalog.insert_connection(db_conn, connection, keyring_for(settings))
    metric = await stored_metric(db_conn, "connected-repo", org="acme", connection_id=connection.id)

    used = await answer(
        kafka, RemoveConnection(organization_id="acme", connection_id=connection.id)
    )
    assert used["status"] == "rejected" and str(metric.id) in used["error"]
    foreign = await answer(
        kafka, RemoveConnection(organization_id="beta", connection_id=connection.id)
    )
    assert foreign["status"] == "rejected"
    assert foreign["error"] == f"organisation 'beta' has no connection {connection.id}"

    assert (await answer(kafka, DeleteMetric(organization_id="acme", metric_id=metric.id)))[
        "status"
    ] == "accepted"
    gone = await answer(
        kafka, RemoveConnection(organization_id="acme", connection_id=connection.id)
    )
    assert gone["status"] == "accepted", gone
    assert await catalog.get_connection(db_conn, connection.id) is None


def test_the_cli_verbs_answer_in_one_line(
    worker: WorkerProcess, settings: Settings, two_metrics: tuple[uuid.UUID, uuid.UUID]
) -> None:
    """`metric pause` prints one readable line when accepted; naming another
    organisation's metric prints one error line and exits 1."""
    mine, theirs = two_metrics

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return run_cli(settings, *args)

    done = cli("metric", "pause", str(mine), "--org", "acme")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"accepted: pause_metric (metric_id {mine})"
    refused = cli("metric", "pause", str(theirs), "--org", "acme")
    assert refused.returncode == 1
    assert refused.stderr.strip() == (
        f"error: pause_metric rejected: organisation 'acme' has no metric {theirs}"
    )


@pytest.fixture
async def two_metrics(db_conn: Any) -> tuple[uuid.UUID, uuid.UUID]:
    """A metric of acme's and one of beta's, due tomorrow."""
    later = datetime.now(UTC) + timedelta(days=1)
    mine = await stored_metric(db_conn, "cli-acme", org="acme", next_poll_at=later)
    theirs = await stored_metric(db_conn, "cli-beta", org="beta", next_poll_at=later)
    return mine.id, theirs.id


async def test_points_racing_a_delete_are_not_written(
    services: Services, db_conn: Any, settings: Settings
) -> None:
    """Points whose metric is deleted while the writer holds them (its owner check passed,
    the delete commits before their transaction) are skipped, not left behind: the writer
    takes the delete's lock and looks again."""
    metric = await stored_metric(db_conn, "raced-repo", org="acme")
    points = PointsBatch(
        metric_id=metric.id,
        organization_id="acme",
        template_id="github-repo-stars",
        transformer_version=1,
        fetched_at=datetime.now(UTC),
        points=[DataPoint(timestamp=datetime.now(UTC), value=7.0)],
    )
    message = Incoming("points", 0, 1, str(metric.id).encode(), points.to_bytes())
    async with services.db.transaction() as deleting:
        assert await lifecycle.delete_metric(deleting, metric.id, "acme", "maintained")
        write = asyncio.create_task(WriteStage().handle(services, [(message, points)]))
        async with asyncio.timeout(30):  # until the writer waits for the delete's lock
            while True:
                cur = await db_conn.execute(
                    "SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                )
                if (await cur.fetchone())["n"] or write.done():
                    break
                await asyncio.sleep(0.05)
        assert not write.done()  # it passed the owner check and waits for the lock
    assert await write == []
    cur = await db_conn.execute(
        "SELECT count(*) AS n FROM metric_data_points WHERE metric_id = %s", (metric.id,)
    )
    assert (await cur.fetchone())["n"] == 0


async def test_a_metric_paused_before_its_first_poll_is_polled_on_resume(
    worker: WorkerProcess, kafka: Kafka, db_conn: Any
) -> None:
    """Resume sends the first poll a metric paused before it was ever fetched missed
    (not only a place on the grid, which may be an hour away)."""
    later = datetime.now(UTC) + timedelta(days=1)
    metric = await stored_metric(
        db_conn, "late-start-repo", org="acme", frequency=PollFrequency.WEEKLY, next_poll_at=later
    )
    assert (await answer(kafka, PauseMetric(organization_id="acme", metric_id=metric.id)))[
        "status"
    ] == "accepted"
    # weekly: its place on the grid is most likely days away, so only the resume's own
    # tick polls it within the minute
    resumed = await answer(kafka, ResumeMetric(organization_id="acme", metric_id=metric.id))
    assert resumed["status"] == "accepted", resumed
    async with asyncio.timeout(60):  # the worker fetches it from the demo API
        while (await metric_row(db_conn, metric.id))["last_fetched_at"] is None:
            await asyncio.sleep(0.2)
