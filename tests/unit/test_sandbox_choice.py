"""Which sandbox a worker uses, from its settings alone (nothing is connected)."""

from __future__ import annotations

from agents.services import sandbox_for
from sandbox.client import SandboxRunnerClient
from sandbox.executor import SandboxExecutor
from sandbox.limits import SandboxLimits


def test_a_runner_socket_makes_the_worker_a_client_of_the_runner() -> None:
    """With METRICLOOM_SANDBOX__RUNNER_SOCKET set the worker sends batches to the runner;
    without it, it runs the containers itself."""
    assert isinstance(sandbox_for(SandboxLimits(runner_socket="/run/x.sock")), SandboxRunnerClient)
    assert isinstance(sandbox_for(SandboxLimits()), SandboxExecutor)


def test_each_runtime_has_its_isolation_default() -> None:
    """runc runs a fresh process per input, gVisor one per batch (one organisation); an
    explicit ``process_per`` wins."""
    assert SandboxLimits(runtime="runc").fresh_process == "input"
    assert SandboxLimits(runtime="runsc").fresh_process == "batch"
    assert SandboxLimits(runtime="runsc", process_per="input").fresh_process == "input"
    assert SandboxLimits().runtime == "runsc"
