"""The harness that runs inside every sandbox container (PID 1). Standard library only.

Why it is built this way (the threat is the transformer code, which is hostile):

* The harness compiles the code once, then forks a fresh child per input. The child
  executes the module in fresh globals and calls ``transform``; nothing a child does
  (globals, files, processes) survives into the next input: the root is read-only with no
  writable mount, and after each input every process but PID 1 is SIGKILLed.
* The harness never holds input or output bytes in its own memory: it moves them between
  pipes with ``os.splice``, so a child forked later cannot find an earlier input's data in
  the memory it inherits.
* Result frames go to the container's stdout, which the children cannot reach: the child
  closes the harness's copy of it, its own stdout/stderr go to a capture pipe, and the
  harness is non-dumpable so ``/proc/1/fd`` is closed to it. As the namespace's init the
  harness ignores every signal a child can send.
* Per input: wall-clock and CPU limits, an address-space limit, and caps on result size
  and on printed output.

Protocol. Stdin: a decimal byte length, a newline and a JSON header of that length
``{"code", "entry", "count", "limits"}``, then ``count`` inputs, each a decimal byte length,
a newline and that many bytes of JSON (``{"args": [...]}``). Stdout: frames, each a JSON line optionally followed by payload
bytes, ``{"i": n, "ev": "start"}``, ``{"i": n, "ch": "result"|"print", "n": len}`` + bytes,
``{"i": n, "ev": "end", "status": ..., "detail": ...}``, and ``{"ev": "done"}`` last.
The child writes one JSON document to its result pipe: ``{"ok": true, "value": ...}`` or
``{"ok": false, "kind": ..., "message": ..., "traceback": ...}``.
"""

import contextlib
import ctypes
import json
import math
import os
import resource
import select
import signal
import sys
import time
import traceback
from types import CodeType
from typing import Any, NoReturn

Limits = dict[str, Any]

PR_SET_DUMPABLE = 4
CHUNK = 65536


def _out_frame(
    out_fd: int, header: dict[str, Any], payload_from: int = -1, length: int = 0
) -> None:
    """Write one frame; payload bytes are spliced from a pipe, never read into memory."""
    line = (json.dumps(header, separators=(",", ":")) + "\n").encode()
    _write_all(out_fd, line)
    while length > 0:
        try:
            moved = os.splice(payload_from, out_fd, length)
        except BlockingIOError:  # the capture pipe is non-blocking: wait for stdout room
            select.select([], [out_fd], [], 1.0)
            continue
        if moved == 0:
            raise OSError("capture pipe closed before its payload was forwarded")
        length -= moved


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _read_exact(fd: int, length: int) -> bytes:
    buf = bytearray()
    while len(buf) < length:
        chunk = os.read(fd, min(CHUNK, length - len(buf)))
        if not chunk:
            raise EOFError("stdin closed")
        buf += chunk
    return bytes(buf)


def _read_line(fd: int, limit: int = 32) -> bytes:
    """Read one header line byte by byte, so nothing past it is consumed."""
    buf = bytearray()
    while True:
        ch = os.read(fd, 1)
        if not ch:
            raise EOFError("stdin closed")
        if ch == b"\n":
            return bytes(buf)
        buf += ch
        if len(buf) > limit:
            raise ValueError("header line too long")


def _json_default(obj: object) -> Any:
    isoformat = getattr(obj, "isoformat", None)
    if callable(isoformat):
        return isoformat()
    raise TypeError(f"object of type {type(obj).__name__} is not JSON serialisable")


