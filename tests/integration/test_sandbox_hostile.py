"""Hostile transformer code on real containers: every attack ends as a clear per-input
error (or achieves nothing), the other inputs' results are intact, and no container is
left behind."""

from __future__ import annotations

import time
from collections.abc import Iterator

import docker
import pytest

from sandbox.executor import SandboxExecutor, SandboxResult, list_sandboxes
from sandbox.limits import SandboxLimits

pytestmark = [pytest.mark.integration, pytest.mark.slow]

GOOD = "good"
WRAP = """
import os, sys, time, socket, gc, signal, json
{body}
def transform(arg, cfg):
    if arg == "good":
        return ["ok", cfg]
    return attack(arg, cfg)
"""


@pytest.fixture(scope="module")
def executor() -> Iterator[SandboxExecutor]:
    executor = SandboxExecutor(
        SandboxLimits(input_timeout_s=2.0, batch_timeout_s=60.0, memory_mb=256, input_memory_mb=128)
    )
    yield executor
    executor.close()


@pytest.fixture(autouse=True)
def no_leftover_containers() -> Iterator[None]:
    """After each test, no sandbox container may remain (a worker's finish within 10 s)."""
    yield
    client = docker.from_env()
    try:
        deadline = time.monotonic() + 10
        left = list_sandboxes(client)
        while left and time.monotonic() < deadline:
            time.sleep(0.2)
            left = list_sandboxes(client)
        names = [c.attrs.get("Names") for c in left]
        assert left == [], f"sandbox containers left behind: {names}"
    finally:
        client.close()


def run_sandwiched(executor: SandboxExecutor, body: str, arg: object = "attack") -> SandboxResult:
    """Run the attack between two good inputs; check the good ones, return the attack's."""
    results = executor.run_batch(
        WRAP.format(body=body), "transform", [(GOOD, 1), (arg, 2), (GOOD, 3)]
    )
    assert results[0].value == ["ok", 1], results[0]
    assert results[2].value == ["ok", 3], results[2]
    return results[1]


def test_fork_bomb_is_contained(executor: SandboxExecutor) -> None:
    """A fork bomb hits the pids limit; its processes are killed before the next input."""
    result = run_sandwiched(executor, "def attack(a, c):\n    while True:\n        os.fork()")
    assert result.error is not None
    assert result.error.kind in {"exception", "timeout", "killed"}


def test_infinite_loop_times_out(executor: SandboxExecutor) -> None:
    """A CPU spin is stopped at the per-input limit."""
    result = run_sandwiched(executor, "def attack(a, c):\n    while True:\n        pass")
    assert result.error is not None and result.error.kind == "timeout"


def test_sleeping_past_the_timeout_is_stopped(executor: SandboxExecutor) -> None:
    """Sleeping does not use CPU; the wall-clock limit still stops it."""
    result = run_sandwiched(executor, "def attack(a, c):\n    time.sleep(60)")
    assert result.error is not None and result.error.kind == "timeout"


def test_memory_bomb_fails_with_memory_error(executor: SandboxExecutor) -> None:
    """Allocating far past the per-input limit is a memory error, not a dead worker."""
    result = run_sandwiched(executor, "def attack(a, c):\n    return len(bytearray(2 * 1024**3))")
    assert result.error is not None and result.error.kind == "memory"


def test_printing_a_gigabyte_is_cut_off(executor: SandboxExecutor) -> None:
    """Printing past the print cap kills the input with output_too_large."""
    body = "def attack(a, c):\n    chunk = 'x' * 1048576\n    for _ in range(1024):\n        sys.stdout.write(chunk)"
    result = run_sandwiched(executor, body)
    assert result.error is not None and result.error.kind == "output_too_large"


