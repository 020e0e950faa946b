"""A provider and a template added as files only, for an API shaped unlike the shipped
ones: Open-Meteo's hourly forecast (parallel arrays, local times without a zone and the
offset beside them, two series), through the whole pipeline on real Kafka, TimescaleDB
and the sandbox, served by the demo API. No Python knows this provider: its requests,
scope and credentials come from providers/open_meteo.json, its points from the hints in
templates/open-meteo-temperature.json."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from streams.messages import CreateMetric
from tests.conftest import WorkerProcess
from tests.integration.conftest import Kafka

pytestmark = [pytest.mark.integration, pytest.mark.slow]


async def test_a_provider_and_template_added_as_files_yield_correct_points(
    worker: WorkerProcess, kafka: Kafka, db_conn: Any, demo_api_url: str
) -> None:
    """create_metric for open-meteo-temperature → 48 hourly points in the hypertable, at
    the right instants (local time minus the answer's offset), with the temperature as the
    value and both series as labelled dimensions."""
    org = "e2e-org"
    params = {"LATITUDE": "52.52", "LONGITUDE": "13.41"}
    create = CreateMetric(organization_id=org, template_id="open-meteo-temperature", params=params)
    await kafka.command(create)
    _, result = await kafka.wait_for(
        "command-results", lambda v: v["command_id"] == str(create.command_id), 60, org
    )
    assert result["status"] == "accepted", result
    rows: list[dict[str, Any]] = []
    for _ in range(180):
        cur = await db_conn.execute(
            "SELECT ts, value, dimensions FROM metric_data_points WHERE metric_id = %s ORDER BY ts",
            (result["metric_id"],),
        )
        rows = await cur.fetchall()
        if len(rows) >= 48:
            break
        await asyncio.sleep(0.5)
    assert len(rows) == 48, f"{len(rows)} points\n{worker.output()[-3000:]}"
    answer = httpx.get(
        f"{demo_api_url}/open-meteo/v1/forecast",
        params={
            **{k.lower(): v for k, v in params.items()},
            "hourly": "temperature_2m,precipitation",
        }
        | {"past_days": "1", "forecast_days": "1", "timezone": "auto"},
    ).json()
    offset = timedelta(seconds=answer["utc_offset_seconds"])
    hourly = answer["hourly"]
    expected_first = datetime.fromisoformat(hourly["time"][0]).replace(tzinfo=UTC) - offset
    assert rows[0]["ts"] == expected_first
    assert rows[-1]["ts"] - rows[0]["ts"] == timedelta(hours=47)
    # the demo's values are a function of place and time: the same hour gives the same value
    assert rows[0]["value"] == hourly["temperature_2m"][0]
    assert rows[0]["dimensions"] == {
        "temperature": hourly["temperature_2m"][0],
        "precipitation": hourly["precipitation"][0],
    }
    cur = await db_conn.execute(
        "SELECT last_error FROM metrics WHERE id = %s", (result["metric_id"],)
    )
    assert (await cur.fetchone())["last_error"] is None


async def test_a_connection_may_be_for_any_declared_provider(db_conn: Any) -> None:
    """Migration 0013: the database no longer lists four providers; it keeps the name's
    shape, so a row no settings variable could name is still refused."""
    import uuid

    import psycopg

    from schema import catalog
    from schema.models import Connection

    connection = Connection(
        id=uuid.uuid4(), organization_id="acme", provider="open_meteo", auth="none"
    )
    await catalog.insert_connection(db_conn, connection, None)
    stored = await catalog.get_connection(db_conn, connection.id, "acme")
    assert stored is not None
    assert stored.provider == "open_meteo"
    with pytest.raises(
        psycopg.errors.CheckViolation, match="integration_connections_provider_name"
    ):
        await db_conn.execute(
            "INSERT INTO integration_connections (id, organization_id, provider, auth)"
            " VALUES (%s, 'acme', 'Open-Meteo', 'none')",
            (uuid.uuid4(),),
        )
