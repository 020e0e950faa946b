"""Hostile transformer code on real containers: every attack ends as a clear per-input
error (or achieves nothing), the other inputs' results are intact, and no container is
left behind. Every test runs under both runtimes (runc, and gVisor's runsc), each with its
default ``process_per``.

The channel attacks (SysV shared memory, message queues and semaphores, POSIX message
queues, /dev/shm, the pid counter, the static check's blind spots) run the same hostile
transformer over an input of organisation A that carries a secret, one of organisation B,
and A again: B's result must not hold A's secret. Under ``process_per=input`` the same
batch also runs in one container (no tenants given), which proves the channel is closed
inside a container too, not only between containers."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from typing import Any

import docker
import pytest

from agents.validation import static_check
from sandbox import executor as executor_module
from sandbox.exceptions import SandboxHardeningError
from sandbox.executor import IPC_SYSCTLS, SandboxExecutor, SandboxResult, list_sandboxes
from tests.conftest import sandbox_limits

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RUNTIMES = ["runc", "runsc"]
# This module's containers carry this label: others (another checkout's tests, a worker)
# may run sandbox containers on the same engine at the same time.
OURS = {"test": f"hostile-{uuid.uuid4().hex[:8]}"}

GOOD = "good"
WRAP = """
import os, sys, time, socket, gc, signal, json
{body}
def transform(arg, cfg):
    if arg == "good":
        return ["ok", cfg]
    return attack(arg, cfg)
"""


@pytest.fixture(scope="module", params=RUNTIMES)
def executor(request: pytest.FixtureRequest) -> Iterator[SandboxExecutor]:
    executor = SandboxExecutor(
        labels=OURS,
        limits=sandbox_limits(
            runtime=request.param,
            process_per=None,  # the runtime's default
            input_timeout_s=2.0,
            batch_timeout_s=60.0,
            memory_mb=256,
            input_memory_mb=128,
        ),
    )
    yield executor
    executor.close()


def gvisor_crash(executor: SandboxExecutor) -> set[str]:
    """Under gVisor the code can SIGKILL the harness (PID 1): the container ends, that input
    is ``crashed`` and the rest of the batch runs in a fresh container."""
    return {"crashed"} if executor.limits.runtime == "runsc" else set()


def one_container_or_tenants(executor: SandboxExecutor, count: int) -> list[str] | None:
    """Inputs that must not see each other: one container under ``process_per=input``
    (each input its own process), one tenant each under ``process_per=batch``."""
    if executor.limits.fresh_process == "input":
        return None
    return [f"org-{n}" for n in range(count)]


@pytest.fixture(autouse=True)
def no_leftover_containers(request: pytest.FixtureRequest) -> Iterator[None]:
    """After each test, none of its sandbox containers may remain (a worker's finish within
    10 s), except those the shared executor's warm pool holds unused."""
    yield
    pooled = request.getfixturevalue("executor") if "executor" in request.fixturenames else None

    def leftovers() -> list[Any]:
        warm = pooled.warm_container_ids() if pooled is not None else set()
        return [c for c in list_sandboxes(client, OURS) if c.id not in warm]

    client = docker.from_env()
    try:
        deadline = time.monotonic() + 10
        left = leftovers()
        while left and time.monotonic() < deadline:
            time.sleep(0.2)
            left = leftovers()
        names = [c.attrs.get("Names") for c in left]
        assert left == [], f"sandbox containers left behind: {names}"
    finally:
        client.close()


def run_sandwiched(executor: SandboxExecutor, body: str, arg: object = "attack") -> SandboxResult:
    """Run the attack between two good inputs that must not feel it: in one container under
    ``process_per=input``, one tenant each under ``process_per=batch`` (where inputs of a
    container share a process, and under gVisor even the harness's descriptors); check the
    good ones, return the attack's."""
    results = executor.run_batch(
        WRAP.format(body=body),
        "transform",
        [(GOOD, 1), (arg, 2), (GOOD, 3)],
        one_container_or_tenants(executor, 3),
    )
    assert results[0].value == ["ok", 1], results[0]
    assert results[2].value == ["ok", 3], results[2]
    return results[1]


