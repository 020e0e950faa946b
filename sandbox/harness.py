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
  and on printed output; per batch, a cap on all it returns.
* Before any code runs the harness verifies its own hardening and stops with a ``fatal``
  frame if any of it is missing: it is non-dumpable (``PR_SET_DUMPABLE`` must succeed),
  PID 1, not root, without capabilities, under no-new-privileges; no path it knows of is
  writable (``/``, ``/tmp``, ``/dev``, ``/dev/shm``, ``/dev/mqueue``, ...); and, when the
  executor says the container's IPC sysctls are zero, no SysV shared memory, message queue,
  semaphore set or POSIX message queue can be created.

JavaScript (the header's ``language``: ``javascript``; what TypeScript transformers are
compiled to before they reach the sandbox) runs under QuickJS. The harness checks the code
once per batch with ``qjs`` (it parses, and never names ``import``: defence in depth, as
the runner below has no module loader at all). The process that would have run Python
execs ``qjsrun`` instead (sandbox/qjsrun.c, QuickJS linked statically): each input runs in
a fresh QuickJS runtime, its own heap, built-ins and globals, freed before the next, so
``process_per=batch`` serves a batch from one process as Python's does, and ``input``
starts one per input. The runner gives the runtime no ``std`` or ``os`` module; the prelude
that runs first takes ``print`` and ``console`` (prints go to the capture pipe, the result
to its own pipe, so no print can pass for a result), and removes ``eval`` and the
``Function`` constructors (no code can be built from text). Frames, limits and failure
kinds are the harness's, one implementation for both languages.

``typescript`` is not run: the batch's code is TypeScript that the harness type-checks and
compiles once (npm ``typescript`` under ``qjs``, /opt/tsc/compile.js, with the entry naming
the signature: ``MetricTransform`` or ``ChartTransform``), and every input's result is that
compilation, ``{"javascript": ... | null, "diagnostics": [...]}``: the stored JavaScript
then runs as ``javascript``.

