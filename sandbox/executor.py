"""Runs one transformer's code over a batch of inputs in throwaway Docker containers.

The contract, as the transform and chart stages see it:

* ``run_batch(code, entry, inputs, tenants)`` returns one :class:`SandboxResult` per input,
  in order. Inputs of different tenants (organisations) never share a container: each
  tenant's inputs run in their own, so nothing one can do inside a container (IPC, process
  ids, memory, a shared process under ``process_per=batch``) ever reaches another.
  A failure of the *code* (syntax error, exception, timeout, memory, output too large,
  output not serialisable, a crash of the harness) is data in that input's result; the
  other inputs' results are kept. A failure of the *infrastructure* (no engine, no image)
  raises :class:`~sandbox.exceptions.SandboxUnavailableError`.
* A container serves one batch (of one tenant) and is then removed. It is started ahead
  of need by the warm pool (``sandbox/warm_pool.py``: nothing has run in it, its harness
  waits for the batch on stdin) or, when none waits, on the spot. Each has no network, a
  read-only root and no writable mount, no capabilities, no-new-privileges, Docker's
  default seccomp profile, pids, memory and CPU limits, no mounts, an empty environment,
  no IPC namespace to share (``ipc_mode=none``, and the IPC sysctls at zero: no SysV
  shared memory, message queue or semaphore, no POSIX message queue), under the
  configured runtime (runc or gVisor's runsc).
* Removal: its stdin is closed as soon as the batch's frames are read (the harness exits
  and ``auto_remove`` starts), and the forced removal runs off the batch's path on the
  executor's reaper threads: it cost 0.14-0.34 s of a 0.3-0.5 s batch under gVisor, twice
  on a refreshed chart's path. At most ``max_concurrent`` removals are outstanding (past
  that a batch waits for one, so containers never pile up) and
  :meth:`SandboxExecutor.close` waits for them all. ``auto_remove`` covers a worker that
  dies mid-batch; :func:`sweep_stale` removes any stray left past its deadline.
* Code and inputs go in over the attach stream's stdin; results come back as the harness's
  frames on stdout (see ``sandbox/harness.py``), which the code cannot forge.

The harness checks that hardening itself before any code runs; a container that fails the
check raises :class:`~sandbox.exceptions.SandboxHardeningError` (the stage pauses: nothing
runs in a container that is not what it should be).

If the harness dies in the middle of a batch (a hostile input may manage that), the input
it was running gets a ``crashed`` error and the inputs after it run in a fresh container.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import socket
import struct
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import docker
import docker.errors
import requests.exceptions
import structlog

from sandbox.exceptions import SandboxHardeningError, SandboxUnavailableError
from sandbox.limits import SandboxLimits
from sandbox.protocol import (
    ErrorKind,
    Language,
    SandboxError,
    SandboxResult,
    check_tenants,
    encode_input,
)
from sandbox.warm_pool import Launched, WarmPool

log = structlog.get_logger(__name__)

LABEL = "metricloom.sandbox"
DEADLINE_LABEL = "metricloom.sandbox.deadline"
STDOUT, STDERR = 1, 2
PRINT_KEEP = 4096
FRAME_SLACK = 1 << 20  # frame lines on top of the payload bytes a batch may return
# Zero IPC resources in the container's own IPC namespace: no SysV shared memory segment,
# message queue or semaphore set, and no POSIX message queue can be created, so no input
# can leave anything there for a later one. gVisor keeps its own IPC namespace per
# container and does not apply these (under runsc a container holds one tenant).
IPC_SYSCTLS = {
    "kernel.shmmni": "0",
    "kernel.shmall": "0",
    "kernel.shmmax": "0",
    "kernel.shm_rmid_forced": "1",
    "kernel.msgmni": "0",
    "kernel.sem": "0 0 0 0",
    "fs.mqueue.queues_max": "0",
}

__all__ = [
    "DEADLINE_LABEL",
    "IPC_SYSCTLS",
    "LABEL",
    "SandboxError",
    "SandboxExecutor",
    "SandboxResult",
    "list_sandboxes",
    "sweep_stale",
]


@dataclass
class _FrameParser:
    """Splits the harness's stdout into frames and collects them per input index."""

    buffer: bytearray = field(default_factory=bytearray)
    pending_payload: tuple[int, str, int] | None = None
    started: list[int] = field(default_factory=list)
    ended: dict[int, tuple[str, str]] = field(default_factory=dict)
    result: dict[int, bytearray] = field(default_factory=dict)
    prints: dict[int, bytearray] = field(default_factory=dict)
    done: bool = False
    fatal: str | None = None
    limit: int = 1 << 62
    """Bytes the harness may send in all; past it the parser stops (``overflow``)."""
    received: int = 0
    overflow: bool = False
    corrupt: bool = False
    """A line that is not a frame: only the code can have written it (under gVisor the
    harness's descriptors are reachable through /proc/1/fd). Parsing stops there."""

    def feed(self, data: bytes) -> None:
        self.received += len(data)
        if self.received > self.limit:
            self.overflow = True
            return
        self.buffer += data
        while True:
            if self.pending_payload is not None:
                index, channel, size = self.pending_payload
                if len(self.buffer) < size:
                    return
                chunk = bytes(self.buffer[:size])
                del self.buffer[:size]
                self.pending_payload = None
                if channel == "result":
                    self.result.setdefault(index, bytearray()).extend(chunk)
                else:
                    kept = self.prints.setdefault(index, bytearray())
                    kept.extend(chunk[: max(0, PRINT_KEEP - len(kept))])
                continue
            newline = self.buffer.find(b"\n")
            if newline < 0:
                return
            try:
                frame = json.loads(self.buffer[:newline])
                self._take(frame)
            except (ValueError, TypeError, KeyError, AttributeError):
                self.corrupt = True
                self.done = True
                return
            del self.buffer[: newline + 1]

    def _take(self, frame: dict[str, Any]) -> None:
        if "ch" in frame:
            self.pending_payload = (int(frame["i"]), str(frame["ch"]), int(frame["n"]))
        elif frame.get("ev") == "start":
            self.started.append(int(frame["i"]))
        elif frame.get("ev") == "end":
            self.ended[int(frame["i"])] = (str(frame["status"]), str(frame.get("detail", "")))
        elif frame.get("ev") == "done":
            self.done = True
        elif frame.get("ev") == "fatal":
            if self.started:  # the check runs before any code: a later one is forged
                raise ValueError("a fatal frame after code ran")
            self.fatal = str(frame.get("detail", ""))
            self.done = True


