"""Container lifecycle: batch deadline, strays swept, nothing left when the worker dies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from typing import TypeVar

import docker
import pytest

from sandbox.executor import DEADLINE_LABEL, LABEL, SandboxExecutor, list_sandboxes, sweep_stale
from tests.conftest import ROOT, sandbox_limits

pytestmark = [pytest.mark.integration, pytest.mark.slow]

T = TypeVar("T")


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
    executor = SandboxExecutor(sandbox_limits(input_timeout_s=5, batch_timeout_s=3, warm_pool=0))
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
        "e = SandboxExecutor(sandbox_limits(input_timeout_s=30, batch_timeout_s=60, warm_pool=0),"
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


def _ids(containers: list[object]) -> set[str]:
    return {c.id for c in containers}  # type: ignore[attr-defined]


def _wait_for(check: Callable[[], T], timeout: float = 30.0) -> T:
    """Poll ``check()`` (the engine's state) until it answers something truthy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.1)
    raise AssertionError("the engine never reached the expected state")


def test_a_batch_takes_a_warm_container_and_it_is_never_reused() -> None:
    """The pool starts a container ahead of need; the next batch runs in it (the waiting
    container is the one that goes away), and the pool replaces it with a new one. (The
    pool's own list names the waiting one: a used container may still be running for a
    moment while the reaper removes it.)"""
    marker = f"warm-{os.getpid()}-{time.time_ns()}"
    client = docker.from_env()
    executor = SandboxExecutor(sandbox_limits(warm_pool=1), labels={"test": marker})
    code = "def transform(x, c):\n    return x + 1"
    try:
        assert executor.run_batch(code, "transform", [(1, {})])[0].value == 2
        warm = _wait_for(executor.warm_container_ids)
        assert len(warm) == 1 and warm <= _ids(_running(client, marker))
        assert executor.run_batch(code, "transform", [(41, {})])[0].value == 42
        _wait_for(lambda: not (warm & _ids(_ours(client, marker))))
        refilled = _wait_for(lambda: executor.warm_container_ids() - warm)
        assert refilled <= _ids(_running(client, marker))
    finally:
        executor.close()
    _wait_for(lambda: not _ours(client, marker))  # close removes what still waits
    client.close()


def test_a_warm_container_past_its_age_is_replaced() -> None:
    marker = f"aged-{os.getpid()}-{time.time_ns()}"
    client = docker.from_env()
    executor = SandboxExecutor(
        sandbox_limits(warm_pool=1, warm_max_age_s=1.0), labels={"test": marker}
    )
    try:
        executor.run_batch("def transform(x, c):\n    return x", "transform", [(1, {})])
        first = _wait_for(executor.warm_container_ids)
        later = _wait_for(lambda: executor.warm_container_ids() - first)
        assert later <= _ids(_running(client, marker))
        _wait_for(lambda: not (first & _ids(_ours(client, marker))))
    finally:
        executor.close()
        client.close()


def test_used_containers_are_removed_off_the_batch_path_and_close_waits_for_them() -> None:
    """A batch returns once its results are read; its container's removal runs on the
    executor's reaper threads. close() returns only when every used container is gone, so
    nothing outlives the executor (checked at once, no polling)."""
    marker = f"reaped-{os.getpid()}-{time.time_ns()}"
    client = docker.from_env()
    executor = SandboxExecutor(
        sandbox_limits(warm_pool=0, max_concurrent=1), labels={"test": marker}
    )
    code = "def transform(x, c):\n    return x * 2"
    try:
        got = [executor.run_batch(code, "transform", [(n, {})])[0].value for n in range(4)]
        assert got == [0, 2, 4, 6]
    finally:
        executor.close()
    try:
        assert _ours(client, marker) == []
    finally:
        client.close()