def _child(
    code_obj: CodeType, entry: str, in_r: int, res_w: int, cap_w: int, limits: Limits
) -> NoReturn:
    """Runs in the forked child: read own input, run transform, write result JSON."""
    try:
        os.setsid()
        os.dup2(cap_w, 1)
        os.dup2(cap_w, 2)
        devnull = os.open("/dev/null", os.O_RDONLY)
        os.dup2(devnull, 0)
        keep = {0, 1, 2, in_r, res_w}
        for fd in range(3, 256):
            if fd not in keep:
                with contextlib.suppress(OSError):
                    os.close(fd)
        sys.stdout = os.fdopen(1, "w", buffering=1, closefd=False)
        sys.stderr = os.fdopen(2, "w", buffering=1, closefd=False)
        mem = limits["input_memory_mb"] * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
        cpu = max(1, math.ceil(limits["input_timeout_s"]))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGPIPE):
            signal.signal(sig, signal.SIG_DFL)
        chunks = []
        while True:
            chunk = os.read(in_r, CHUNK)
            if not chunk:
                break
            chunks.append(chunk)
        os.close(in_r)
        request = json.loads(b"".join(chunks))
        del chunks
    except BaseException as exc:  # the harness itself failed: report, never hang
        _child_result(res_w, {"ok": False, "kind": "harness", "message": repr(exc)})
        os._exit(3)
    own_pid = os.getpid()
    result = _run_user_code(code_obj, entry, request.get("args", []))
    if os.getpid() != own_pid:
        os._exit(0)  # a process the code forked returned here: only the child answers
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(BaseException):  # a broken stream must not lose the result
            stream.flush()
    _child_result(res_w, result)
    os._exit(0)


def _run_user_code(code_obj: CodeType, entry: str, args: list[Any]) -> dict[str, Any]:
    namespace = {"__name__": "transformer", "__builtins__": __builtins__}
    try:
        exec(code_obj, namespace)
    except MemoryError:
        return {"ok": False, "kind": "memory", "message": "memory limit reached while loading"}
    except BaseException as exc:
        return _exception_result("load", exc)
    func = namespace.get(entry)
    if not callable(func):
        return {"ok": False, "kind": "missing_entry", "message": f"the code defines no {entry}()"}
    try:
        value = func(*args)
    except MemoryError:
        return {"ok": False, "kind": "memory", "message": "memory limit reached"}
    except BaseException as exc:
        return _exception_result("exception", exc)
    return {"ok": True, "value": value}


def _exception_result(kind: str, exc: BaseException) -> dict[str, Any]:
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return {
        "ok": False,
        "kind": kind,
        "message": f"{type(exc).__name__}: {exc}"[:2000],
        "traceback": tb[-8000:],
    }


def _child_result(res_w: int, result: dict[str, Any]) -> None:
    try:
        data = json.dumps(result, default=_json_default, allow_nan=False).encode()
    except MemoryError:
        data = b'{"ok": false, "kind": "memory", "message": "memory limit reached serialising"}'
    except (TypeError, ValueError, RecursionError, OverflowError) as exc:
        message = json.dumps(f"output not serialisable: {exc}"[:2000])
        data = (f'{{"ok": false, "kind": "not_serialisable", "message": {message}}}').encode()
    with contextlib.suppress(OSError):  # closed by the harness: the output was over its cap
        _write_all(res_w, data)