class SandboxExecutor:
    """Runs transformer code in throwaway containers; thread-safe, one instance per worker."""

    def __init__(
        self,
        limits: SandboxLimits,
        client: docker.DockerClient | None = None,
        labels: dict[str, str] | None = None,
    ) -> None:
        """``labels`` are added to every container (to find a worker's containers)."""
        self.limits = limits
        self._client = client
        self._labels = dict(labels or {})
        self._semaphore = asyncio.Semaphore(limits.max_concurrent)
        self._pool = (
            WarmPool(self._launch_warm, _discard, limits.warm_pool, limits.warm_max_age_s)
            if limits.warm_pool
            else None
        )
        self._reaper = concurrent.futures.ThreadPoolExecutor(
            limits.max_concurrent, thread_name_prefix="sandbox-reaper"
        )
        self._removals = threading.BoundedSemaphore(limits.max_concurrent)

    @property
    def client(self) -> docker.DockerClient:
        if self._client is None:
            try:
                timeout = int(self.limits.connect_timeout_s)
                if self.limits.docker_url:
                    self._client = docker.DockerClient(
                        base_url=self.limits.docker_url, timeout=timeout
                    )
                else:
                    self._client = docker.from_env(timeout=timeout)
            except docker.errors.DockerException as exc:
                raise SandboxUnavailableError(f"cannot reach the Docker engine: {exc}") from exc
        return self._client

    def close(self) -> None:
        """Remove the warm containers, wait for the used ones' removals, and close the
        connection to the Docker engine."""
        if self._pool is not None:
            self._pool.close()
        self._reaper.shutdown(wait=True)
        if self._client is not None:
            self._client.close()
            self._client = None

    def warm_container_ids(self) -> set[str]:
        """Containers the warm pool holds now, started but unused (for leftover checks)."""
        return self._pool.waiting_ids() if self._pool is not None else set()

    async def aclose(self) -> None:
        """:meth:`close`, for the :class:`~sandbox.protocol.Sandbox` interface (in a thread:
        it waits for the removals still running)."""
        await asyncio.to_thread(self.close)

    async def run(
        self,
        code: str,
        entry: str,
        inputs: Sequence[Sequence[Any]],
        tenants: Sequence[str] | None = None,
        language: Language = "python",
    ) -> list[SandboxResult]:
        """Async front door: runs :meth:`run_batch` in a thread, at most
        ``limits.max_concurrent`` containers at a time per worker."""
        async with self._semaphore:
            return await asyncio.to_thread(self.run_batch, code, entry, inputs, tenants, language)

    def run_batch(
        self,
        code: str,
        entry: str,
        inputs: Sequence[Sequence[Any]],
        tenants: Sequence[str] | None = None,
        language: Language = "python",
    ) -> list[SandboxResult]:
        """Run ``entry(*args)`` from ``code`` (in ``language``) once per element of ``inputs``.

        ``tenants[i]`` is the organisation input ``i`` belongs to (None: all one tenant).
        Each tenant's inputs run in containers of their own."""
        check_tenants(inputs, tenants)
        groups: dict[str, list[int]] = {}
        for index in range(len(inputs)):
            groups.setdefault(tenants[index] if tenants else "", []).append(index)
        results: dict[int, SandboxResult] = {}
        for indexes in groups.values():
            got = self._run_tenant(code, entry, [inputs[i] for i in indexes], language)
            results.update(zip(indexes, got, strict=True))
        return [results[i] for i in range(len(inputs))]

    def _run_tenant(
        self, code: str, entry: str, inputs: Sequence[Sequence[Any]], language: Language
    ) -> list[SandboxResult]:
        """One tenant's inputs, in as many containers as it takes (a fresh one after a
        crash of the harness)."""
        results: dict[int, SandboxResult] = {}
        encoded: dict[int, bytes] = {}
        for index, args in enumerate(inputs):
            try:
                encoded[index] = b'{"args": %s}' % encode_input(args)
            except (TypeError, ValueError) as exc:
                results[index] = SandboxResult(
                    error=SandboxError(kind="input_not_serialisable", message=str(exc))
                )
        pending = [i for i in range(len(inputs)) if i not in results]
        deadline = time.monotonic() + self.limits.batch_timeout_s
        while pending:
            got = self._run_container(
                code, entry, [(i, encoded[i]) for i in pending], deadline, language
            )
            if not got:
                raise SandboxUnavailableError("the sandbox container ran no input")
            results.update(got)
            pending = [i for i in pending if i not in results]
        return [results[i] for i in range(len(inputs))]

    def _run_container(
        self,
        code: str,
        entry: str,
        items: list[tuple[int, bytes]],
        deadline: float,
        language: Language = "python",
    ) -> dict[int, SandboxResult]:
        limits = self.limits
        header = json.dumps(
            {
                "code": code,
                "entry": entry,
                "language": language,
                "count": len(items),
                "limits": {
                    "input_timeout_s": limits.input_timeout_s,
                    "input_memory_mb": limits.input_memory_mb,
                    "output_limit_bytes": limits.output_limit_bytes,
                    "print_limit_bytes": limits.print_limit_bytes,
                    "batch_output_limit_bytes": limits.batch_output_limit_bytes,
                    "compile_timeout_s": max(1.0, deadline - time.monotonic()),
                },
                "process_per": limits.fresh_process,
                # runc applies the IPC sysctls (the harness then proves IPC is closed);
                # gVisor does not, and holds one tenant per container instead.
                "ipc_closed": limits.runtime == "runc",
            }
        ).encode()
        parts = [b"%d\n" % len(header), header]
        for _, data in items:
            parts += [b"%d\n" % len(data), data]
        launched = self._pool.take() if self._pool is not None else None
        if launched is None:
            launched = self._launch(deadline - time.monotonic())
        parser = _FrameParser(limit=limits.batch_output_limit_bytes + FRAME_SLACK)
        stderr = bytearray()
        timed_out = False
        try:
            raw: socket.socket = launched.sock._sock
            writer = threading.Thread(target=_send_all, args=(raw, parts), daemon=True)
            writer.start()
            timed_out = _read_frames(raw, parser, stderr, deadline)
            writer.join(timeout=1)
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            raise SandboxUnavailableError(f"sandbox container failed: {exc}") from exc
        finally:
            self._retire(launched)
        if parser.fatal is not None:
            raise SandboxHardeningError(
                f"the sandbox container failed the harness's hardening check: {parser.fatal}"
            )
        return self._collect(items, parser, stderr, timed_out)

    def _retire(self, launched: Launched) -> None:
        """Close a used container's stdin now (its harness exits) and remove it on a
        reaper thread; synchronously once the executor is closed."""
        try:
            _close_stdin(launched)
        finally:
            self._removals.acquire()  # waits only while max_concurrent removals are running
            try:
                removal = self._reaper.submit(_reap, launched.container)
            except RuntimeError:  # closed: nothing may outlive close()
                self._removals.release()
                _reap(launched.container)
            else:
                removal.add_done_callback(self._removed)

    def _removed(self, removal: concurrent.futures.Future[None]) -> None:
        self._removals.release()
        if (problem := removal.exception()) is not None:  # _remove logs the expected ones
            log.error("sandbox.remove_failed", error=repr(problem))

    def _launch(self, lifetime_s: float) -> Launched:
        """Create, attach to and start a container that may live ``lifetime_s`` (its
        deadline label adds 30 s). Attached before it starts, so no output is missed; its
        harness then waits for the batch on stdin."""
        container = self._create_container(lifetime_s)
        sock = None
        try:
            sock = container.attach_socket(
                params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1}
            )
            container.start()
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            _discard(Launched(container, sock, time.monotonic()))
            raise SandboxUnavailableError(f"cannot start a sandbox container: {exc}") from exc
        return Launched(container, sock, time.monotonic())

    def _launch_warm(self) -> Launched:
        """A container for the warm pool: it may wait its age bound, then run a batch."""
        return self._launch(self.limits.warm_max_age_s + self.limits.batch_timeout_s)

    def _create_container(self, lifetime_s: float) -> Any:
        limits = self.limits
        expires = int(time.time() + lifetime_s + 30)
        try:
            return self.client.containers.create(
                limits.image,
                stdin_open=True,
                network_mode="none",
                read_only=True,
                cap_drop=["ALL"],
                security_opt=["no-new-privileges"],
                pids_limit=limits.pids,
                mem_limit=f"{limits.memory_mb}m",
                memswap_limit=f"{limits.memory_mb}m",
                nano_cpus=int(limits.cpus * 1e9),
                user="10001:10001",
                environment={},
                ipc_mode="none",
                sysctls=IPC_SYSCTLS,
                runtime=limits.runtime,
                log_config=docker.types.LogConfig(type="none"),
                auto_remove=True,
                name=f"metricloom-sandbox-{uuid.uuid4().hex[:12]}",
                labels={**self._labels, LABEL: "1", DEADLINE_LABEL: str(expires)},
            )
        except docker.errors.ImageNotFound as exc:
            raise SandboxUnavailableError(
                f"sandbox image {limits.image!r} is missing: run images/build.sh sandbox"
            ) from exc
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            raise SandboxUnavailableError(f"cannot create a sandbox container: {exc}") from exc

    def _collect(
        self,
        items: list[tuple[int, bytes]],
        parser: _FrameParser,
        stderr: bytearray,
        timed_out: bool,
    ) -> dict[int, SandboxResult]:
        """Map the harness's frames back to the batch's input indexes."""
        out: dict[int, SandboxResult] = {}
        for position, (index, _) in enumerate(items):
            prints = bytes(parser.prints.get(position, b"")).decode("utf-8", "replace")
            if position in parser.ended:
                status, detail = parser.ended[position]
                out[index] = _result_from(status, detail, parser.result.get(position), prints)
            elif position in parser.started:
                kind: ErrorKind = "batch_timeout" if timed_out else "crashed"
                message = (
                    f"the batch exceeded {self.limits.batch_timeout_s} s"
                    if timed_out
                    else "the sandbox died while running this input"
                )
                if parser.overflow:
                    kind = "output_too_large"
                    message = (
                        f"the batch returned over {self.limits.batch_output_limit_bytes} bytes"
                    )
                out[index] = SandboxResult(
                    error=SandboxError(kind=kind, message=message), prints=prints
                )
            elif timed_out:
                out[index] = SandboxResult(
                    error=SandboxError(
                        kind="batch_timeout",
                        message=f"not run: the batch exceeded {self.limits.batch_timeout_s} s",
                    )
                )
        if not out and stderr:
            log.warning(
                "sandbox.no_progress", stderr=bytes(stderr[-2000:]).decode("utf-8", "replace")
            )
        return out