def test_fork_bomb_is_contained(executor: SandboxExecutor) -> None:
    """A fork bomb hits the pids limit; its processes are killed before the next input.
    (Under gVisor it may take the container down: the input is then ``crashed`` and the
    others run in a fresh container.)"""
    result = run_sandwiched(executor, "def attack(a, c):\n    while True:\n        os.fork()")
    assert result.error is not None
    assert result.error.kind in {"exception", "timeout", "killed", *gvisor_crash(executor)}


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
    # pipe: so it can spoil its own result, and nothing else. (Under gVisor it reaches the
    # harness's stdout through /proc/1/fd and spoils its container's stream: that input is
    # then ``crashed``; it is alone in its container there.)
    if result.error is None:
        value, reached = result.value
        assert value == "honest"
        assert not any(str(r).startswith("/proc/1/") for r in reached)
    elif result.error.kind not in gvisor_crash(executor):
        assert result.error.kind == "malformed_output"
    if result.error is None or result.error.kind == "malformed_output":
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
    try:
        with open("/proc/1/environ", "rb") as f:
            harness_env = sorted(v.split(b"=")[0].decode() for v in f.read().split(b"\\0") if v)
    except OSError:
        harness_env = None
    return {
        "env": sorted(os.environ),
        "work": os.path.exists("/work"),
        "docker_sock": os.path.exists("/var/run/docker.sock"),
        "harness_environ": harness_env,
        "harness_mem": readable("/proc/1/mem"),
        "uid": os.getuid(),
    }
"""
    result = run_sandwiched(executor, body)
    assert result.error is None, result.error
    seen = result.value
    allowed = {"PATH", "HOSTNAME", "HOME", "LC_CTYPE"}
    assert not any(name.startswith("METRICLOOM") for name in seen["env"])
    assert set(seen["env"]) <= allowed
    assert seen["work"] is False and seen["docker_sock"] is False
    assert seen["harness_mem"] is False
    if executor.limits.runtime == "runc":
        assert seen["harness_environ"] is None  # non-dumpable: /proc/1 is closed
    else:  # gVisor's /proc ignores PR_SET_DUMPABLE: the harness's env is the container's
        assert set(seen["harness_environ"]) <= allowed
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
    results = executor.run_batch(
        code,
        "transform",
        [("secret-a", {}), ("secret-b", {})],
        one_container_or_tenants(executor, 2),
    )
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
    results = executor.run_batch(
        code,
        "transform",
        [("secret: s3cr3t-value", {}), ("scan", {})],
        one_container_or_tenants(executor, 2),
    )
    assert results[0].value == "kept"
    assert results[1].value == 0


def test_killing_the_harness_fails_only_that_input(executor: SandboxExecutor) -> None:
    """Signals to PID 1 are ignored (runc; under gVisor SIGKILL ends the container, and
    only this input fails); kill(-1) kills only the input's own processes."""
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
    assert result.error is not None
    if result.error.kind not in gvisor_crash(executor):
        assert result.error.kind == "killed"
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


# --- channels between inputs -------------------------------------------------------------


def across_tenants(executor: SandboxExecutor, code: str) -> tuple[str, list[SandboxResult]]:
    """Run ``code`` over A (with a secret), B, A (with a second secret); B must not hold
    either secret. Under ``process_per=input`` the same three inputs also run in ONE
    container. Returns the first secret and B's results (one per placement)."""
    secret = f"s3cr3t-{uuid.uuid4().hex}"
    other = f"s3cr3t-{uuid.uuid4().hex}"
    number = 1000 + uuid.uuid4().int % 30000  # for the channels that carry a number
    inputs: list[tuple[Any, Any]] = [
        ({"org": "a", "secret": secret, "number": number}, {}),
        ({"org": "b"}, {}),
        ({"org": "a", "secret": other, "number": number + 1}, {}),
    ]
    placements: list[list[str] | None] = [["org-a", "org-b", "org-a"]]
    if executor.limits.fresh_process == "input":
        placements.append(None)
    seen = []
    for tenants in placements:
        results = executor.run_batch(code, "transform", inputs, tenants)
        assert results[0].error is None and results[2].error is None, results
        b = results[1]
        leaked = json.dumps(b.model_dump())
        for value in (secret, other, str(number), str(number + 1)):
            assert value not in leaked, f"B read A's {value!r} ({tenants=}): {leaked[:500]}"
        seen.append(b)
    return secret, seen