Two ways to run a batch (the header's ``process_per``):

* ``input`` (the default): a fresh process per input, as above.
* ``batch``: one fresh process runs every input of the batch in turn, each in fresh module
  globals; the executor only sends one organisation's inputs in one batch. Used under
  gVisor, where starting a process costs about 40 ms. A timeout or crash kills that
  process and the next input gets a fresh one.

Protocol. Stdin: a decimal byte length, a newline and a JSON header of that length
``{"code", "entry", "count", "limits", "process_per", "ipc_closed", "language"}`` (the
last three optional; ``language`` is ``python``, the default, or ``javascript``), then ``count`` inputs, each a decimal byte length,
a newline and that many bytes of JSON (``{"args": [...]}``). Stdout: frames, each a JSON line optionally followed by payload
bytes, ``{"i": n, "ev": "start"}``, ``{"i": n, "ch": "result"|"print", "n": len}`` + bytes,
``{"i": n, "ev": "end", "status": ..., "detail": ...}``, and ``{"ev": "done"}`` last, or
``{"ev": "fatal", "detail": ...}`` alone when the hardening check failed.
The child writes one JSON document to its result pipe: ``{"ok": true, "value": ...}`` or
``{"ok": false, "kind": ..., "message": ..., "traceback": ...}``; in ``batch`` mode each
document is preceded by its decimal length and a newline, and so is each input on the
process's input pipe.
"""

import contextlib
import ctypes
import fcntl
import json
import math
import os
import re
import resource
import select
import signal
import sys
import termios
import time
import traceback
from types import CodeType
from typing import Any, NoReturn

Limits = dict[str, Any]
Code = CodeType | str  # compiled Python, or checked JavaScript source

PR_GET_DUMPABLE = 3
PR_SET_DUMPABLE = 4
PR_GET_NO_NEW_PRIVS = 39
IPC_PRIVATE, IPC_CREAT, IPC_RMID = 0, 0o1000, 0
CHUNK = 65536
UNLIMITED = 1 << 62
# Paths that would be a place to leave data for a later input if they were writable.
NEVER_WRITABLE = (
    "/",
    "/tmp",
    "/var/tmp",
    "/dev",
    "/dev/shm",
    "/dev/mqueue",
    "/run",
    "/run/lock",
    "/nonexistent",
    "/opt/sandbox",
)

QJS_LIB = "/opt/quickjs/lib"
QJS = [f"{QJS_LIB}/ld-linux-x86-64.so.2", "--library-path", QJS_LIB, "/opt/quickjs/qjs"]
# The keyword (escaped spellings are a syntax error to QuickJS), refused as defence in
# depth: qjsrun has no module loader, so import() could reach nothing there.
JS_IMPORT = re.compile(r"\bimport\b")
QJSRUN = "/opt/quickjs/qjsrun"  # sandbox/qjsrun.c: a fresh QuickJS runtime per input
# The first of the two scripts qjsrun runs in each input's fresh runtime, before the code:
# takes the three globals qjsrun leaves (print, the result writer, the input), the output,
# and the ways to make code from text; its value is the function that calls the entry and
# writes the one result, which qjsrun keeps and calls after the code has loaded, so the
# code can neither call it nor run after it. Documents are made without a prototype (no
# toJSON of the code's can rewrite them). %(entry)s is JSON.
JS_PRELUDE = r"""(function () {
  "use strict";
  const G = globalThis, P = G.print, R = G.__metricloom_result, input = G.__metricloom_input;
  delete G.__metricloom_result;
  delete G.__metricloom_input;
  const S = JSON.stringify, STR = String, RA = Reflect.apply, NP = Object.setPrototypeOf;
  const DP = Object.defineProperty, GP = Object.getPrototypeOf, IE = InternalError;
  const entry = %(entry)s;
  const text = function (v) { try { return STR(v); } catch (e) { return "<unprintable>"; } };
  const say = function () {
    let s = "";
    for (let i = 0; i < arguments.length; i++) s += (i ? " " : "") + text(arguments[i]);
    P(s);
  };
  const konsole = {};
  for (const k of ["log", "info", "warn", "error", "debug", "trace"]) konsole[k] = say;
  DP(G, "console", { value: Object.freeze(konsole), writable: false, configurable: false });
  DP(G, "print", { value: say, writable: false, configurable: false });
  const closed = function () { throw new Error("code from text is not allowed in a transformer"); };
  closed.prototype = Function.prototype;
  for (const f of [function () {}, async function () {}, function* () {}, async function* () {}]) {
    DP(GP(f), "constructor", { value: closed, writable: false, configurable: false });
  }
  DP(G, "Function", { value: closed, writable: false, configurable: false });
  DP(G, "eval", { value: closed, writable: false, configurable: false });
  const exports = {};
  G.exports = exports;
  G.module = { exports: exports };
  const failure = function (kind, e) {
    let message = text(e), stack = "";
    try { stack = e && typeof e.stack === "string" ? e.stack : ""; } catch (x) { stack = ""; }
    if (e instanceof IE && /out of memory/.test(message)) kind = "memory";
    return NP({ ok: false, kind: kind, message: message.slice(0, 2000),
                traceback: stack.slice(-8000) }, null);
  };
  return function () {
    let out, line;
    try {
      const moduleExports = G.module && G.module.exports;
      let fn = moduleExports && moduleExports[entry];
      if (typeof fn !== "function") fn = exports[entry];
      if (typeof fn !== "function") fn = G[entry];
      if (typeof fn !== "function") {
        out = NP({ ok: false, kind: "missing_entry",
                   message: "the code defines no " + entry + "()" }, null);
      } else {
        const value = RA(fn, undefined, input);
        out = NP({ ok: true, value: value === undefined ? null : value }, null);
      }
    } catch (e) {
      out = failure("exception", e);
    }
    try {
      line = S(out);
    } catch (e) {
      line = S(failure("not_serialisable", e));
    }
    R(line);
  };
})()"""
TSC_COMPILE = "/opt/tsc/compile.js"
JS_CHECK = r"""try { new Function(%s); print("ok"); } catch (e) { print(String(e)); }"""


class HardeningError(Exception):
    """The container is not what the harness requires; nothing may run in it."""


def _harden() -> None:
    """Make this process non-dumpable: ``/proc/1/fd``, ``/proc/1/mem`` and ptrace are then
    closed to the code. Failing that, nothing may run (the caller turns this into a
    ``fatal`` frame)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        raise HardeningError(f"prctl(PR_SET_DUMPABLE, 0) failed: errno {ctypes.get_errno()}")
    if libc.prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) != 0:
        raise HardeningError("the harness is still dumpable after PR_SET_DUMPABLE")


