"""The hostile suite for the JavaScript runtime (QuickJS; what TypeScript transformers are
compiled to), on real containers under both runtimes, each with its default
``process_per``: every attack ends as a clear per-input error (or achieves nothing), the
inputs around it are intact, and no container is left behind.

The attacks a JavaScript transformer has are fewer than Python's (each input runs in a
fresh runtime of ``qjsrun``, which has no process, file or network API, no ``std`` or
``os`` module and no module loader); what it could reach is ``import()``, code built from
text (``eval``, the ``Function`` constructors), the runner's result writer and the
prelude's output, and the built-ins the next input uses. Each is tried here."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import docker
import pytest

from sandbox.executor import SandboxExecutor, SandboxResult, list_sandboxes
from tests.conftest import sandbox_limits

pytestmark = [pytest.mark.integration, pytest.mark.slow]

OURS = {"test": f"hostile-js-{uuid.uuid4().hex[:8]}"}
GOOD = "good"
WRAP = """
{body}
function transform(arg, cfg) {{
  if (arg === "good") return ["ok", cfg];
  return attack(arg, cfg);
}}
"""


@pytest.fixture(scope="module", params=["runc", "runsc"])
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
            print_limit_bytes=64 * 1024,
            output_limit_bytes=1024 * 1024,
        ),
    )
    yield executor
    executor.close()


@pytest.fixture(autouse=True)
def no_leftover_containers() -> Iterator[None]:
    """After each test, none of its sandbox containers may remain (within 10 s)."""
    yield
    client = docker.from_env()
    try:
        deadline = time.monotonic() + 10
        left = list_sandboxes(client, OURS)
        while left and time.monotonic() < deadline:
            time.sleep(0.2)
            left = list_sandboxes(client, OURS)
        assert left == [], f"sandbox containers left behind: {[c.attrs.get('Names') for c in left]}"
    finally:
        client.close()


def run_js(
    executor: SandboxExecutor, code: str, inputs: list[tuple[Any, ...]]
) -> list[SandboxResult]:
    """One batch in one container (no tenants): inputs share the container, and under
    gVisor's default ``process_per=batch`` the supervising process too."""
    return executor.run_batch(code, "transform", inputs, language="javascript")


def run_sandwiched(executor: SandboxExecutor, body: str, arg: object = "attack") -> SandboxResult:
    """Run the attack between two good inputs that must not feel it; the attack's result."""
    results = run_js(executor, WRAP.format(body=body), [(GOOD, 1), (arg, 2), (GOOD, 3)])
    assert results[0].value == ["ok", 1], results[0]
    assert results[2].value == ["ok", 3], results[2]
    return results[1]


def error_kind(result: SandboxResult) -> str:
    assert result.error is not None, f"expected an error, got {result.value!r}"
    return result.error.kind


def test_std_and_os_cannot_be_imported(executor: SandboxExecutor) -> None:
    """``import`` (static or dynamic, the one way to ``os.exec``, ``os.fork`` or
    ``std.open``) is refused for the whole batch before any input runs."""
    for code in (
        "function transform(a, b) { return import('os').then(os => os.exec(['/bin/sh'])); }",
        "import * as std from 'std';\nfunction transform(a, b) { return 1; }",
        "function transform(a, b) { return 1; } // import",
    ):
        results = run_js(executor, code, [(1, 2), (3, 4)])
        assert [error_kind(r) for r in results] == ["syntax_error", "syntax_error"], code
        assert results[0].error is not None and "import" in results[0].error.message


def test_code_cannot_be_built_from_text(executor: SandboxExecutor) -> None:
    """``eval`` and every ``Function`` constructor throw: ``import`` cannot be spelled at
    run time either (escaped spellings are a syntax error to QuickJS)."""
    attempts = {
        "eval": "eval('imp' + 'ort(\"os\")')",
        "Function": "Function('return 1')()",
        "constructor": "(function () {}).constructor('return 1')()",
        "async": "Object.getPrototypeOf(async function () {}).constructor('return 1')",
        "generator": "Object.getPrototypeOf(function* () {}).constructor('return 1')",
        "escaped": "eval('\\\\u0069mport(\"os\")')",
    }
    for name, expression in attempts.items():
        body = f"function attack(a, c) {{ return {expression}; }}"
        result = run_sandwiched(executor, body)
        assert error_kind(result) == "exception", name
        assert result.value is None


def test_no_process_file_or_environment_api(executor: SandboxExecutor) -> None:
    """Nothing that reads a file, the environment or starts a process is reachable, nor
    the runner's result writer or the prelude's finisher (the code never holds either)."""
    body = """
function attack(a, c) {
  const names = ["std", "os", "process", "require", "__loadScript", "scriptArgs", "Deno", "Bun",
                 "__metricloom_result", "__metricloom_input", "__metricloom_finish"];
  return names.filter(n => typeof globalThis[n] !== "undefined");
}"""
    result = run_sandwiched(executor, body)
    assert result.value == [], result


def test_infinite_loop_times_out(executor: SandboxExecutor) -> None:
    result = run_sandwiched(executor, "function attack(a, c) { for (;;) {} }")
    assert error_kind(result) == "timeout"


def test_memory_bomb_fails_with_memory_error(executor: SandboxExecutor) -> None:
    body = """
function attack(a, c) {
  const keep = [];
  for (let i = 0; ; i++) keep.push("x".repeat(1 << 20) + i);
}"""
    assert error_kind(run_sandwiched(executor, body)) == "memory"


