"""Container lifecycle: batch deadline, strays swept, nothing left when the worker dies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import docker
import pytest

from sandbox.executor import DEADLINE_LABEL, LABEL, SandboxExecutor, list_sandboxes, sweep_stale
from tests.conftest import ROOT, sandbox_limits

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _ours(client: docker.DockerClient, marker: str) -> list[object]:
    return list_sandboxes(client, {"test": marker})


def _running(client: docker.DockerClient, marker: str) -> list[object]:
    return list(
        client.containers.list(
            sparse=True, filters={"label": f"test={marker}", "status": "running"}
        )
    )


def test_batch_deadline_fails_the_rest_clearly() -> None:
    """Inputs not finished when the batch's wall-clock limit passes get batch_timeout."""
    executor = SandboxExecutor(sandbox_limits(input_timeout_s=5, batch_timeout_s=3))
    try:
        code = "import time\ndef transform(x, c):\n    time.sleep(1.2)\n    return x"
        results = executor.run_batch(code, "transform", [(i, {}) for i in range(6)])
    finally:
        executor.close()
    done = [r.value for r in results if r.ok]
    assert done == list(range(len(done))) and 1 <= len(done) <= 3
    assert {r.error.kind for r in results if r.error} == {"batch_timeout"}


def test_stale_sandbox_containers_are_swept() -> None:
    """A sandbox container past its deadline (left by a dead worker) is removed at start-up;
    one still within its deadline is left alone."""
    client = docker.from_env()
    marker = f"sweep-{os.getpid()}-{time.time_ns()}"
    try:
        stale = client.containers.create(
            sandbox_limits().image,
            network_mode="none",
            labels={LABEL: "1", DEADLINE_LABEL: "1", "test": marker},
        )
        fresh = client.containers.create(
            sandbox_limits().image,
            network_mode="none",
            labels={LABEL: "1", DEADLINE_LABEL: str(int(time.time()) + 600), "test": marker},
        )
        sweep_stale(client)
        left = {c.id for c in _ours(client, marker)}  # type: ignore[attr-defined]
        assert stale.id not in left and fresh.id in left
    finally:
        for container in _ours(client, marker):
            container.remove(force=True)  # type: ignore[attr-defined]
        client.close()


def test_container_is_removed_when_the_worker_dies_mid_batch() -> None:
    """SIGKILL the process running a batch: the container still goes away (auto_remove
    once stdin closes), so no sweep is needed for the common case."""
    marker = f"dies-{os.getpid()}-{time.time_ns()}"
    script = (
        "from sandbox.executor import SandboxExecutor\n"
        "from tests.conftest import sandbox_limits\n"
        "e = SandboxExecutor(sandbox_limits(input_timeout_s=30, batch_timeout_s=60),"
        f" labels={{'test': '{marker}'}})\n"
        "e.run_batch('import time\\ndef transform(x, c):\\n    time.sleep(20)', 'transform', [(1, {})])\n"
    )
    client = docker.from_env()
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT)
    try:
        # Running, not just listed: the executor attaches before it starts the container,
        # so a running one has the dead process's stdin to lose. (A process killed between
        # create and start leaves a never-started container: the start-up sweep's case,
        # test_stale_sandbox_containers_are_swept.)
        deadline = time.monotonic() + 20
        while not _running(client, marker) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _running(client, marker), "the batch's container never started"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 30
        while _ours(client, marker) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _ours(client, marker), "the dead worker's container is still there"
    finally:
        if proc.poll() is None:
            proc.kill()
        client.close()