def _verify(ipc_closed: bool) -> None:
    """Check the container's hardening before any code runs; HardeningError says what is
    missing."""
    if os.getpid() != 1:
        raise HardeningError(f"the harness is pid {os.getpid()}, not the namespace's init")
    if os.getuid() == 0 or os.geteuid() == 0:
        raise HardeningError("the harness runs as root")
    with open("/proc/self/status") as f:
        status = dict(line.split(":", 1) for line in f.read().splitlines() if ":" in line)
    if int(status.get("CapEff", "1").strip() or "1", 16) != 0:
        raise HardeningError(f"the harness has capabilities: CapEff {status.get('CapEff')}")
    if ctypes.CDLL(None).prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1:
        raise HardeningError("no-new-privileges is not set")
    for path in NEVER_WRITABLE:
        if not os.path.isdir(path):
            continue
        probe = os.path.join(path, f".metricloom-probe-{os.getpid()}")
        try:
            fd = os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        except OSError:
            continue
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(probe)
        raise HardeningError(f"{path} is writable")
    if ipc_closed:
        _verify_ipc_closed()


def _verify_ipc_closed() -> None:
    """No SysV shared memory, message queue or semaphore set, and no POSIX message queue,
    can be created (the container's IPC sysctls are zero)."""
    libc = ctypes.CDLL(None, use_errno=True)
    made: list[str] = []
    shm = libc.shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0o600)
    if shm >= 0:
        libc.shmctl(shm, IPC_RMID, None)
        made.append("SysV shared memory")
    msg = libc.msgget(IPC_PRIVATE, IPC_CREAT | 0o600)
    if msg >= 0:
        libc.msgctl(msg, IPC_RMID, None)
        made.append("SysV message queue")
    sem = libc.semget(IPC_PRIVATE, 1, IPC_CREAT | 0o600)
    if sem >= 0:
        libc.semctl(sem, 0, IPC_RMID)
        made.append("SysV semaphore set")
    name = f"/metricloom-probe-{os.getpid()}".encode()
    mq = libc.mq_open(name, os.O_CREAT | os.O_RDWR, 0o600, None)
    if mq >= 0:
        libc.mq_close(mq)
        libc.mq_unlink(name)
        made.append("POSIX message queue")
    if made:
        raise HardeningError(f"IPC is open: created a {', a '.join(made)}")


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


def _enter_child(keep: set[int], cap_w: int, limits: Limits, cpu_limit: bool) -> None:
    """What every process that runs the code does first: its own session, stdout/stderr to
    the capture pipe, no other descriptor, its limits."""
    os.setsid()
    os.dup2(cap_w, 1)
    os.dup2(cap_w, 2)
    devnull = os.open("/dev/null", os.O_RDONLY)
    os.dup2(devnull, 0)
    keep = keep | {0, 1, 2}
    for fd in range(3, 256):
        if fd not in keep:
            with contextlib.suppress(OSError):
                os.close(fd)
    sys.stdout = os.fdopen(1, "w", buffering=1, closefd=False)
    sys.stderr = os.fdopen(2, "w", buffering=1, closefd=False)
    mem = limits["input_memory_mb"] * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
    if cpu_limit:
        cpu = max(1, math.ceil(limits["input_timeout_s"]))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_DFL)


def _child(
    code_obj: Code, entry: str, in_r: int, res_w: int, cap_w: int, limits: Limits
) -> NoReturn:
    """Runs in the forked child: read own input, run transform, write result JSON."""
    try:
        _enter_child({in_r, res_w}, cap_w, limits, cpu_limit=True)
        if isinstance(code_obj, str):
            _exec_js("one", code_obj, entry, in_r, res_w, limits)
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
    result = _run_user_code(code_obj, entry, request.get("args", []), limits)
    if os.getpid() != own_pid:
        os._exit(0)  # a process the code forked returned here: only the child answers
    _flush_prints()
    _child_result(res_w, result)
    os._exit(0)


