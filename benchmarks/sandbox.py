"""Sandbox benchmark: the batched executor against one container per input.

Runs on the real Docker engine with the real sandbox image and the github-repo-stars
transformer over real-shaped payloads. Prints one JSON document: per batch size (1, 10,
100, 1000) the batch latency p50/p95 and the per-input cost, next to the baseline measured
in the same run (a bare ``docker run --rm`` of the same image doing the same work for one
input, via the docker CLI), the ratios the targets are stated in, and the process's peak
memory (this process plays the worker).

    python -m benchmarks.sandbox [--quick]
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
from demo_api.github import repository
from sandbox.executor import SandboxExecutor
from sandbox.limits import SandboxLimits
from templates import get_template


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def bare_docker_run(image: str, code: str, payload: dict[str, Any]) -> float:
    """One ``docker run --rm -i`` doing the same one-input job through the same harness."""
    header = json.dumps(
        {
            "code": code,
            "entry": "transform",
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
        ["docker", "run", "--rm", "-i", "--network", "none", "--log-driver", "none", image],
        input=request,
        capture_output=True,
        check=True,
    )
    elapsed = time.perf_counter() - start
    if b'"ok": true' not in done.stdout and b'"ok":true' not in done.stdout:
        raise RuntimeError(f"baseline run failed: {done.stdout[-500:]!r}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = parser.parse_args()
    limits = SandboxLimits()
    executor = SandboxExecutor(limits)
    code = metric_code_for(get_template("github-repo-stars"))
    now = datetime.now(UTC)
    payloads = [repository("octocat", f"repo-{n}", now) for n in range(1000)]
    config = {"fetched_at": now.isoformat()}

    executor.run_batch(code, "transform", [(payloads[0], config)])  # warm the image cache
    bare_docker_run(limits.image, code, payloads[0])

    runs = 5 if args.quick else 15
    baseline = [bare_docker_run(limits.image, code, payloads[n % 1000]) for n in range(runs)]
    baseline_p50 = statistics.median(baseline)

    repetitions = {
        1: runs,
        10: max(3, runs // 2),
        100: 3 if args.quick else 5,
        1000: 1 if args.quick else 3,
    }
    sizes: dict[str, Any] = {}
    for size, reps in repetitions.items():
        latencies = []
        for _ in range(reps):
            inputs = [(payloads[i % 1000], config) for i in range(size)]
            start = time.perf_counter()
            results = executor.run_batch(code, "transform", inputs)
            latencies.append(time.perf_counter() - start)
            failed = [r.error for r in results if r.error is not None]
            if failed:
                raise RuntimeError(f"batch of {size}: {failed[:3]}")
        p50 = statistics.median(latencies)
        sizes[str(size)] = {
            "repetitions": reps,
            "batch_p50_s": round(p50, 4),
            "batch_p95_s": round(percentile(latencies, 0.95), 4),
            "per_input_s": round(p50 / size, 5),
            "per_input_vs_one_container_per_input": round(baseline_p50 / (p50 / size), 1),
        }
    executor.close()
    report = {
        "benchmark": "sandbox",
        "measured_at": now.isoformat(),
        "baseline": {
            "what": "docker run --rm -i --network none (CLI), same image, same one-input job",
            "runs": runs,
            "p50_s": round(baseline_p50, 4),
            "p95_s": round(percentile(baseline, 0.95), 4),
        },
        "batched": sizes,
        "targets": {
            "batch_100_per_input_at_least_20x_cheaper": sizes["100"][
                "per_input_vs_one_container_per_input"
            ]
            >= 20,
            "batch_1_at_most_1.3x_bare_docker_run": sizes["1"]["batch_p50_s"] <= 1.3 * baseline_p50,
            "batch_1_vs_bare_docker_run": round(sizes["1"]["batch_p50_s"] / baseline_p50, 2),
        },
        "worker_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
