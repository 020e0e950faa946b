"""The transform stage on the real database and the real Docker engine: a batch of two
organisations' payloads of one template runs in two sandbox containers."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any

import docker
import pytest

from agents.pipeline import Incoming
from agents.services import Services
from agents.transforming import TransformStage
from demo_api.github import repository
from sandbox.executor import LABEL, SandboxExecutor
from streams.messages import PointsBatch, RawPayload
from streams.settings import Settings
from tests.integration.conftest import stored_metric

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _created_containers(marker: str, since: float, until: float) -> int:
    """Sandbox containers the engine created with this test label in the time window
    (they remove themselves, so the engine's event log is where they are counted)."""
    client = docker.from_env()
    try:
        events = client.events(
            since=int(since),
            until=int(until) + 1,
            filters={"type": "container", "event": "create", "label": [LABEL, f"test={marker}"]},
            decode=True,
        )
        return sum(1 for _ in events)
    finally:
        client.close()


async def test_a_batch_of_two_organisations_runs_in_two_containers(
    services: Services, settings: Settings, db_conn: Any
) -> None:
    """Four payloads of one template, two from each of two organisations, in one stage
    batch: two containers are created (one per organisation) and every payload becomes
    points."""
    marker = f"tenants-{uuid.uuid4().hex[:8]}"
    sandbox = SandboxExecutor(settings.sandbox, labels={"test": marker})
    labelled = Services(settings=settings, db=services.db, sandbox=sandbox, http=services.http)
    now = datetime.now(UTC)
    batch = []
    for n, org in enumerate(["org-a", "org-b", "org-a", "org-b"]):
        repo = f"tenants-{n}-{uuid.uuid4().hex[:6]}"
        metric = await stored_metric(db_conn, repo, org=org)
        raw = RawPayload(
            poll_id=uuid.uuid4(),
            metric_id=metric.id,
            organization_id=org,
            template_id=metric.template_id,
            fetched_at=now,
            endpoint=f"/repos/octocat/{repo}",
            payload=repository("octocat", repo, now),
        )
        batch.append((Incoming("raw-payloads", 0, n, None, raw.to_bytes()), raw))
    since = time.time()
    try:
        sends = await TransformStage().handle(labelled, batch)
    finally:
        sandbox.close()
    until = time.time()
    points = [s.record for s in sends if isinstance(s.record, PointsBatch)]
    assert sorted(p.metric_id for p in points) == sorted(raw.metric_id for _, raw in batch)
    assert _created_containers(marker, since, until) == 2