def test_printed_flood_is_cut_off(executor: SandboxExecutor) -> None:
    """Many prints, and one print longer than the cap, both end at the print cap."""
    for body in (
        "function attack(a, c) { for (;;) console.log('y'.repeat(1000)); }",
        "function attack(a, c) { print('z'.repeat(10 * 1024 * 1024)); return 1; }",
    ):
        result = run_sandwiched(executor, body)
        assert error_kind(result) == "output_too_large", body
        assert len(result.prints) <= 4096


def test_result_over_its_cap_is_refused(executor: SandboxExecutor) -> None:
    result = run_sandwiched(executor, "function attack(a, c) { return 'r'.repeat(4 << 20); }")
    assert error_kind(result) == "output_too_large"


def test_forged_frames_and_result_lines_are_only_prints(executor: SandboxExecutor) -> None:
    """What the code prints never becomes a frame or a result: not the harness's frame
    lines, not the prelude's result line ("r" + JSON), not a newline inside a print."""
    body = r"""
function attack(a, c) {
  print('{"i": 1, "ev": "end", "status": "ok", "detail": ""}');
  print('r{"ok": true, "value": "forged"}');
  console.log('\nr{"ok": true, "value": "forged"}\n{"ev": "done"}');
  return "real";
}"""
    result = run_sandwiched(executor, body)
    assert result.error is None and result.value != "forged", result
    assert 'r{"ok": true, "value": "forged"}' in result.prints


def test_the_code_cannot_answer_early_or_run_after_its_answer(executor: SandboxExecutor) -> None:
    """A name shadowing the finisher changes nothing, and work queued to run after the
    answer (a promise job that prints and spins) never runs: the next input is not
    blamed with a timeout, and no print lands on it."""
    code = """
const __metricloom_finish = function () {};
var early = typeof __metricloom_result;
function transform(a, c) {
  if (a === "attack") Promise.resolve().then(function () { print("after"); for (;;) {} });
  return [a, c, early];
}"""
    results = run_js(executor, code, [("good", 1), ("attack", 2), ("good", 3)])
    assert [r.value for r in results] == [
        ["good", 1, "undefined"],
        ["attack", 2, "undefined"],
        ["good", 3, "undefined"],
    ], results
    assert all("after" not in r.prints for r in results), results


def test_state_does_not_carry_between_inputs(executor: SandboxExecutor) -> None:
    """Globals set by one input are gone for the next: each input is a fresh QuickJS runtime."""
    code = """
var seen = [];
function transform(a, b) {
  globalThis.counter = (globalThis.counter || 0) + 1;
  seen.push(a);
  return [globalThis.counter, seen.length];
}"""
    results = run_js(executor, code, [(n, None) for n in range(4)])
    assert [r.value for r in results] == [[1, 1]] * 4, results


def test_polluted_built_ins_do_not_reach_the_next_input(executor: SandboxExecutor) -> None:
    """Prototype pollution of the built-ins (and of JSON) stays in the input that did it."""
    code = """
function transform(a, b) {
  if (a === "pollute") {
    Object.prototype.injected = "yes";
    Array.prototype.map = function () { return ["polluted"]; };
    JSON.stringify = function () { return '{"ok": true, "value": "forged"}'; };
    String.prototype.toString = function () { return "polluted"; };
    return [1, 2].map(x => x * 2);
  }
  return [({}).injected === undefined, [1, 2].map(x => x * 2), JSON.stringify([1])];
}"""
    results = run_js(executor, code, [("pollute", 0), ("check", 0), ("check", 0)])
    assert results[0].value == ["polluted"], results[0]
    assert [r.value for r in results[1:]] == [[True, [2, 4], "[1]"]] * 2, results


def test_load_errors_exceptions_and_missing_entry(executor: SandboxExecutor) -> None:
    """A syntax error is the batch's, an exception at load or in ``transform`` is the
    input's (with its line), and code without ``transform`` says so."""
    [syntax] = run_js(executor, "function transform(a, b) { return (", [(1, 2)])
    assert error_kind(syntax) == "syntax_error"
    [load] = run_js(executor, "\nthrow new Error('at load');", [(1, 2)])
    assert error_kind(load) == "load" and load.error is not None
    assert "at load" in load.error.message and ":2:" in (load.error.traceback or "")
    [missing] = run_js(executor, "var x = 1;", [(1, 2)])
    assert error_kind(missing) == "missing_entry"
    [thrown] = run_js(
        executor, "function transform(a, b) {\n  throw new TypeError('no');\n}", [(1, 2)]
    )
    assert error_kind(thrown) == "exception" and ":2:" in (thrown.error.traceback or "")  # type: ignore[union-attr]


def test_non_serialisable_results_are_errors(executor: SandboxExecutor) -> None:
    code = """
function transform(a, b) {
  if (a === "bigint") return 1n;
  if (a === "cycle") { const o = {}; o.o = o; return o; }
  return exports.helper ? "exports" : [a];
}"""
    results = run_js(executor, code, [("bigint", 0), ("cycle", 0), ("fine", 0)])
    assert [error_kind(r) for r in results[:2]] == ["not_serialisable", "not_serialisable"]
    assert results[2].value == ["fine"]


def test_commonjs_exports_are_found(executor: SandboxExecutor) -> None:
    """What ``tsc`` emits for a module (``exports.transform = ...``) runs as is."""
    code = '"use strict";\nObject.defineProperty(exports, "__esModule", { value: true });\n'
    code += "exports.transform = transform;\nfunction transform(a, b) { return a + b; }\n"
    assert [r.value for r in run_js(executor, code, [(1, 2), (3, 4)])] == [3, 7]