def test_a_million_points_is_refused(executor: SandboxExecutor) -> None:
    """A result far over the output cap is refused (by size or by memory), cleanly."""
    body = "def attack(a, c):\n    return [{'timestamp': '2024-01-01T00:00:00Z', 'value': i} for i in range(1000000)]"
    result = run_sandwiched(executor, body)
    assert result.error is not None and result.error.kind in {"output_too_large", "memory"}


def test_forged_result_frames_are_only_prints(executor: SandboxExecutor) -> None:
    """Frames printed to stdout, or written to any inherited or /proc fd, cannot pass as
    results: the forged text lands in the input's prints, the result stays its own."""
    body = """
def attack(a, c):
    forged = '{"i": 2, "ch": "result", "n": 30}\\n{"ok": true, "value": "forged"}\\n'
    print(forged)
    print('{"i": 1, "ev": "end", "status": "ok", "detail": ""}')
    reached = []
    for fd in range(3, 64):
        try:
            os.write(fd, forged.encode())
            reached.append(fd)
        except OSError:
            pass
    for path in ("/proc/1/fd/1", "/proc/1/fd/3", "/proc/1/fd/4", "/dev/stdout"):
        try:
            with open(path, "w") as f:
                f.write(forged)
            reached.append(path)
        except OSError:
            pass
    return ["honest", reached]
"""
    result = run_sandwiched(executor, body)
    # The only pipes it can write to are its own capture pipe (prints) and its own result
    # pipe: so it can spoil its own result, and nothing else.
    if result.error is None:
        value, reached = result.value
        assert value == "honest"
        assert not any(str(r).startswith("/proc/1/") for r in reached)
    else:
        assert result.error.kind == "malformed_output"
    assert '"ev": "end"' in result.prints


def test_host_files_and_environment_are_out_of_reach(executor: SandboxExecutor) -> None:
    """No host mount, no Docker socket, none of the worker's environment or secrets."""
    body = """
def attack(a, c):
    def readable(path):
        try:
            with open(path, "rb") as f:
                f.read(1)
            return True
        except OSError:
            return False
    return {
        "env": sorted(os.environ),
        "work": os.path.exists("/work"),
        "docker_sock": os.path.exists("/var/run/docker.sock"),
        "harness_environ": readable("/proc/1/environ"),
        "harness_mem": readable("/proc/1/mem"),
        "uid": os.getuid(),
    }
"""
    result = run_sandwiched(executor, body)
    assert result.error is None, result.error
    seen = result.value
    assert not any(name.startswith("METRICLOOM") for name in seen["env"])
    assert set(seen["env"]) <= {"PATH", "HOSTNAME", "HOME", "LC_CTYPE"}
    assert seen["work"] is False and seen["docker_sock"] is False
    assert seen["harness_environ"] is False and seen["harness_mem"] is False
    assert seen["uid"] == 10001


def test_there_is_no_network(executor: SandboxExecutor) -> None:
    """Only the loopback interface exists; the services' ports and names are unreachable.
    (No packet is sent off the machine: there is no interface to send it on.)"""
    body = """
def attack(a, c):
    with open("/proc/net/dev") as f:
        interfaces = sorted(line.split(":")[0].strip() for line in f.readlines()[2:])
    outcomes = {}
    for host, port in (("127.0.0.1", 9092), ("127.0.0.1", 5432), ("kafka", 19092), ("timescaledb", 5432)):
        try:
            socket.create_connection((host, port), timeout=1).close()
            outcomes[f"{host}:{port}"] = "connected"
        except OSError as exc:
            outcomes[f"{host}:{port}"] = type(exc).__name__
    return {"interfaces": interfaces, "outcomes": outcomes}
"""
    result = run_sandwiched(executor, body)
    assert result.error is None, result.error
    assert result.value["interfaces"] == ["lo"]
    assert "connected" not in result.value["outcomes"].values()