def _batch_child(
    code_obj: Code, entry: str, in_r: int, res_w: int, cap_w: int, limits: Limits
) -> NoReturn:
    """The one process of a ``batch``-mode batch: for each length-prefixed input on its
    pipe, run the module in fresh globals and write a length-prefixed result."""
    try:
        _enter_child({in_r, res_w}, cap_w, limits, cpu_limit=False)
        if isinstance(code_obj, str):
            _exec_js("batch", code_obj, entry, in_r, res_w, limits)
    except BaseException as exc:
        _child_result(res_w, {"ok": False, "kind": "harness", "message": repr(exc)}, True)
        os._exit(3)
    own_pid = os.getpid()
    while True:
        try:
            length = int(_read_line(in_r))
            request = json.loads(_read_exact(in_r, length))
        except EOFError:
            os._exit(0)
        except BaseException as exc:
            _child_result(res_w, {"ok": False, "kind": "harness", "message": repr(exc)}, True)
            os._exit(3)
        result = _run_user_code(code_obj, entry, request.get("args", []), limits)
        del request
        if os.getpid() != own_pid:
            os._exit(0)  # a process the code forked returned here: only the child answers
        _flush_prints()
        _child_result(res_w, result, framed=True)
        del result


def _flush_prints() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(BaseException):  # a broken stream must not lose the result
            stream.flush()


def _run_user_code(
    code_obj: CodeType, entry: str, args: list[Any], limits: Limits
) -> dict[str, Any]:
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


def _js_scripts(code: str, entry: str) -> tuple[int, int]:
    """The prelude and the code, each in a sealed memfd (the root is read-only): their
    descriptors. The same two serve every input: each reads its own request."""
    fds = []
    for name, text in (("prelude.js", JS_PRELUDE % {"entry": json.dumps(entry)}), ("code", code)):
        fd = os.memfd_create(name, os.MFD_ALLOW_SEALING)
        _write_all(fd, text.encode("utf-8", "surrogatepass"))
        os.lseek(fd, 0, os.SEEK_SET)
        with contextlib.suppress(OSError):  # a seal is a nicety: qjsrun only reads it
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_WRITE | fcntl.F_SEAL_GROW)
        fds.append(fd)
    return fds[0], fds[1]


def _exec_js(mode: str, code: str, entry: str, in_r: int, res_w: int, limits: Limits) -> NoReturn:
    """Become qjsrun (sandbox/qjsrun.c) for this process's inputs: ``one`` for a
    ``process_per=input`` child, ``batch`` for a batch's one process. Each input runs in a
    fresh QuickJS runtime under QuickJS's own heap limit (an allocation past it is kind
    ``memory``), below the address-space limit this process already has."""
    prelude_fd, code_fd = _js_scripts(code, entry)
    for fd in (in_r, res_w):  # pipes are close-on-exec; the memfds are made without it
        os.set_inheritable(fd, True)
    _default_signals()
    memory = str(limits["input_memory_mb"])
    argv = [QJSRUN, mode, str(in_r), str(res_w), memory, str(prelude_fd), str(code_fd)]
    os.execv(QJSRUN, argv)


def _default_signals() -> None:
    """The harness ignores every signal; a program it execs gets the defaults back."""
    for sig in range(1, signal.NSIG):
        if sig not in (signal.SIGKILL, signal.SIGSTOP):
            with contextlib.suppress(OSError, ValueError):
                signal.signal(sig, signal.SIG_DFL)


def _spawn_qjs(
    script_fd: int, memory_mb: int, out_w: int, err_w: int, compiler: bool = False
) -> int:
    """Start ``qjs`` on the script: stdout and stderr to the given pipes, nothing else
    open but the script, a QuickJS heap limit under the process's own address-space one.
    ``compiler``: run the TypeScript compiler (a module with ``std``) with the script as
    its request instead."""
    argv = [*QJS, "--memory-limit", f"{memory_mb}M", "--stack-size", "1M"]
    if compiler:
        argv += ["--std", "-m", TSC_COMPILE]
    else:
        argv.append("--script")
    argv.append(f"/proc/self/fd/{script_fd}")
    pid = os.fork()
    if pid == 0:
        try:
            _default_signals()
            os.dup2(out_w, 1)
            os.dup2(err_w, 2)
            for fd in range(3, 256):
                if fd != script_fd:
                    with contextlib.suppress(OSError):
                        os.close(fd)
            os.execv(argv[0], argv)
        finally:
            os._exit(127)
    return pid