SHM = """
import ctypes
def transform(arg, cfg):
    libc = ctypes.CDLL(None, use_errno=True)
    libc.shmat.restype = ctypes.c_void_p
    shmid = libc.shmget(0x5EED, 4096, 0o1000 | 0o666)
    if shmid < 0:
        return {"org": arg["org"], "refused": ctypes.get_errno()}
    addr = libc.shmat(shmid, None, 0)
    if addr is None or addr == ctypes.c_void_p(-1).value:
        return {"org": arg["org"], "refused": ctypes.get_errno()}
    found = ctypes.string_at(addr, 100).split(b"\\0")[0].decode("ascii", "replace")
    if "secret" in arg:
        data = arg["secret"].encode() + b"\\0"
        ctypes.memmove(addr, data, len(data))
    return {"org": arg["org"], "found": found}
"""

MSG = """
import ctypes
class Message(ctypes.Structure):
    _fields_ = [("mtype", ctypes.c_long), ("mtext", ctypes.c_char * 200)]
def transform(arg, cfg):
    libc = ctypes.CDLL(None, use_errno=True)
    queue = libc.msgget(0x5EED, 0o1000 | 0o666)
    if queue < 0:
        return {"org": arg["org"], "refused": ctypes.get_errno()}
    got = Message()
    size = libc.msgrcv(queue, ctypes.byref(got), 200, 0, 0o4000)
    found = got.mtext.decode("ascii", "replace") if size > 0 else ""
    if "secret" in arg:
        sent = Message(1, arg["secret"].encode())
        libc.msgsnd(queue, ctypes.byref(sent), len(arg["secret"]) + 1, 0o4000)
    return {"org": arg["org"], "found": found}
"""

SEM = """
import ctypes
def transform(arg, cfg):
    libc = ctypes.CDLL(None, use_errno=True)
    sem = libc.semget(0x5EED, 1, 0o1000 | 0o666)
    if sem < 0:
        return {"org": arg["org"], "refused": ctypes.get_errno()}
    found = libc.semctl(sem, 0, 12)  # GETVAL
    if "number" in arg:
        libc.semctl(sem, 0, 16, ctypes.c_int(arg["number"]))  # SETVAL
    return {"org": arg["org"], "found": found}
"""

MQUEUE = """
import ctypes, os
def transform(arg, cfg):
    libc = ctypes.CDLL(None, use_errno=True)
    out = {"org": arg["org"]}
    queue = libc.mq_open(b"/leak", os.O_CREAT | os.O_RDWR | os.O_NONBLOCK, 0o666, None)
    if queue < 0:
        out["refused"] = ctypes.get_errno()
    else:
        buf = ctypes.create_string_buffer(8192)
        size = libc.mq_receive(queue, buf, 8192, None)
        out["found"] = buf.raw[:size].decode("ascii", "replace") if size > 0 else ""
        if "secret" in arg:
            libc.mq_send(queue, arg["secret"].encode(), len(arg["secret"]), 0)
    # names under /dev/mqueue are a channel of their own (a queue named after the secret)
    try:
        out["names"] = os.listdir("/dev/mqueue")
    except OSError as exc:
        out["names"] = str(exc)
    if "secret" in arg:
        try:
            open("/dev/mqueue/" + arg["secret"], "w").close()
        except OSError as exc:
            out["create"] = exc.errno
    return out
"""

DEV_SHM = """
import os
def transform(arg, cfg):
    out = {"org": arg["org"], "found": []}
    for d in ("/dev/shm", "/tmp", "/var/tmp", "/dev"):
        try:
            for name in os.listdir(d):
                if name.startswith("s3cr3t"):
                    out["found"].append(d + "/" + name)
        except OSError:
            pass
    if "secret" in arg:
        out["refused"] = []
        for d in ("/dev/shm", "/tmp", "/var/tmp", "/dev"):
            try:
                with open(d + "/" + arg["secret"], "w") as f:
                    f.write(arg["secret"])
            except OSError as exc:
                out["refused"].append(exc.errno)
    return out
"""

