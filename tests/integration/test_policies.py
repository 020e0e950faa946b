"""Retention and compression settings on the Apache build."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from schema.models import DataPoint
from schema.points import MetricPoints, write_points
from schema.policies import PolicyUnsupportedError, apply_policies, enforce_retention

pytestmark = pytest.mark.integration


async def test_compression_on_the_apache_build_is_a_clear_error(db_conn: Any) -> None:
    """Asking for compression where the license lacks it fails and says why."""
    with pytest.raises(PolicyUnsupportedError, match="community-license"):
        await apply_policies(db_conn, None, 7)
    assert await apply_policies(db_conn, None, None) == []


async def test_retention_drops_only_chunks_past_the_limit(db_conn: Any) -> None:
    """Old chunks go; recent points stay."""
    metric_id = uuid.uuid4()
    now = datetime.now(UTC)
    old = DataPoint(timestamp=now - timedelta(days=400), value=1)
    recent = DataPoint(timestamp=now - timedelta(days=1), value=2)
    async with db_conn.transaction():
        await write_points(db_conn, [MetricPoints(metric_id, [old, recent])])
    assert "enforced hourly" in (await apply_policies(db_conn, 365, None))[0]
    assert await enforce_retention(db_conn, 365) >= 1
    cur = await db_conn.execute(
        "SELECT value FROM metric_data_points WHERE metric_id = %s ORDER BY ts", (metric_id,)
    )
    assert [r["value"] for r in await cur.fetchall()] == [2.0]
