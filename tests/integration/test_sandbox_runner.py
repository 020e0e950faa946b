"""The sandbox runner, a real process on a real Unix socket with the real Docker engine:
it takes its one operation and refuses anything else without touching Docker; the
worker's client gets the executor's results through it, and a runner that is away is a
service outage (SandboxUnavailableError), not a failed batch."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest

from sandbox.client import SandboxRunnerClient
from sandbox.exceptions import SandboxUnavailableError
from sandbox.executor import DEADLINE_LABEL, LABEL, SandboxExecutor, list_sandboxes
from sandbox.protocol import RUN_PATH
from sandbox.runner import RUNNER_LABEL
from tests.conftest import ROOT, sandbox_limits

pytestmark = [pytest.mark.integration, pytest.mark.slow]

VALID: dict[str, Any] = {
    "code": "def transform(a, c):\n    return a",
    "entry": "transform",
    "inputs": [[1, {}]],
}


@dataclass
class RunnerProcess:
    """``metricloom sandbox-runner`` in a subprocess, with only the sandbox's settings."""

    socket_path: Path
    log_path: Path
    proc: subprocess.Popen[bytes]

    @classmethod
    def start(cls, directory: Path) -> RunnerProcess:
        limits = sandbox_limits()
        env = {k: v for k, v in os.environ.items() if not k.startswith("METRICLOOM_")}
        env |= {
            "METRICLOOM_SANDBOX__RUNNER_SOCKET": str(directory / "sandbox.sock"),
            "METRICLOOM_SANDBOX__IMAGE": limits.image,
            "METRICLOOM_SANDBOX__RUNTIME": limits.runtime,
        }
        log_path = directory / "runner.log"
        with log_path.open("wb") as log_file:  # the child keeps its own descriptor
            proc = subprocess.Popen(
                [sys.executable, "-m", "metricloom.cli", "sandbox-runner"],
                cwd=ROOT,
                env=env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        runner = cls(directory / "sandbox.sock", log_path, proc)
        runner.wait_for('"runner.ready"')
        return runner

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for(self, text: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output():
            if self.proc.poll() is not None:
                raise RuntimeError(f"runner exited {self.proc.returncode}:\n{self.output()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {text} from the runner:\n{self.output()}")
            time.sleep(0.05)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=30)
        return self.proc.returncode


@pytest.fixture(scope="module")
def runner(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunnerProcess]:
    runner = RunnerProcess.start(tmp_path_factory.mktemp("runner"))
    try:
        yield runner
    finally:
        assert runner.stop() == 0, runner.output()
        assert not runner.socket_path.exists(), "the runner left its socket behind"


def _created_by(pid: int, since: float) -> int:
    """Containers the runner with this pid has created since then (the engine's log)."""
    client = docker.from_env()
    try:
        events = client.events(
            since=int(since),
            until=int(time.time()) + 1,
            filters={"type": "container", "event": "create", "label": f"{RUNNER_LABEL}={pid}"},
            decode=True,
        )
        return sum(1 for _ in events)
    finally:
        client.close()


REFUSED: list[tuple[str, str, Any, int, str]] = [
    ("POST", RUN_PATH, {**VALID, "image": "alpine"}, 400, "image"),
    ("POST", RUN_PATH, {**VALID, "mounts": [{"source": "/", "target": "/host"}]}, 400, "mounts"),
    ("POST", RUN_PATH, {**VALID, "binds": ["/var/run/docker.sock:/s"]}, 400, "binds"),
    ("POST", RUN_PATH, {**VALID, "privileged": True}, 400, "privileged"),
    ("POST", RUN_PATH, {**VALID, "runtime": "runc"}, 400, "runtime"),
    ("POST", RUN_PATH, {**VALID, "limits": {"memory_mb": 65536}}, 400, "limits"),
    ("POST", RUN_PATH, {**VALID, "anything": 1}, 400, "anything"),
    ("POST", RUN_PATH, {**VALID, "entry": "os.system"}, 400, "entry"),
    ("POST", RUN_PATH, {**VALID, "tenants": ["a", "b"]}, 400, "tenants"),
    ("POST", f"{RUN_PATH}?image=alpine", VALID, 400, "query"),
    ("POST", RUN_PATH, "not json", 400, "json"),
    ("GET", RUN_PATH, None, 405, "Method Not Allowed"),
    ("PUT", RUN_PATH, VALID, 405, "Method Not Allowed"),
    (
        "POST",
        "/containers/create",
        {"Image": "alpine", "HostConfig": {"Privileged": True}},
        404,
        "",
    ),
    ("GET", "/v1.41/containers/json", None, 404, ""),
    ("POST", "/v1/run/extra", VALID, 404, ""),
]


def test_the_runner_refuses_everything_but_its_one_operation(runner: RunnerProcess) -> None:
    """Another image, a mount, privileged, another runtime or limit, unknown fields, a
    query string, another path or method: each is refused with its status and a one-line
    reason, and no container is created for any of them. Its one operation then creates
    exactly one (so the count would have seen one)."""
    since = time.time()
    transport = httpx.HTTPTransport(uds=str(runner.socket_path))
    with httpx.Client(transport=transport, base_url="http://runner") as http:
        for method, path, body, status, reason in REFUSED:
            content = body if isinstance(body, str) else json.dumps(body) if body else None
            response = http.request(
                method, path, content=content, headers={"Content-Type": "application/json"}
            )
            assert response.status_code == status, (method, path, body, response.text)
            assert response.text.startswith("refused: ") and response.text.count("\n") == 1
            assert reason.lower() in response.text.lower(), (path, body, response.text)
        assert _created_by(runner.proc.pid, since) == 0
        ok = http.post(RUN_PATH, json=VALID, timeout=60)
    assert ok.status_code == 200, ok.text
    assert ok.json()["results"][0]["value"] == 1
    assert _created_by(runner.proc.pid, since) == 1


CODE = """
import datetime
def transform(arg, cfg):
    print("seen", arg)
    if arg == "boom":
        raise KeyError("missing")
    if arg == "object":
        return object()
    return {"arg": arg, "cfg": cfg}
"""


async def test_the_client_gets_the_executors_results(runner: RunnerProcess) -> None:
    """A batch through the runner (two tenants; values, prints, an exception, a result
    JSON cannot carry, a date input, an input that cannot be sent) comes back exactly as
    the local executor returns it."""
    when = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    inputs: list[tuple[Any, Any]] = [
        ("a", {"n": 1}),
        ("boom", {}),
        ("object", {}),
        (when, {"at": when}),
        (object(), {}),
        ("b", [1.5, None, True]),
    ]
    tenants = ["org-a", "org-b", "org-a", "org-b", "org-a", "org-a"]
    limits = sandbox_limits(runner_socket=str(runner.socket_path))
    client = SandboxRunnerClient(limits)
    try:
        through_runner = await client.run(CODE, "transform", inputs, tenants)
    finally:
        await client.aclose()
    executor = SandboxExecutor(sandbox_limits())
    try:
        local = executor.run_batch(CODE, "transform", inputs, tenants)
    finally:
        executor.close()
    assert through_runner == local
    kinds = [r.error.kind if r.error else "ok" for r in local]
    assert kinds == ["ok", "exception", "not_serialisable", "ok", "input_not_serialisable", "ok"]


async def test_a_runner_that_is_away_is_unavailable(tmp_path: Path) -> None:
    """No socket file, or a socket file nobody listens on (a runner that died): the client
    raises SandboxUnavailableError, so the stage pauses and tries again."""
    dead = tmp_path / "dead.sock"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(dead))  # bound, never listening: what a killed runner leaves
    for path in (tmp_path / "missing.sock", dead):
        client = SandboxRunnerClient(sandbox_limits(runner_socket=str(path)))
        try:
            with pytest.raises(SandboxUnavailableError, match="unreachable"):
                await client.run(VALID["code"], "transform", [(1, {})])
        finally:
            await client.aclose()


