"""The users' Kafka client follows a topic from a point in time (what ``make up`` uses to
show only the chart configs its own seed produced), on the real broker."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime

import pytest

from streams.admin import delete_topics, ensure_tenant_topics
from streams.client import follow, send_command
from streams.messages import RefreshMetric
from streams.settings import Settings
from streams.topics import MissingTopicError
from tests.conftest import WorkerProcess
from tests.integration.conftest import Kafka

pytestmark = pytest.mark.integration


async def test_following_since_a_time_skips_what_was_published_before(settings: Settings) -> None:
    # topics of its own: the session's chart-configs are read from the beginning elsewhere
    settings = settings.model_copy(update={"topic_prefix": f"follow-{uuid.uuid4().hex[:8]}-"})
    await ensure_tenant_topics(settings, "o")
    try:
        await _follow_since(settings)
    finally:
        await delete_topics(settings)


async def _follow_since(settings: Settings) -> None:
    kafka = Kafka(settings)
    before, after = uuid.uuid4().hex, uuid.uuid4().hex
    await kafka.produce("chart-configs", json.dumps({"marker": before}).encode(), b"k", "o")
    await asyncio.sleep(0.05)  # Kafka stamps records in milliseconds
    since = datetime.now(UTC)
    await asyncio.sleep(0.05)
    await kafka.produce("chart-configs", json.dumps({"marker": after}).encode(), b"k", "o")
    seen: list[object] = []
    async with asyncio.timeout(30):
        async for _, value in follow(settings, "chart-configs", "o", since=since):
            seen.append(value.get("marker") if isinstance(value, dict) else None)
            if seen[-1] == after:
                break
    assert before not in seen  # other records (a worker's charts) may come in between


async def test_following_a_topic_that_does_not_exist_is_a_clear_error(settings: Settings) -> None:
    nowhere = settings.model_copy(update={"topic_prefix": f"absent-{uuid.uuid4().hex[:8]}-"})
    with pytest.raises(MissingTopicError, match="does not exist"):
        async for _ in follow(nowhere, "chart-configs", "o"):
            pass


async def test_a_command_sent_by_the_client_gets_its_own_result(
    settings: Settings, worker: WorkerProcess
) -> None:
    """What every state-changing CLI command does: produce, then wait for the result with
    the same command id (here a rejection: the organisation has no such metric)."""
    command = RefreshMetric(organization_id="client-org", metric_id=uuid.uuid4())
    result = await send_command(settings, command, 60)
    assert result.command_id == command.command_id
    assert result.status == "rejected"
    assert result.error is not None and "has no metric" in result.error
