"""The pinned faust-streaming + aiokafka pair starts a worker on the real broker."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from streams.settings import Settings
from tests.conftest import WorkerProcess
from tests.integration.conftest import prepared_cluster

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_worker_joins_the_group_and_stops_cleanly_on_sigterm(
    settings: Settings, tmp_path: Path
) -> None:
    """A worker with its own topics starts, gets every stage's partitions, and exits 0
    on SIGTERM (Faust stops the agents and commits)."""
    own = settings.model_copy(update={"topic_prefix": f"smoke-{uuid.uuid4().hex[:8]}-"})
    with prepared_cluster(own, ()):
        _start_and_stop(own, tmp_path)


def _start_and_stop(own: Settings, tmp_path: Path) -> None:
    worker = WorkerProcess(own, tmp_path / "worker.log")
    try:
        worker.wait_ready()
        output = worker.output()
        for topic in ("command-inbox", "poll-due", "raw-payloads", "points", "metric-updated"):
            assert f"{own.topic_prefix}{topic}" in output, (
                f"{topic} not assigned:\n{output[-3000:]}"
            )
    finally:
        code = worker.stop()
    assert code == 0, worker.output()[-3000:]