def test_the_runner_sweeps_stale_containers_at_start(tmp_path: Path) -> None:
    """A sandbox container left past its deadline is removed when a runner starts."""
    client = docker.from_env()
    marker = f"runner-sweep-{uuid.uuid4().hex[:8]}"
    stale = client.containers.create(
        sandbox_limits().image,
        network_mode="none",
        labels={LABEL: "1", DEADLINE_LABEL: "1", "test": marker},
    )
    runner = RunnerProcess.start(tmp_path)
    try:
        runner.wait_for('"sandbox.swept"')
        assert stale.id not in {c.id for c in list_sandboxes(client, {"test": marker})}
    finally:
        assert runner.stop() == 0
        for container in list_sandboxes(client, {"test": marker}):
            container.remove(force=True)
        client.close()


def test_only_the_runner_holds_the_docker_socket() -> None:
    """In the compose file, the sandbox runner is the only service with the Docker socket;
    the worker reaches it through the runner's socket on a shared volume."""
    env = os.environ | {"METRICLOOM_DOCKER_GID": "999"}
    done = subprocess.run(
        ["docker", "compose", "config", "--format", "json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        check=True,
    )
    services = json.loads(done.stdout)["services"]
    holders = {
        name
        for name, service in services.items()
        for volume in service.get("volumes", [])
        if "docker.sock" in json.dumps(volume)
    }
    assert holders == {"sandbox-runner"}
    assert "999" in [str(g) for g in services["sandbox-runner"].get("group_add", [])]
    worker = services["worker"]
    assert worker["environment"]["METRICLOOM_SANDBOX__RUNNER_SOCKET"].startswith("/run/metricloom/")
    assert any(v.get("target") == "/run/metricloom" for v in worker["volumes"])
    for name, service in services.items():
        if service.get("image", "").startswith("metricloom/app"):
            assert service.get("user") in (None, ""), f"{name} overrides the image's user"