def _json_int(text: str) -> int | float:
    """A JSON integer of a result: exact up to 2**53, else the double it stands for. Every
    JavaScript number is a double, printed in digits up to 1e21 (``8783400807051069000``
    for Python's ``8.783400807051069e+18``): read as the same double, both languages'
    results are equal, and a long run of digits costs no big-integer parse."""
    value = int(text) if len(text) <= 17 else None
    if value is not None and abs(value) <= 2**53:
        return value
    return float(text)


def _result_from(status: str, detail: str, raw: bytearray | None, prints: str) -> SandboxResult:
    if status != "ok":
        kind = cast(ErrorKind, status) if status in _STATUS_KINDS else "crashed"
        return SandboxResult(error=SandboxError(kind=kind, message=detail or status), prints=prints)
    if not raw:
        return SandboxResult(
            error=SandboxError(kind="crashed", message="the code exited without a result"),
            prints=prints,
        )
    try:
        doc = json.loads(bytes(raw), parse_int=_json_int)
    except ValueError as exc:
        return SandboxResult(
            error=SandboxError(kind="malformed_output", message=f"result is not JSON: {exc}"),
            prints=prints,
        )
    if not isinstance(doc, dict) or "ok" not in doc:
        return SandboxResult(
            error=SandboxError(kind="malformed_output", message="result has no 'ok' field"),
            prints=prints,
        )
    if doc["ok"] is True:
        return SandboxResult(value=doc.get("value"), prints=prints)
    reported = doc.get("kind")
    return SandboxResult(
        error=SandboxError(
            kind=cast(ErrorKind, reported) if reported in _CHILD_KINDS else "malformed_output",
            message=str(doc.get("message", ""))[:2000],
            traceback=str(doc["traceback"])[:8000] if doc.get("traceback") else None,
        ),
        prints=prints,
    )