def _kill_all_others(child_pid: int) -> None:
    """SIGKILL every process in the container but this one, then reap them.

    As PID 1 of the container's namespace, kill(-1) reaches every other process there,
    including ones that left the child's process group. Run anywhere else (a developer
    running the harness by hand), only the child's own group is killed.
    """
    try:
        if os.getpid() == 1:
            os.kill(-1, signal.SIGKILL)
        else:
            os.killpg(child_pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            time.sleep(0.001)


def _run_one(
    index: int,
    code_obj: CodeType,
    entry: str,
    stdin_fd: int,
    length: int,
    out_fd: int,
    limits: Limits,
) -> None:
    in_r, in_w = os.pipe()
    res_r, res_w = os.pipe()
    cap_r, cap_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(in_w)
        os.close(res_r)
        os.close(cap_r)
        os.close(out_fd)
        _child(code_obj, entry, in_r, res_w, cap_w, limits)
    for fd in (in_r, res_w, cap_w):
        os.close(fd)
    for fd in (in_w, res_r, cap_r):
        os.set_blocking(fd, False)
    _out_frame(out_fd, {"i": index, "ev": "start"})
    deadline = time.monotonic() + limits["input_timeout_s"]
    remaining = length
    result_bytes = 0
    print_bytes = 0
    status, detail = "ok", ""
    open_reads = {res_r, cap_r}
    if remaining == 0:
        os.close(in_w)
    while open_reads:
        timeout = deadline - time.monotonic()
        if timeout <= 0:
            status, detail = "timeout", f"no result within {limits['input_timeout_s']} s"
            break
        writes = [in_w] if remaining > 0 else []
        readable, writable, _ = select.select(list(open_reads), writes, [], timeout)
        if writable:
            try:
                moved = os.splice(stdin_fd, in_w, min(remaining, CHUNK))
            except BlockingIOError:
                moved = -1
            except BrokenPipeError:
                moved = remaining  # the child stopped reading; drain the rest below
                _discard(stdin_fd, remaining)
            if moved == 0:
                raise EOFError("stdin closed in the middle of an input")
            if moved > 0:
                remaining -= moved
                if remaining == 0:
                    os.close(in_w)
        for fd in readable:
            channel = "result" if fd == res_r else "print"
            cap = limits["output_limit_bytes"] if fd == res_r else limits["print_limit_bytes"]
            used = result_bytes if fd == res_r else print_bytes
            available = _pipe_available(fd)
            if available == 0:
                open_reads.discard(fd)
                os.close(fd)
                continue
            if used + available > cap:
                status = "output_too_large"
                what = "result" if fd == res_r else "printed output"
                detail = f"{what} exceeded {cap} bytes"
                open_reads.clear()
                break
            _out_frame(out_fd, {"i": index, "ch": channel, "n": available}, fd, available)
            if fd == res_r:
                result_bytes += available
            else:
                print_bytes += available
        if status != "ok":
            break
    exit_status = None
    try:
        waited, exit_status = os.waitpid(pid, os.WNOHANG)
        if waited == 0:
            exit_status = None
    except ChildProcessError:
        pass
    if status == "ok" and exit_status is None:
        # Both pipes closed but the child is still alive (e.g. it closed them itself).
        end = time.monotonic() + max(0.0, deadline - time.monotonic())
        while exit_status is None and time.monotonic() < end:
            waited, st = os.waitpid(pid, os.WNOHANG)
            if waited:
                exit_status = st
            else:
                time.sleep(0.001)
        if exit_status is None:
            status, detail = "timeout", f"no exit within {limits['input_timeout_s']} s"
    _kill_all_others(pid)
    if remaining > 0:
        _discard(stdin_fd, remaining)
    for fd in (in_w, res_r, cap_r):
        with contextlib.suppress(OSError):
            os.close(fd)
    if status == "ok" and exit_status is not None and os.WIFSIGNALED(exit_status):
        sig = os.WTERMSIG(exit_status)
        status = "killed"
        detail = f"terminated by signal {signal.Signals(sig).name}"
        if sig == signal.SIGXCPU:
            status, detail = "timeout", "CPU time limit reached"
    _out_frame(out_fd, {"i": index, "ev": "end", "status": status, "detail": detail})


def _pipe_available(fd: int) -> int:
    """How many bytes a pipe that select() found readable holds (0 means closed)."""
    import fcntl
    import termios

    buf = fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0")
    return int.from_bytes(buf, sys.byteorder)


def _discard(fd: int, length: int) -> None:
    devnull = os.open("/dev/null", os.O_WRONLY)
    try:
        while length > 0:
            moved = os.splice(fd, devnull, min(length, CHUNK))
            if moved == 0:
                return
            length -= moved
    finally:
        os.close(devnull)


def main() -> None:
    for sig in range(1, signal.NSIG):
        if sig in (signal.SIGKILL, signal.SIGSTOP, signal.SIGCHLD):
            continue
        with contextlib.suppress(OSError, ValueError, RuntimeError):
            signal.signal(sig, signal.SIG_IGN)
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    out_fd = os.dup(1)
    devnull = os.open("/dev/null", os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    stdin_fd = 0
    header = json.loads(_read_exact(stdin_fd, int(_read_line(stdin_fd))))
    limits = header["limits"]
    try:
        code_obj = compile(header["code"], "<transformer>", "exec")
        compile_error = None
    except (SyntaxError, ValueError) as exc:
        code_obj = None
        compile_error = f"{type(exc).__name__}: {exc}"
    entry = header["entry"]
    header_count = header["count"]
    del header
    for index in range(int(header_count)):
        length = int(_read_line(stdin_fd))
        if code_obj is None:
            _discard(stdin_fd, length)
            _out_frame(out_fd, {"i": index, "ev": "start"})
            _out_frame(
                out_fd, {"i": index, "ev": "end", "status": "syntax_error", "detail": compile_error}
            )
            continue
        _run_one(index, code_obj, entry, stdin_fd, length, out_fd, limits)
    _out_frame(out_fd, {"ev": "done"})


if __name__ == "__main__":
    main()