def _check_js(code: str, limits: Limits) -> str:
    """Once per batch: the code never names ``import`` and parses; the error text if not."""
    found = JS_IMPORT.search(code)
    if found:
        line = code.count("\n", 0, found.start()) + 1
        return f"SyntaxError: 'import' is not allowed in a transformer (line {line})"
    fd = os.memfd_create("check.js", 0)
    _write_all(fd, (JS_CHECK % json.dumps(code)).encode())
    out_r, out_w = os.pipe()
    pid = _spawn_qjs(fd, limits["input_memory_mb"], out_w, out_w)
    os.close(out_w)
    os.close(fd)
    deadline = time.monotonic() + limits["input_timeout_s"]
    out = bytearray()
    while len(out) < 65536:
        timeout = deadline - time.monotonic()
        if timeout <= 0 or not select.select([out_r], [], [], timeout)[0]:
            out = bytearray(b"the code took too long to parse")
            break
        chunk = os.read(out_r, CHUNK)
        if not chunk:
            break
        out += chunk
    os.close(out_r)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)
    text = out.decode("utf-8", "replace").strip()
    return "" if text == "ok" else text[:2000] or "the code could not be parsed"


def _compile_ts(source: str, signature: str, limits: Limits) -> tuple[str, str, bytes]:
    """Once per batch: type-check and compile TypeScript (npm ``typescript`` under qjs,
    sandbox/tsc/compile.js). Its status, detail and, when ``ok``, the result document
    ``{"ok": true, "value": {"javascript", "diagnostics"}}`` every input gets."""
    fd = os.memfd_create("request.json", 0)
    _write_all(fd, json.dumps({"source": source, "signature": signature}).encode())
    out_r, out_w = os.pipe()
    err_r = os.open("/dev/null", os.O_WRONLY)
    pid = _spawn_qjs(fd, 2 * limits["input_memory_mb"], out_w, err_r, compiler=True)
    for own in (out_w, err_r, fd):
        os.close(own)
    deadline = time.monotonic() + limits.get("compile_timeout_s", 60.0)
    out = bytearray()
    status, detail = "ok", ""
    while True:
        timeout = deadline - time.monotonic()
        if timeout <= 0 or not select.select([out_r], [], [], timeout)[0]:
            status, detail = "timeout", "the TypeScript compiler did not finish in time"
            break
        chunk = os.read(out_r, CHUNK)
        if not chunk:
            break
        out += chunk
        if len(out) > limits["output_limit_bytes"]:
            status, detail = "output_too_large", "the compiled JavaScript is over the result cap"
            break
    os.close(out_r)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)
    if status != "ok":
        return status, detail, b""
    try:
        compiled = json.loads(out)
    except ValueError:
        return "malformed_output", "the TypeScript compiler gave no answer (out of memory?)", b""
    return "ok", "", json.dumps({"ok": True, "value": compiled}).encode()


def _serve_compiled(
    out_fd: int, stdin_fd: int, count: int, compiled: tuple[str, str, bytes]
) -> None:
    """Every input of a ``typescript`` batch gets the one compilation (inputs are unused)."""
    status, detail, document = compiled
    for index in range(count):
        _discard(stdin_fd, int(_read_line(stdin_fd)))
        _out_frame(out_fd, {"i": index, "ev": "start"})
        if status == "ok":
            _out_frame(out_fd, {"i": index, "ch": "result", "n": len(document)})
            _write_all(out_fd, document)
        _out_frame(out_fd, {"i": index, "ev": "end", "status": status, "detail": detail})


def _exception_result(kind: str, exc: BaseException) -> dict[str, Any]:
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return {
        "ok": False,
        "kind": kind,
        "message": f"{type(exc).__name__}: {exc}"[:2000],
        "traceback": tb[-8000:],
    }