BYPASS = """
def transform(arg, cfg):
    b = __builtins__
    imp = b["__import__"] if isinstance(b, dict) else getattr(b, "__import__")
    ctypes = imp("ctypes")
    os = __import__("os")
    found = []
    for path in ("/tmp/leak", "/dev/shm/leak", "/var/tmp/leak", "/leak"):
        try:
            with open(path) as f:
                found.append(f.read())
        except OSError:
            pass
    libc = ctypes.CDLL(None)
    libc.shmat.restype = ctypes.c_void_p
    shmid = libc.shmget(0x5EEF, 4096, 0o1000 | 0o666)
    if shmid >= 0:
        addr = libc.shmat(shmid, None, 0)
        if addr not in (None, ctypes.c_void_p(-1).value):
            found.append(ctypes.string_at(addr, 100).split(b"\\0")[0].decode("ascii", "replace"))
            if "secret" in arg:
                data = arg["secret"].encode() + b"\\0"
                ctypes.memmove(addr, data, len(data))
    if "secret" in arg:
        for path in ("/tmp/leak", "/dev/shm/leak", "/var/tmp/leak", "/leak"):
            try:
                with open(path, "w") as f:
                    f.write(arg["secret"])
            except OSError:
                pass
    return {"org": arg["org"], "found": found, "pid": os.getpid()}
"""


def refused_in_one_container(executor: SandboxExecutor, seen: list[SandboxResult]) -> bool:
    """Under runc with ``process_per=input`` the IPC sysctls refuse the object outright."""
    if executor.limits.runtime != "runc" or executor.limits.fresh_process != "input":
        return True
    return all("refused" in (b.value or {}) for b in seen)


def test_sysv_shared_memory_carries_nothing(executor: SandboxExecutor) -> None:
    """A segment written by A's input is not there for B's (runc: shmget is refused)."""
    _, seen = across_tenants(executor, SHM)
    assert refused_in_one_container(executor, seen), seen


def test_sysv_message_queue_carries_nothing(executor: SandboxExecutor) -> None:
    """A message queued by A's input is not there for B's (runc: msgget is refused)."""
    _, seen = across_tenants(executor, MSG)
    assert refused_in_one_container(executor, seen), seen


def test_sysv_semaphore_carries_nothing(executor: SandboxExecutor) -> None:
    """A semaphore value set by A's input is not there for B's (runc: semget is refused)."""
    _, seen = across_tenants(executor, SEM)
    assert refused_in_one_container(executor, seen), seen


def test_posix_message_queue_carries_nothing(executor: SandboxExecutor) -> None:
    """Neither a POSIX message nor a queue named after the secret in /dev/mqueue reaches
    B's input (runc: mq_open is refused, and no name can be created there)."""
    _, seen = across_tenants(executor, MQUEUE)
    assert refused_in_one_container(executor, seen), seen


def test_dev_shm_and_tmp_carry_nothing(executor: SandboxExecutor) -> None:
    """No file can be created in /dev/shm, /tmp, /var/tmp or /dev, so B finds none."""
    _, seen = across_tenants(executor, DEV_SHM)
    for b in seen:
        assert b.value["found"] == [], b


def test_code_that_passes_the_static_check_is_still_contained(executor: SandboxExecutor) -> None:
    """``__import__``, ``open`` and ``getattr(__builtins__, ...)`` pass the static check
    (it is feedback for the generator, not a boundary) and reach nothing of A's."""
    static_check(BYPASS)  # passes: the check sees no import statement
    across_tenants(executor, BYPASS)


def test_the_pid_counter_tells_nothing_across_tenants(executor: SandboxExecutor) -> None:
    """How many processes A's input started does not show in B's pid: B runs in a
    container of its own. (Inside one tenant's container the counter still moves: see the
    README.)"""
    code = """
import os
def transform(arg, cfg):
    for _ in range(arg.get("forks", 0)):
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
    return os.getpid()
"""
    pids = []
    for forks in (1, 40):
        inputs: list[tuple[Any, Any]] = [({"forks": forks}, {}), ({}, {}), ({"forks": forks}, {})]
        results = executor.run_batch(code, "transform", inputs, ["org-a", "org-b", "org-a"])
        assert all(r.error is None for r in results), results
        pids.append(results[1].value)
    # B's pid is its fresh container's first few (the runtime's start-up takes a varying
    # handful): 40 forks by A would have pushed it past 40 in a shared pid namespace.
    assert max(pids) < 40, pids


def test_each_tenant_runs_in_its_own_container(executor: SandboxExecutor) -> None:
    """A batch of two organisations' inputs runs in two containers (each container's host
    name is its id), and each organisation's inputs share theirs."""
    code = "import socket\ndef transform(a, c):\n    return socket.gethostname()"
    tenants = ["org-a", "org-b", "org-a", "org-b"]
    results = executor.run_batch(code, "transform", [(i, {}) for i in range(4)], tenants)
    hosts = [r.value for r in results]
    assert hosts[0] == hosts[2] and hosts[1] == hosts[3] and hosts[0] != hosts[1], hosts


