"""How soon a started worker is ready: as shipped, and with Faust's own start, in one run.

Starts ``metricloom worker`` on the local cluster (a throwaway database and topic prefix,
the worker principal, one tenant), in alternating rounds of two variants:

* ``metricloom``: the worker as shipped (``streams/tables.py`` registers the tables, of
  which it declares none, at once);
* ``faust``: the same worker with Faust's own table-manager start, which waits one second
  for tables to be declared before the consumer subscribes (the baseline,
  ``benchmarks/faust_worker.py``).

Each start is timed from the process's launch to its ``worker.ready`` log line, with the
milestones on the way read from the log's timestamps: ``imported_s`` (its first line,
``worker.starting``: Python's imports, the settings and the templates), ``faust_s`` (Faust
starting: topics checked, services built), ``joined_s`` (the consumer group joined).
Prints one JSON document: every start, and each variant's medians.

    python -m benchmarks.startup [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from pydantic import SecretStr

from streams.settings import Settings
from tests.conftest import WORKER_ARGS, WorkerProcess, admin_kafka, migrated_database
from tests.integration.conftest import prepared_cluster

MILESTONES = {
    "imported_s": '"event": "worker.starting"',
    "faust_s": "[^Worker]: Starting",
    "joined_s": "Joined group",
    "ready_s": '"event": "worker.ready"',
}
VARIANTS = {"metricloom": WORKER_ARGS, "faust": ("-m", "benchmarks.faust_worker")}


def _when(line: str) -> float | None:
    """A log line's time: structlog's ISO stamp (UTC) or Faust's ``[date time,ms]``
    (local time)."""
    stamp = re.search(r'"timestamp": "([^"]+)Z"', line)
    if stamp:
        return datetime.fromisoformat(stamp.group(1)).replace(tzinfo=UTC).timestamp()
    faust = re.match(r"\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+)\]", line)
    if faust:
        return datetime.strptime(faust.group(1), "%Y-%m-%d %H:%M:%S,%f").astimezone().timestamp()
    return None


def start_once(settings: Settings, variant: str, log: Path) -> dict[str, Any]:
    """One worker started, timed to ready from its log's stamps, then stopped."""
    launched = time.time()
    worker = WorkerProcess(settings, log, args=VARIANTS[variant])
    try:
        worker.wait_ready(timeout=60)
    finally:
        worker.stop()
    marks: dict[str, Any] = {"variant": variant}
    for line in log.read_text(errors="replace").splitlines():
        for name, needle in MILESTONES.items():
            when = _when(line) if needle in line and name not in marks else None
            if when is not None:
                marks[name] = round(when - launched, 3)
    return marks


def medians(starts: list[dict[str, Any]], variant: str) -> dict[str, float]:
    """The variant's median time to each milestone its logs showed."""
    mine = [s for s in starts if s["variant"] == variant]
    return {
        name: round(statistics.median(s[name] for s in mine if name in s), 2)
        for name in MILESTONES
        if any(name in s for s in mine)
    }


def run(rounds: int) -> dict[str, Any]:
    run_id = uuid.uuid4().hex[:8]
    starts: list[dict[str, Any]] = []
    with (
        migrated_database(f"metricloom_startup_{run_id}") as url,
        TemporaryDirectory(prefix="metricloom-startup-") as workdir,
    ):
        settings = Settings(
            kafka=admin_kafka(),
            topic_prefix=f"startup-{run_id}-",
            topic_partitions=2,
            database_url=SecretStr(url),
        )
        with prepared_cluster(settings, ["bench"]):
            for round_ in range(rounds):
                for variant in VARIANTS:
                    log = Path(workdir) / f"{variant}-{round_}.log"
                    starts.append(start_once(settings, variant, log))
    by_variant = {variant: medians(starts, variant) for variant in VARIANTS}
    return {
        "rounds": rounds,
        "medians_s": by_variant,
        "ready_saved_s": round(
            by_variant["faust"]["ready_s"] - by_variant["metricloom"]["ready_s"], 2
        ),
        "starts": starts,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(json.dumps(run(args.rounds), indent=1))


if __name__ == "__main__":
    main()