def _child_result(res_w: int, result: dict[str, Any], framed: bool = False) -> None:
    try:
        data = json.dumps(result, default=_json_default, allow_nan=False).encode()
    except MemoryError:
        data = b'{"ok": false, "kind": "memory", "message": "memory limit reached serialising"}'
    except (TypeError, ValueError, RecursionError, OverflowError) as exc:
        message = json.dumps(f"output not serialisable: {exc}"[:2000])
        data = (f'{{"ok": false, "kind": "not_serialisable", "message": {message}}}').encode()
    with contextlib.suppress(OSError):  # closed by the harness: the output was over its cap
        if framed:
            _write_all(res_w, b"%d\n" % len(data))
        _write_all(res_w, data)


def _kill_all_others() -> None:
    """SIGKILL every process in the container but this one (PID 1: kill(-1) reaches every
    other process of the namespace, also ones that left the child's group), then reap."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(-1, signal.SIGKILL)
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            time.sleep(0.001)


class Budget:
    """What the rest of the batch may still return (results and prints together)."""

    def __init__(self, limit: int) -> None:
        self.left = limit


def _forward(
    fd: int,
    available: int,
    index: int,
    channel: str,
    cap: int,
    used: int,
    out_fd: int,
    budget: Budget,
) -> str:
    """Forward ``available`` bytes of one channel; an error detail if a cap is passed."""
    what = "result" if channel == "result" else "printed output"
    if used + available > cap:
        return f"{what} exceeded {cap} bytes"
    if available > budget.left:
        return f"{what} exceeded what is left of the batch's output cap"
    _out_frame(out_fd, {"i": index, "ch": channel, "n": available}, fd, available)
    budget.left -= available
    return ""


def _run_one(
    index: int,
    code_obj: Code,
    entry: str,
    stdin_fd: int,
    length: int,
    out_fd: int,
    limits: Limits,
    budget: Budget,
) -> None:
    _out_frame(out_fd, {"i": index, "ev": "start"})  # before any of the code runs
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
    deadline = time.monotonic() + limits["input_timeout_s"]
    remaining = length
    used = {"result": 0, "print": 0}
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
            moved = _splice_input(stdin_fd, in_w, remaining)
            remaining -= moved
            if remaining == 0:
                os.close(in_w)
        for fd in readable:
            channel = "result" if fd == res_r else "print"
            cap = limits["output_limit_bytes"] if fd == res_r else limits["print_limit_bytes"]
            available = _pipe_available(fd)
            if available == 0:
                open_reads.discard(fd)
                os.close(fd)
                continue
            detail = _forward(fd, available, index, channel, cap, used[channel], out_fd, budget)
            if detail:
                status = "output_too_large"
                open_reads.clear()
                break
            used[channel] += available
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
    _kill_all_others()
    if remaining > 0:
        _discard(stdin_fd, remaining)
    for fd in (in_w, res_r, cap_r):
        with contextlib.suppress(OSError):
            os.close(fd)
    if status == "ok" and exit_status is not None and os.WIFSIGNALED(exit_status):
        status, detail = _signal_status(exit_status)
    _out_frame(out_fd, {"i": index, "ev": "end", "status": status, "detail": detail})


def _splice_input(stdin_fd: int, in_w: int, remaining: int) -> int:
    """Move up to ``remaining`` input bytes from stdin to the code's pipe; how many moved."""
    try:
        moved = os.splice(stdin_fd, in_w, min(remaining, CHUNK))
    except BlockingIOError:
        return 0
    except BrokenPipeError:
        _discard(stdin_fd, remaining)  # the code stopped reading; drop the rest
        return remaining
    if moved == 0:
        raise EOFError("stdin closed in the middle of an input")
    return moved


def _signal_status(exit_status: int) -> tuple[str, str]:
    sig = os.WTERMSIG(exit_status)
    if sig == signal.SIGXCPU:
        return "timeout", "CPU time limit reached"
    return "killed", f"terminated by signal {signal.Signals(sig).name}"