_STATUS_KINDS = {"syntax_error", "timeout", "output_too_large", "killed", "malformed_output"}
_CHILD_KINDS = {
    "load",
    "missing_entry",
    "exception",
    "memory",
    "not_serialisable",
    "harness",
    "output_too_large",  # JavaScript: a result line over its cap (sandbox/harness.py)
    "malformed_output",
}


def _send_all(raw: socket.socket, parts: list[bytes]) -> None:
    """Write the request to the container's stdin, then half-close it (EOF)."""
    try:
        for part in parts:
            raw.sendall(part)
        raw.shutdown(socket.SHUT_WR)
    except OSError:
        pass  # the container is gone; the reader reports what happened


def _read_frames(
    raw: socket.socket, parser: _FrameParser, stderr: bytearray, deadline: float
) -> bool:
    """Read Docker's multiplexed attach stream until EOF; True if the deadline passed."""
    pending = bytearray()
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return True
        raw.settimeout(remaining)
        try:
            chunk = raw.recv(1 << 16)
        except TimeoutError:
            return True
        except OSError:
            return False
        if not chunk:
            return False
        pending += chunk
        while len(pending) >= 8:
            stream, size = struct.unpack(">BxxxL", pending[:8])
            if len(pending) < 8 + size:
                break
            payload = bytes(pending[8 : 8 + size])
            del pending[: 8 + size]
            if stream == STDOUT:
                parser.feed(payload)
                if parser.overflow:
                    return False
            elif stream == STDERR and len(stderr) < 65536:
                stderr += payload
        if parser.done:
            return False