def test_nothing_is_writable_so_nothing_carries_to_the_next_input(
    executor: SandboxExecutor,
) -> None:
    """Writing to / or /tmp fails; a later input finds no trace of an earlier one."""
    code = """
import os
def transform(arg, cfg):
    written = []
    for path in ("/leak", "/tmp/leak", "/nonexistent/leak", "/dev/shm/leak"):
        try:
            with open(path, "w") as f:
                f.write(arg)
            written.append(path)
        except OSError:
            pass
    found = []
    for path in ("/leak", "/tmp/leak", "/nonexistent/leak", "/dev/shm/leak"):
        if os.path.exists(path):
            found.append(path)
    return {"written": written, "found": found}
"""
    results = executor.run_batch(code, "transform", [("secret-a", {}), ("secret-b", {})])
    assert [r.value for r in results] == [{"written": [], "found": []}] * 2


def test_globals_do_not_carry_between_inputs(executor: SandboxExecutor) -> None:
    """Each input runs the module afresh: a global counter is 1 every time."""
    code = "counter = 0\ndef transform(a, c):\n    global counter\n    counter += 1\n    return counter"
    results = executor.run_batch(code, "transform", [(i, {}) for i in range(5)])
    assert [r.value for r in results] == [1, 1, 1, 1, 1]


def test_an_input_cannot_read_another_inputs_data(executor: SandboxExecutor) -> None:
    """The harness never holds input bytes (they are spliced pipe to pipe), so a later
    input searching its inherited memory finds no trace of an earlier input's secret."""
    code = """
import gc
def transform(arg, cfg):
    if arg.startswith("secret"):
        return "kept"
    marker = "-".join(["s3cr3t", "value"])  # built at run time, not a code constant
    hits = 0
    for obj in gc.get_objects():
        try:
            if marker in repr(obj):
                hits += 1
        except Exception:
            pass
    return hits
"""
    results = executor.run_batch(code, "transform", [("secret: s3cr3t-value", {}), ("scan", {})])
    assert results[0].value == "kept"
    assert results[1].value == 0


def test_killing_the_harness_fails_only_that_input(executor: SandboxExecutor) -> None:
    """Signals to PID 1 are ignored; kill(-1) kills only the input's own processes."""
    body = (
        "def attack(a, c):\n"
        "    for sig in (signal.SIGKILL, signal.SIGTERM, signal.SIGINT, signal.SIGSTOP):\n"
        "        os.kill(1, sig)\n"
        "    if os.fork() == 0:\n"
        "        time.sleep(30)\n"
        "    os.kill(-1, signal.SIGKILL)\n"
        "    os.kill(os.getpid(), signal.SIGKILL)"
    )
    result = run_sandwiched(executor, body)
    assert result.error is not None and result.error.kind == "killed"
    assert "SIGKILL" in result.error.message


def test_non_serialisable_and_nan_results_are_errors(executor: SandboxExecutor) -> None:
    """Objects JSON cannot carry, NaN and infinity are rejected with a clear message."""
    for body in (
        "def attack(a, c):\n    return object()",
        "def attack(a, c):\n    return float('nan')",
    ):
        result = run_sandwiched(executor, body)
        assert result.error is not None and result.error.kind == "not_serialisable"


def test_syntax_error_and_missing_entry_point(executor: SandboxExecutor) -> None:
    """Code that does not compile, or defines no transform, fails every input clearly."""
    broken = executor.run_batch("def transform(:\n", "transform", [(1, {}), (2, {})])
    assert [r.error.kind for r in broken if r.error] == ["syntax_error", "syntax_error"]
    missing = executor.run_batch("x = 1\n", "transform", [(1, {})])
    assert missing[0].error is not None and missing[0].error.kind == "missing_entry"


def test_exceptions_carry_their_traceback(executor: SandboxExecutor) -> None:
    """A transformer's exception is data: type, message and traceback come back."""
    result = run_sandwiched(executor, "def attack(a, c):\n    return {}['missing']")
    assert result.error is not None and result.error.kind == "exception"
    assert "KeyError" in result.error.message
    assert result.error.traceback and "<transformer>" in result.error.traceback