class BatchProcess:
    """The one process that runs a ``batch``-mode batch's inputs (see :func:`_batch_child`);
    forked again after a timeout, a crash or an over-sized result."""

    def __init__(self, code_obj: Code, entry: str, out_fd: int, limits: Limits) -> None:
        self.code_obj, self.entry, self.out_fd, self.limits = code_obj, entry, out_fd, limits
        self.pid = 0
        self.in_w = self.res_r = self.cap_r = -1

    def start(self) -> None:
        in_r, self.in_w = os.pipe()
        self.res_r, res_w = os.pipe()
        self.cap_r, cap_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            for fd in (self.in_w, self.res_r, self.cap_r, self.out_fd):
                os.close(fd)
            _batch_child(self.code_obj, self.entry, in_r, res_w, cap_w, self.limits)
        self.pid = pid
        for fd in (in_r, res_w, cap_w):
            os.close(fd)
        for fd in (self.in_w, self.res_r, self.cap_r):
            os.set_blocking(fd, False)

    def stop(self) -> int | None:
        """Kill it (and whatever it started); its exit status if it had already ended."""
        exit_status = None
        with contextlib.suppress(ChildProcessError):
            waited, st = os.waitpid(self.pid, os.WNOHANG)
            exit_status = st if waited else None
        _kill_all_others()
        for fd in (self.in_w, self.res_r, self.cap_r):
            with contextlib.suppress(OSError):
                os.close(fd)
        self.pid = 0
        return exit_status

    def run(self, index: int, stdin_fd: int, length: int, budget: Budget) -> None:
        _out_frame(self.out_fd, {"i": index, "ev": "start"})  # before any of the code runs
        if not self.pid:
            self.start()
        limits = self.limits
        deadline = time.monotonic() + limits["input_timeout_s"]
        prefix = b"%d\n" % length
        remaining = length
        result_size: int | None = None  # the result's announced length, once read
        result_left = 0
        printed = 0
        line = bytearray()
        status, detail = "ok", ""
        while True:
            timeout = deadline - time.monotonic()
            if timeout <= 0:
                status, detail = "timeout", f"no result within {limits['input_timeout_s']} s"
                break
            writes = [self.in_w] if prefix or remaining else []
            readable, writable, _ = select.select([self.res_r, self.cap_r], writes, [], timeout)
            if writable:
                try:
                    if prefix:
                        prefix = prefix[os.write(self.in_w, prefix) :]
                    else:
                        remaining -= _splice_input(stdin_fd, self.in_w, remaining)
                except BrokenPipeError:
                    pass  # the process died; its result pipe says so below
            if self.cap_r in readable:
                available = _pipe_available(self.cap_r)
                if available:
                    cap = limits["print_limit_bytes"]
                    detail = _forward(
                        self.cap_r, available, index, "print", cap, printed, self.out_fd, budget
                    )
                    if detail:
                        status = "output_too_large"
                        break
                    printed += available
            if self.res_r not in readable:
                continue
            if result_size is None:  # the length line: a few bytes, read one at a time
                ch = os.read(self.res_r, 1)
                if not ch:
                    status, detail = "killed", "the process ended without a result"
                    break
                if ch != b"\n":
                    line += ch
                    if len(line) > 20 or not ch.isdigit():
                        status, detail = "malformed_output", "the result pipe was written to"
                        break
                    continue
                result_size = result_left = int(line or b"0")
                cap = limits["output_limit_bytes"]
                if result_size > cap or result_size > budget.left:
                    status = "output_too_large"
                    detail = f"result exceeded {cap} bytes or what is left of the batch's cap"
                    break
            else:
                available = min(_pipe_available(self.res_r), result_left)
                if available == 0:
                    status, detail = "killed", "the process ended in the middle of its result"
                    break
                frame = {"i": index, "ch": "result", "n": available}
                _out_frame(self.out_fd, frame, self.res_r, available)
                result_left -= available
                budget.left -= available
            if result_left == 0:
                if prefix or remaining:  # a result before the whole input: not its own
                    status, detail = "malformed_output", "the result pipe was written to"
                break
        if status == "ok":
            self._drain_prints(index, printed, budget)
        else:
            exit_status = self.stop()
            if status == "killed" and exit_status is not None and os.WIFSIGNALED(exit_status):
                status, detail = _signal_status(exit_status)
            if remaining > 0:
                _discard(stdin_fd, remaining)
        _out_frame(self.out_fd, {"i": index, "ev": "end", "status": status, "detail": detail})

    def _drain_prints(self, index: int, printed: int, budget: Budget) -> None:
        """Forward what the input printed before its result (flushed before it was written)."""
        available = _pipe_available(self.cap_r)
        if available:
            cap = self.limits["print_limit_bytes"]
            if _forward(self.cap_r, available, index, "print", cap, printed, self.out_fd, budget):
                _discard(self.cap_r, available)


