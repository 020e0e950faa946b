"""The design's snapshot, through the real worker, Kafka, the demo API and TimescaleDB: a
sheet polled as ``sheets-snapshot`` is ONE point whose value is its row count and whose
``rows`` dimension is the whole sheet, replaced (not added to) on every poll."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from streams.messages import CreateMetric, RefreshMetric
from tests.conftest import DEMO_PARAMS, WorkerProcess
from tests.integration.conftest import Kafka
from tests.integration.test_management import answer

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ORG = "acme"


async def points_of(db_conn: Any, metric_id: uuid.UUID) -> list[dict[str, Any]]:
    cur = await db_conn.execute(
        "SELECT ts, value, dimensions FROM metric_data_points WHERE metric_id = %s ORDER BY ts",
        (metric_id,),
    )
    rows: list[dict[str, Any]] = await cur.fetchall()
    return rows


async def stored_after(db_conn: Any, metric_id: uuid.UUID, after: Any) -> list[dict[str, Any]]:
    """The metric's points once a poll later than ``after`` is stored (checked against the
    database until then: the poll's time is the point's)."""
    async with asyncio.timeout(120):
        while True:
            points = await points_of(db_conn, metric_id)
            if points and (after is None or points[-1]["ts"] > after):
                return points
            await asyncio.sleep(0.2)


async def test_a_sheet_is_one_point_replaced_on_every_poll(
    worker: WorkerProcess, kafka: Kafka, db_conn: Any
) -> None:
    params = {
        "SPREADSHEET_ID": f"{DEMO_PARAMS['SPREADSHEET_ID'][:20]}{uuid.uuid4().hex[:8]}",
        "RANGE": DEMO_PARAMS["RANGE"],
    }
    created = await answer(
        kafka, CreateMetric(organization_id=ORG, template_id="sheets-snapshot", params=params)
    )
    assert created["status"] == "accepted", created
    metric_id = uuid.UUID(created["metric_id"])

    [first] = await stored_after(db_conn, metric_id, None)
    rows = first["dimensions"]["rows"]
    assert first["value"] == len(rows) == 30  # the demo sheet: 30 rows after its header
    assert [len(row) for row in rows] == [3] * 30 and rows[0][2] in ("EMEA", "AMER")

    refreshed = await answer(kafka, RefreshMetric(organization_id=ORG, metric_id=metric_id))
    assert refreshed["status"] == "accepted", refreshed
    [second] = await stored_after(db_conn, metric_id, first["ts"])  # replaced: still one
    assert second["value"] == len(second["dimensions"]["rows"]) == 30
