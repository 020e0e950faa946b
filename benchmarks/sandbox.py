"""Sandbox benchmark: the batched executor under each runtime against one container per input.

Runs on the real Docker engine with the real sandbox image and the github-repo-stars
transformer over real-shaped payloads. Prints one JSON document: the baseline measured in
the same run (a bare ``docker run --rm`` of the same image doing the same one-input job,
via the docker CLI, under runc; and the same under runsc, for reference), then for each
runtime and isolation mode, per batch size, the batch latency p50/p95 and the per-input
cost, with the ratios the targets are stated in (against one bare runc container per
input), and the process's peak memory (this process plays the worker).

Modes: runc with a fresh process per input (runc's default), runsc (gVisor) with one
fresh process per batch (runsc's default), and runsc with a fresh process per input (why
that is not runsc's default; batch sizes up to 100).

TypeScript beside Python, in the same run: the same template's offline transformer in
TypeScript, compiled once by tsc in the sandbox (timed), then its JavaScript under QuickJS
(each input a fresh QuickJS runtime, sandbox/qjsrun.c) in runc's and runsc's default modes, batch sizes 1 to 100,
with its per-input cost at batch 100 against Python's in the same mode, and its batch of 1
against a bare container run of the same JavaScript job.

    python -m benchmarks.sandbox [--quick] [--image IMAGE]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from typing import Any

from agents.generators.offline import metric_code_for
from agents.generators.offline_ts import metric_code_ts
from demo_api.github import repository
from sandbox.executor import IPC_SYSCTLS, SandboxExecutor
from sandbox.limits import ProcessPer, Runtime
from sandbox.protocol import Language
from templates import get_template
from tests.conftest import sandbox_limits

MODES: list[tuple[Runtime, ProcessPer, list[int]]] = [
    ("runc", "input", [1, 10, 100, 1000]),
    ("runsc", "batch", [1, 10, 100, 1000]),
    ("runsc", "input", [1, 10, 100]),
]
TS_MODES: list[tuple[Runtime, ProcessPer, list[int]]] = [
    ("runc", "input", [1, 10, 100]),
    ("runsc", "batch", [1, 10, 100]),
]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


# The executor's hardening, which the harness checks before it runs anything.
HARDENING = [
    *("--network", "none", "--log-driver", "none", "--read-only", "--cap-drop", "ALL"),
    *("--user", "10001:10001", "--security-opt", "no-new-privileges", "--ipc", "none"),
    *[arg for key, value in IPC_SYSCTLS.items() for arg in ("--sysctl", f"{key}={value}")],
]


def bare_docker_run(
    image: str, runtime: str, code: str, payload: dict[str, Any], language: Language = "python"
) -> float:
    """One ``docker run --rm -i`` doing the same one-input job through the same harness,
    with the hardening the harness checks (so it runs the input)."""
    header = json.dumps(
        {
            "code": code,
            "entry": "transform",
            "language": language,
            "count": 1,
            "limits": {
                "input_timeout_s": 5,
                "input_memory_mb": 128,
                "output_limit_bytes": 8 << 20,
                "print_limit_bytes": 1 << 20,
            },
        }
    ).encode()
    body = json.dumps({"args": [payload, {"fetched_at": "2025-01-01T00:00:00+00:00"}]}).encode()
    request = b"%d\n%s%d\n%s" % (len(header), header, len(body), body)
    start = time.perf_counter()
    done = subprocess.run(
        ["docker", "run", "--rm", "-i", "--runtime", runtime, *HARDENING, image],
        input=request,
        capture_output=True,
        check=True,
    )
    elapsed = time.perf_counter() - start
    if b'"ok": true' not in done.stdout and b'"ok":true' not in done.stdout:
        raise RuntimeError(f"baseline run failed: {done.stdout[-500:]!r}")
    return elapsed


def measure(
    executor: SandboxExecutor,
    code: str,
    payloads: list[dict[str, Any]],
    config: dict[str, Any],
    size: int,
    reps: int,
    baseline_p50: float,
    language: Language = "python",
) -> dict[str, Any]:
    latencies = []
    for _ in range(reps):
        inputs = [(payloads[i % len(payloads)], config) for i in range(size)]
        start = time.perf_counter()
        results = executor.run_batch(code, "transform", inputs, language=language)
        latencies.append(time.perf_counter() - start)
        failed = [r.error for r in results if r.error is not None]
        if failed:
            raise RuntimeError(f"batch of {size}: {failed[:3]}")
    p50 = statistics.median(latencies)
    return {
        "repetitions": reps,
        "batch_p50_s": round(p50, 4),
        "batch_p95_s": round(percentile(latencies, 0.95), 4),
        "per_input_s": round(p50 / size, 5),
        "per_input_vs_one_runc_container_per_input": round(baseline_p50 / (p50 / size), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--image", help="sandbox image (default: the settings')")
    args = parser.parse_args()
    overrides = {"image": args.image} if args.image else {}
    image = sandbox_limits(**overrides).image
    code = metric_code_for(get_template("github-repo-stars"))
    now = datetime.now(UTC)
    payloads = [repository("octocat", f"repo-{n}", now) for n in range(1000)]
    config = {"fetched_at": now.isoformat()}
    runs = 5 if args.quick else 15
    repetitions = {1: runs, 10: max(3, runs // 2), 100: 3 if args.quick else 5}
    repetitions[1000] = 1 if args.quick else 3

    baselines: dict[str, dict[str, Any]] = {}
    for runtime in ("runc", "runsc"):
        bare_docker_run(image, runtime, code, payloads[0])  # warm the image cache
        times = [bare_docker_run(image, runtime, code, payloads[n]) for n in range(runs)]
        baselines[runtime] = {
            "what": f"docker run --rm -i --network none --runtime {runtime} (CLI), same image,"
            " same one-input job",
            "runs": runs,
            "p50_s": round(statistics.median(times), 4),
            "p95_s": round(percentile(times, 0.95), 4),
        }
    baseline_p50 = baselines["runc"]["p50_s"]

    modes: dict[str, Any] = {}
    for runtime, process_per, sizes in MODES:
        limits = sandbox_limits(**overrides, runtime=runtime, process_per=process_per)
        executor = SandboxExecutor(limits)
        executor.run_batch(code, "transform", [(payloads[0], config)])  # warm
        modes[f"{runtime}, process per {process_per}"] = {
            str(size): measure(
                executor, code, payloads, config, size, repetitions[size], baseline_p50
            )
            for size in sizes
        }
        executor.close()

    typescript = measure_typescript(image, overrides, payloads, config, runs, repetitions, modes)

    def ratio(mode: str, size: str) -> float:
        return float(modes[mode][size]["per_input_vs_one_runc_container_per_input"])

    report = {
        "benchmark": "sandbox",
        "measured_at": now.isoformat(),
        "image": image,
        "baselines": baselines,
        "modes": modes,
        "targets": {
            "runc_batch_100_per_input_at_least_20x_cheaper": ratio("runc, process per input", "100")
            >= 20,
            "runsc_batch_100_per_input_at_least_20x_cheaper": ratio(
                "runsc, process per batch", "100"
            )
            >= 20,
            "runc_batch_1_vs_bare_runc_run": round(
                modes["runc, process per input"]["1"]["batch_p50_s"] / baseline_p50, 2
            ),
            "runsc_batch_1_vs_bare_runsc_run": round(
                modes["runsc, process per batch"]["1"]["batch_p50_s"] / baselines["runsc"]["p50_s"],
                2,
            ),
        },
        "typescript": typescript,
        "worker_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")


def measure_typescript(
    image: str,
    overrides: dict[str, Any],
    payloads: list[dict[str, Any]],
    config: dict[str, Any],
    runs: int,
    repetitions: dict[int, int],
    python_modes: dict[str, Any],
) -> dict[str, Any]:
    """The TypeScript twin: tsc once (timed), then its JavaScript in each default mode."""
    source = metric_code_ts(get_template("github-repo-stars"))
    compiler = SandboxExecutor(sandbox_limits(**overrides, runtime="runc"))
    start = time.perf_counter()
    [compiled] = compiler.run_batch(source, "MetricTransform", [()], language="typescript")
    compile_s = time.perf_counter() - start
    compiler.close()
    if compiled.error is not None or not compiled.value.get("javascript"):
        raise RuntimeError(f"tsc failed: {compiled.error or compiled.value}")
    javascript = compiled.value["javascript"]
    bare: dict[str, Any] = {}
    for runtime in ("runc", "runsc"):
        bare_docker_run(image, runtime, javascript, payloads[0], "javascript")
        times = [
            bare_docker_run(image, runtime, javascript, payloads[n], "javascript")
            for n in range(runs)
        ]
        bare[runtime] = {"runs": runs, "p50_s": round(statistics.median(times), 4)}
    modes: dict[str, Any] = {}
    targets: dict[str, Any] = {}
    for runtime, process_per, sizes in TS_MODES:
        limits = sandbox_limits(**overrides, runtime=runtime, process_per=process_per)
        executor = SandboxExecutor(limits)
        executor.run_batch(javascript, "transform", [(payloads[0], config)], language="javascript")
        name = f"{runtime}, process per {process_per}"
        modes[name] = {
            str(size): measure(
                executor,
                javascript,
                payloads,
                config,
                size,
                repetitions[size],
                bare[runtime]["p50_s"],
                "javascript",
            )
            for size in sizes
        }
        executor.close()
        python_100 = python_modes[name]["100"]["per_input_s"]
        ts_100 = modes[name]["100"]["per_input_s"]
        targets[f"{runtime}_per_input_at_100_vs_python"] = round(ts_100 / python_100, 2)
        targets[f"{runtime}_batch_1_vs_bare_{runtime}_run"] = round(
            modes[name]["1"]["batch_p50_s"] / bare[runtime]["p50_s"], 2
        )
    return {
        "tsc_compile_s": round(compile_s, 2),
        "bare_javascript_runs": bare,
        "modes": modes,
        "targets (issue 16: per input at 100 <= 1.5x Python's, batch 1 <= 1.3x bare)": targets,
    }


if __name__ == "__main__":
    main()