def _pipe_available(fd: int) -> int:
    """How many bytes a pipe that select() found readable holds (0 means closed)."""
    buf = fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0")
    return int.from_bytes(buf, sys.byteorder)


def _discard(fd: int, length: int) -> None:
    """Drop ``length`` bytes of a pipe or stream without reading them into memory: spliced
    into a scratch pipe that is then closed (gVisor cannot splice to /dev/null)."""
    while length > 0:
        scratch_r, scratch_w = os.pipe()
        try:
            moved = os.splice(fd, scratch_w, min(length, CHUNK))
        except BlockingIOError:
            moved = -1
        finally:
            os.close(scratch_r)
            os.close(scratch_w)
        if moved == 0:
            return
        if moved < 0:
            select.select([fd], [], [], 1.0)
            continue
        length -= moved


def main() -> None:
    for sig in range(1, signal.NSIG):
        if sig in (signal.SIGKILL, signal.SIGSTOP, signal.SIGCHLD):
            continue
        with contextlib.suppress(OSError, ValueError, RuntimeError):
            signal.signal(sig, signal.SIG_IGN)
    out_fd = os.dup(1)
    devnull = os.open("/dev/null", os.O_WRONLY)
    os.dup2(devnull, 1)  # stderr stays: the executor logs a harness's own traceback
    stdin_fd = 0
    try:
        _harden()
        header = json.loads(_read_exact(stdin_fd, int(_read_line(stdin_fd))))
        _verify(bool(header.get("ipc_closed", False)))
    except HardeningError as exc:
        _out_frame(out_fd, {"ev": "fatal", "detail": str(exc)})
        sys.exit(2)
    limits = header["limits"]
    budget = Budget(int(limits.get("batch_output_limit_bytes", UNLIMITED)))
    code_obj: Code | None = None
    compile_error = ""
    if header.get("language") == "typescript":
        compiled = _compile_ts(str(header["code"]), str(header["entry"]), limits)
        _serve_compiled(out_fd, stdin_fd, int(header["count"]), compiled)
        _out_frame(out_fd, {"ev": "done"})
        return
    if header.get("language", "python") == "javascript":
        compile_error = _check_js(header["code"], limits)
        code_obj = None if compile_error else str(header["code"])
    else:
        try:
            code_obj = compile(header["code"], "<transformer>", "exec")
        except (SyntaxError, ValueError) as exc:
            compile_error = f"{type(exc).__name__}: {exc}"
    entry = header["entry"]
    header_count = header["count"]
    per_batch = header.get("process_per", "input") == "batch"
    del header
    batch = BatchProcess(code_obj, entry, out_fd, limits) if code_obj and per_batch else None
    for index in range(int(header_count)):
        length = int(_read_line(stdin_fd))
        if code_obj is None:
            _discard(stdin_fd, length)
            _out_frame(out_fd, {"i": index, "ev": "start"})
            _out_frame(
                out_fd, {"i": index, "ev": "end", "status": "syntax_error", "detail": compile_error}
            )
        elif budget.left <= 0:
            _discard(stdin_fd, length)
            _out_frame(out_fd, {"i": index, "ev": "start"})
            detail = "not run: the batch's output cap is used up"
            _out_frame(
                out_fd, {"i": index, "ev": "end", "status": "output_too_large", "detail": detail}
            )
        elif batch is not None:
            batch.run(index, stdin_fd, length, budget)
        else:
            _run_one(index, code_obj, entry, stdin_fd, length, out_fd, limits, budget)
    if batch is not None and batch.pid:
        batch.stop()
    _out_frame(out_fd, {"ev": "done"})


if __name__ == "__main__":
    main()