def _discard(launched: Launched) -> None:
    """Close a container's attach socket (its stdin: the harness exits) and remove it."""
    _close_stdin(launched)
    _remove(launched.container)


def _close_stdin(launched: Launched) -> None:
    if launched.sock is not None:
        launched.sock._sock.close()
        launched.sock.close()


def _reap(container: Any) -> None:
    """:func:`_remove`, and when the engine's own ``auto_remove`` was already at it, wait
    until the container is gone: a finished reap means it no longer exists."""
    if not _remove(container):
        return
    try:
        container.wait(condition="removed", timeout=REAP_WAIT_S)
    except docker.errors.NotFound:
        pass  # gone before the wait began
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        log.warning("sandbox.remove_failed", container=container.name, error=str(exc))


REAP_WAIT_S = 30
"""How long a reaper thread waits for the engine to finish an ``auto_remove`` in progress."""


def _remove(container: Any) -> bool:
    """Force-remove a container; True when the engine answered that its ``auto_remove``
    is removing it already (409), so it may still exist for a moment."""
    try:
        container.remove(force=True, v=True)
    except docker.errors.NotFound:
        pass
    except docker.errors.APIError as exc:
        if exc.status_code == 409:  # auto-remove is already removing it
            return True
        log.warning("sandbox.remove_failed", container=container.name, error=str(exc))
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        # The engine went away mid-batch: the container removes itself when its stdin
        # closes (auto_remove), and a sweep takes any stray past its deadline.
        log.warning("sandbox.remove_failed", container=container.name, error=str(exc))
    return False