def test_a_batch_returns_at_most_its_output_cap(executor: SandboxExecutor) -> None:
    """Inputs whose results together pass the batch's cap fail with output_too_large,
    even though each is under the per-input cap."""
    capped = SandboxExecutor(
        executor.limits.model_copy(update={"batch_output_limit_bytes": 4096}), labels=OURS
    )
    code = "def transform(a, c):\n    return 'x' * 1500"
    try:
        results = capped.run_batch(code, "transform", [(i, {}) for i in range(4)])
    finally:
        capped.close()
    kinds = [r.error.kind if r.error else "ok" for r in results]
    assert kinds == ["ok", "ok", "output_too_large", "output_too_large"], results


# --- the harness's own check --------------------------------------------------------------


def harness_answer(runtime: str, image: str, flags: list[str]) -> dict[str, Any]:
    """Start the harness with these ``docker run`` flags and return its first frame."""
    header = json.dumps(
        {
            "code": "def transform(a, c):\n    return a",
            "entry": "transform",
            "count": 1,
            "limits": {
                "input_timeout_s": 5,
                "input_memory_mb": 128,
                "output_limit_bytes": 1 << 20,
                "print_limit_bytes": 1 << 20,
            },
            "ipc_closed": runtime == "runc",
        }
    ).encode()
    body = b'{"args": [1, {}]}'
    request = b"%d\n%s%d\n%s" % (len(header), header, len(body), body)
    done = subprocess.run(
        [
            "docker",
            "run",
            "--rm",
            "-i",
            "--network",
            "none",
            "--log-driver",
            "none",
            "--runtime",
            runtime,
            *flags,
            image,
        ],
        input=request,
        capture_output=True,
        timeout=60,
        check=False,
    )
    first = done.stdout.split(b"\n", 1)[0]
    return dict(json.loads(first))


def hardened(
    user: str = "10001:10001",
    no_new_privileges: bool = True,
    ipc: bool = True,
    mqueue: bool = True,
) -> list[str]:
    """The ``docker run`` flags of the executor's hardening (or all but one of them):
    ``ipc=False`` leaves out the SysV sysctls, ``mqueue=False`` the POSIX queue one."""
    flags = ["--read-only", "--cap-drop", "ALL", "--user", user, "--ipc", "none"]
    if no_new_privileges:
        flags += ["--security-opt", "no-new-privileges"]
    for key, value in IPC_SYSCTLS.items():
        if ipc if key.startswith("kernel.") else mqueue:
            flags += ["--sysctl", f"{key}={value}"]
    return flags


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_the_harness_runs_only_in_a_hardened_container(runtime: str) -> None:
    """With every option the executor sets, the harness runs the input; take one away (a
    writable /tmp, root, no no-new-privileges, IPC open under runc) and it refuses to run
    anything, saying what is missing. (gVisor sets no-new-privileges on every process of
    its own accord, so there that option cannot be missing.)"""
    image = sandbox_limits().image
    assert harness_answer(runtime, image, hardened()) == {"i": 0, "ev": "start"}
    broken = {
        "/tmp is writable": [*hardened(), "--tmpfs", "/tmp:uid=10001,gid=10001"],
        "runs as root": hardened(user="0:0"),
    }
    if runtime == "runc":
        broken["no-new-privileges"] = hardened(no_new_privileges=False)
        broken["IPC is open"] = hardened(ipc=False)  # SysV only: /dev/mqueue stays closed
        broken["/dev/mqueue is writable"] = hardened(mqueue=False)
    for reason, flags in broken.items():
        answer = harness_answer(runtime, image, flags)
        assert answer.get("ev") == "fatal" and reason in answer["detail"], (reason, answer)


def test_an_unhardened_container_raises_and_runs_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """A container whose IPC sysctls are missing makes the executor raise
    SandboxHardeningError (the stage pauses) instead of running the code. (Without the
    POSIX queue sysctl, /dev/mqueue is writable: the first thing the harness finds.)"""
    monkeypatch.setattr(executor_module, "IPC_SYSCTLS", {})
    executor = SandboxExecutor(sandbox_limits(runtime="runc", process_per="input"), labels=OURS)
    try:
        with pytest.raises(SandboxHardeningError, match="/dev/mqueue is writable"):
            executor.run_batch("def transform(a, c):\n    return a", "transform", [(1, {})])
    finally:
        executor.close()
