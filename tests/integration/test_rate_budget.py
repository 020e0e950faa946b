"""Rate budgets shared through the database: an exhausted budget defers the poll without
a request, and concurrent takers never overspend."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest
from psycopg.rows import dict_row

from agents.fetching import FetchStage
from agents.pipeline import Incoming
from agents.services import Services
from schema import catalog
from schema.models import Connection
from streams.messages import PollDue
from tests.integration.conftest import stored_metric

pytestmark = pytest.mark.integration


async def test_spent_budget_defers_without_a_request(
    services: Services, db_conn: Any, demo_api_url: str
) -> None:
    """With the connection's budget at zero until a reset, the fetch stage sends nothing,
    and the poll is deferred to the reset time."""
    connection = Connection(id=uuid.uuid4(), organization_id="o", provider="github", auth="none")
    await catalog.insert_connection(db_conn, connection, services.keyring)
    reset = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=20)
    await catalog.record_budget(db_conn, f"connection:{connection.id}", 0, reset)
    metric = await stored_metric(db_conn, "budget", connection_id=connection.id)
    served = httpx.get(f"{demo_api_url}/demo/stats").json()["served"]
    tick = PollDue(metric_id=metric.id, due_at=datetime.now(UTC))
    sends = await FetchStage().handle(
        services, [(Incoming("poll-due", 0, 1, None, tick.to_bytes()), tick)]
    )
    assert sends == []
    assert httpx.get(f"{demo_api_url}/demo/stats").json()["served"] == served
    cur = await db_conn.execute("SELECT state, retry_at FROM polls WHERE id = %s", (tick.poll_id,))
    poll = await cur.fetchone()
    assert poll["state"] == "deferred" and poll["retry_at"] == reset
    cur = await db_conn.execute("SELECT last_error FROM metrics WHERE id = %s", (metric.id,))
    assert "rate budget spent" in (await cur.fetchone())["last_error"]


async def test_answers_keep_the_budget_current(services: Services, db_conn: Any) -> None:
    """After a request, the budget holds what the provider's headers said."""
    connection = Connection(id=uuid.uuid4(), organization_id="o", provider="github", auth="none")
    await catalog.insert_connection(db_conn, connection, services.keyring)
    key = f"connection:{connection.id}"
    await catalog.record_budget(db_conn, key, 10, datetime.now(UTC) + timedelta(hours=1))
    metric = await stored_metric(db_conn, "budget-ok", connection_id=connection.id)
    tick = PollDue(metric_id=metric.id, due_at=datetime.now(UTC))
    [sent] = await FetchStage().handle(
        services, [(Incoming("poll-due", 0, 1, None, tick.to_bytes()), tick)]
    )
    assert sent.topic == "raw-payloads"
    cur = await db_conn.execute(
        "SELECT remaining, reset_at FROM rate_budgets WHERE key = %s", (key,)
    )
    row = await cur.fetchone()
    assert row["remaining"] > 10  # the provider's count for this credential, not ours
    assert row["reset_at"].minute == 0 and row["reset_at"] > datetime.now(UTC)


async def test_concurrent_workers_never_overspend(database_url: str) -> None:
    """Twenty takers racing on a budget of five: exactly five get through."""
    key = f"race:{uuid.uuid4()}"
    async with await psycopg.AsyncConnection.connect(
        database_url, autocommit=True, row_factory=dict_row
    ) as conn:
        await catalog.record_budget(conn, key, 5, datetime.now(UTC) + timedelta(hours=1))

    async def take() -> bool:
        async with await psycopg.AsyncConnection.connect(
            database_url, autocommit=True, row_factory=dict_row
        ) as conn:
            return await catalog.take_budget(conn, key, datetime.now(UTC)) is None

    results = await asyncio.gather(*(take() for _ in range(20)))
    assert sum(results) == 5


async def test_a_budget_recorded_between_take_and_check_is_not_spent(database_url: str) -> None:
    """The interleaving that once deferred a poll by up to an hour: a take misses (no budget
    row yet), another worker then records a full budget, and the check that follows must
    not read that row as spent."""
    key = f"late:{uuid.uuid4()}"
    now = datetime.now(UTC)
    async with await psycopg.AsyncConnection.connect(
        database_url, autocommit=True, row_factory=dict_row
    ) as conn:
        missed = await conn.execute(catalog.TAKE_BUDGET, {"key": key, "now": now})
        assert await missed.fetchone() is None
        await catalog.record_budget(conn, key, 4999, now + timedelta(minutes=30))
        check = await conn.execute(catalog.SPENT_UNTIL, {"key": key, "now": now})
        assert await check.fetchone() is None
        await catalog.record_budget(conn, key, 0, now + timedelta(minutes=30))
        check = await conn.execute(catalog.SPENT_UNTIL, {"key": key, "now": now})
        assert (await check.fetchone())["reset_at"] == now + timedelta(minutes=30)  # type: ignore[index]