def sweep_stale(client: docker.DockerClient, now: float | None = None) -> int:
    """Remove sandbox containers past their deadline (left by a worker that died)."""
    now = time.time() if now is None else now
    removed = 0
    try:
        stale = list_sandboxes(client)
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        raise SandboxUnavailableError(f"cannot list sandbox containers: {exc}") from exc
    for container in stale:
        deadline = int(container.attrs.get("Labels", {}).get(DEADLINE_LABEL, "0") or 0)
        if deadline < now:
            _remove(container)
            removed += 1
    return removed


def sweep_logged(executor: SandboxExecutor) -> None:
    """:func:`sweep_stale` for a process starting up (the worker beside its start, the
    runner at its own): an engine that does not answer is a warning, not a failed start."""
    try:
        removed = sweep_stale(executor.client)
    except SandboxUnavailableError as exc:
        log.warning("sandbox.sweep_failed", error=str(exc))
        return
    if removed:
        log.info("sandbox.swept", containers=removed)


def list_sandboxes(client: docker.DockerClient, labels: dict[str, str] | None = None) -> list[Any]:
    """Sandbox containers (with these extra labels), from the engine's list alone.

    ``sparse``: the SDK otherwise inspects each listed container, and a container that
    auto-removes itself between the list and its inspection raised ``NotFound``. The list
    answer carries the labels (``attrs["Labels"]``), which is all a sweep needs."""
    wanted = [LABEL, *(f"{k}={v}" for k, v in (labels or {}).items())]
    return list(client.containers.list(all=True, sparse=True, filters={"label": wanted}))
