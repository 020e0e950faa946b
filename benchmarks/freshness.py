"""Freshness: how long after a ``refresh_metric`` command its chart config arrives, on an
idle worker, with the stages' old fixed batch window and with adaptive batching.

A real worker (subprocess, from source) on the shared Kafka and TimescaleDB (its own
migrated database, prefixed topics, the demo API, the sandbox on the Docker engine). A few
demo metrics (``github-repo-stars``) are created by commands, each placed on a dashboard,
and their first chart configs awaited (``manual`` metrics: no scheduled poll interferes).
Then, for each batching mode in turn, in ``--rounds`` alternations
(``METRICLOOM_STAGE_BATCHING=fixed``: faust's ``noack_take``, which waits the whole
``METRICLOOM_STAGE_BATCH_WINDOW_S`` at every hop, as before; ``adaptive``: ``linger_take``,
streams/batching.py), a worker is started and ``--refreshes`` times a ``refresh_metric``
is produced on the organisation's commands topic, one at a time, the metrics in turn, with
``--idle`` seconds of quiet between them: the time from just before the command is
produced to the moment the chart config of that metric's dashboard chart is received on
``chart-configs.<org>`` (only a config produced after the command counts).

Every hop is timed too, from the records' broker timestamps (producer create time) on the
topics between: ingress (``commands.<org>`` → ``command-inbox``), command stage (→
``poll-due``), fetch (→ ``raw-payloads``), transform (→ ``points``), write (→
``metric-updated``), chart (→ ``chart-configs``), and the subscriber's receipt.

Three settings (``MODES``): ``before`` (fixed window, no warm sandbox pool), ``pool`` (the fixed
window, the opt-in warm pool) and ``after`` (adaptive batching and the warm pool).

With ``--load N`` (10,000: the load benchmark's set-up), each setting is then measured
once more under load: a worker with ``benchmarks.load``'s settings, ``N`` frequent-tier
metrics falling due across ``--spread`` seconds (each setting its own ``N``), and
``--refreshes`` refreshes sent while they are polled, ``--idle`` seconds apart without
waiting for each other (one per charted metric: as many are charted). Beside the latencies: the polls per second of the
load (its points' fetch times, first to last) and how long after the first fell due all
``N`` points were stored. Hops are not timed under load (the collector would have to read
every load record).

Prints one JSON document, ``before``, ``pool`` and ``after`` side by side (p50, p95, max, hop
medians, and ``under_load`` with ``--load``); progress goes to stderr.

    python -m benchmarks.freshness [--refreshes 20] [--metrics 3] [--idle 1.0] [--rounds 2]
        [--load 10000] [--spread 60]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from pydantic import SecretStr

from benchmarks.load import LOAD_SETTINGS, seed
from schema.models import PollFrequency
from streams.messages import CreateDashboardMetric, CreateMetric, RefreshMetric
from streams.security import aiokafka_auth
from streams.settings import Settings
from streams.topics import topic_name
from tests.conftest import (
    WorkerProcess,
    admin_kafka,
    demo_provider_urls,
    migrated_database,
    running_demo_api,
)
from tests.integration.conftest import prepare_cluster, unprepare_cluster

ORG = "bench"
HOPS = [
    ("ingress", "commands", "command-inbox"),
    ("command", "command-inbox", "poll-due"),
    ("fetch", "poll-due", "raw-payloads"),
    ("transform", "raw-payloads", "points"),
    ("write", "points", "metric-updated"),
    ("chart", "metric-updated", "chart-configs"),
]
"""Each stage hop: its name, the topic it reads, the topic its record for us lands on."""


def progress(message: str) -> None:
    print(f"[freshness {datetime.now(UTC):%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@dataclass
class Seen:
    """One record as the collector saw it."""

    timestamp_ms: int  # the producer's create time
    received: float  # time.monotonic() when the collector got it
    received_ms: int  # and the wall clock then, comparable with timestamp_ms
    key: str
    value: dict[str, Any]


@dataclass
class Cluster:
    """Produce commands as the admin; collect every record of the pipeline's topics."""

    settings: Settings
    hops: bool = True
    """Collect the topics between the stages too (to time each hop)."""
    records: dict[str, list[Seen]] = field(default_factory=lambda: defaultdict(list))
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def names(self) -> dict[str, str]:
        tenant = {"commands", "command-results", "chart-configs"}
        bases = {base for _, a, b in HOPS for base in (a, b)} | {"command-results"}
        if not self.hops:
            bases = tenant
        return {
            topic_name(self.settings, base, ORG if base in tenant else None): base for base in bases
        }

    async def __aenter__(self) -> Cluster:
        auth = aiokafka_auth(self.settings)
        names = self.names()
        self.consumer = AIOKafkaConsumer(
            *names,
            bootstrap_servers=self.settings.kafka_bootstrap,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            group_id=None,
            fetch_max_wait_ms=50,
            **auth,
        )
        self.producer = AIOKafkaProducer(
            bootstrap_servers=self.settings.kafka_bootstrap, acks="all", linger_ms=0, **auth
        )
        await self.consumer.start()
        await self.producer.start()

        async def collect() -> None:
            while True:
                batch = await self.consumer.getmany(timeout_ms=1000)
                now, wall_ms = time.monotonic(), int(time.time() * 1000)
                for tp, messages in batch.items():
                    for m in messages:
                        value = json.loads(m.value or b"null")
                        key = (m.key or b"").decode()
                        self.records[names[tp.topic]].append(
                            Seen(
                                m.timestamp,
                                now,
                                wall_ms,
                                key,
                                value if isinstance(value, dict) else {},
                            )
                        )
                if batch:
                    self.arrived.set()

        self.collector = asyncio.create_task(collect())
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.collector.cancel()
        await self.producer.stop()
        await self.consumer.stop()

    async def wait_for(self, base: str, predicate: Any, timeout: float) -> Seen:
        deadline = time.monotonic() + timeout
        while True:
            for seen in self.records[base]:
                if predicate(seen):
                    return seen
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no matching record on {base} within {timeout} s")
            self.arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.arrived.wait(), remaining)

    async def command(self, command: Any) -> int:
        """Produce a command on the organisation's topic; the record's timestamp (ms)."""
        meta = await self.producer.send_and_wait(
            topic_name(self.settings, "commands", ORG), command.to_bytes(), key=ORG.encode()
        )
        return int(meta.timestamp)

    async def answered(self, command: Any, timeout: float = 120) -> dict[str, Any]:
        await self.command(command)
        seen = await self.wait_for(
            "command-results",
            lambda s: s.value.get("command_id") == str(command.command_id),
            timeout,
        )
        if seen.value.get("status") != "accepted":
            raise RuntimeError(f"command not accepted: {seen.value}")
        return seen.value


async def register(cluster: Cluster, count: int) -> list[tuple[str, str]]:
    """``count`` demo metrics with a dashboard chart each, their first chart configs in:
    (metric id, dashboard metric id) pairs."""
    charts = []
    for n in range(count):
        create = CreateMetric(
            organization_id=ORG,
            template_id="github-repo-stars",
            params={"OWNER": "metricloom", "REPO": f"freshness-{n}"},
            # polled only when refreshed: no scheduled poll's chart config is taken for one
            # a refresh caused
            poll_frequency=PollFrequency.MANUAL,
        )
        metric_id = str((await cluster.answered(create))["metric_id"])
        place = CreateDashboardMetric(
            organization_id=ORG, dashboard_id="freshness", metric_id=metric_id, chart_type="line"
        )
        dm_id = str((await cluster.answered(place))["dashboard_metric_id"])
        charts.append((metric_id, dm_id))
    for _, dm_id in charts:
        await cluster.wait_for(
            "chart-configs", lambda s, dm=dm_id: s.key == dm, 180
        )  # first chart configs
    progress(f"{count} metrics charted")
    return charts


def hop_times(
    cluster: Cluster, metric_id: str, command: RefreshMetric, sent_ms: int
) -> dict[str, float]:
    """One refresh's hops in ms, from the first record of each topic for it after the
    command (records of other metrics and earlier refreshes left out)."""
    at: dict[str, int] = {"commands": sent_ms}

    def first(base: str, match: Any) -> int | None:
        found = [
            s.timestamp_ms for s in cluster.records[base] if s.timestamp_ms >= sent_ms and match(s)
        ]
        return min(found) if found else None

    wanted = str(command.command_id)
    stamps = {
        "command-inbox": first("command-inbox", lambda s: wanted in (s.value.get("value") or "")),
        "poll-due": first("poll-due", lambda s: s.key == metric_id),
        "raw-payloads": first("raw-payloads", lambda s: s.value.get("metric_id") == metric_id),
        "points": first("points", lambda s: s.key == metric_id),
        "metric-updated": first("metric-updated", lambda s: s.key == metric_id),
        "chart-configs": first("chart-configs", lambda s: s.value.get("metric_id") == metric_id),
    }
    at |= {base: stamp for base, stamp in stamps.items() if stamp is not None}
    hops = {name: float(at[b] - at[a]) for name, a, b in HOPS if a in at and b in at}
    configs = [
        s
        for s in cluster.records["chart-configs"]
        if s.timestamp_ms >= sent_ms and s.value.get("metric_id") == metric_id
    ]
    if configs:
        config = min(configs, key=lambda s: s.timestamp_ms)
        hops["subscriber"] = float(config.received_ms - config.timestamp_ms)
    return hops


async def refreshes(
    cluster: Cluster, charts: list[tuple[str, str]], count: int, idle_s: float
) -> tuple[list[float], dict[str, list[float]]]:
    latencies: list[float] = []
    pending: list[tuple[str, RefreshMetric, int]] = []
    for n in range(count):
        metric_id, dm_id = charts[n % len(charts)]
        await asyncio.sleep(idle_s)  # an idle pipeline: every stage waiting for work
        command = RefreshMetric(organization_id=ORG, metric_id=uuid.UUID(metric_id))
        started = time.monotonic()
        wall_ms = int(time.time() * 1000)
        sent_ms = await cluster.command(command)
        since = min(sent_ms, wall_ms)
        seen = await cluster.wait_for(
            "chart-configs",
            lambda s, dm=dm_id, t=since: s.key == dm and s.timestamp_ms >= t,
            120,
        )
        latency = (seen.received - started) * 1000
        latencies.append(latency)
        pending.append((metric_id, command, sent_ms))
        progress(f"refresh {n + 1}/{count}: {latency:.0f} ms")
    await asyncio.sleep(2)  # the collector catches up with the topics between
    hops: dict[str, list[float]] = defaultdict(list)
    for metric_id, command, sent_ms in pending:
        for name, ms in hop_times(cluster, metric_id, command, sent_ms).items():
            hops[name].append(ms)
    return latencies, hops


async def overlapping_refreshes(
    cluster: Cluster, charts: list[tuple[str, str]], spacing_s: float
) -> list[float]:
    """A refresh of each chart's metric, ``spacing_s`` apart, each sent whether or not the
    ones before have arrived (people do not wait for each other under load); every
    latency as its chart config arrives (one refresh per chart: no config can be taken
    for another refresh's)."""

    async def one(metric_id: str, dm_id: str) -> float:
        command = RefreshMetric(organization_id=ORG, metric_id=uuid.UUID(metric_id))
        started = time.monotonic()
        since = min(await cluster.command(command), int(time.time() * 1000))
        seen = await cluster.wait_for(
            "chart-configs", lambda s: s.key == dm_id and s.timestamp_ms >= since, 1800
        )
        latency = (seen.received - started) * 1000
        progress(f"refresh of {metric_id[:8]}: {latency:.0f} ms")
        return latency

    tasks = []
    for metric_id, dm_id in charts:
        tasks.append(asyncio.create_task(one(metric_id, dm_id)))
        await asyncio.sleep(spacing_s)
    return list(await asyncio.gather(*tasks))


def summary(latencies: list[float], hops: dict[str, list[float]]) -> dict[str, Any]:
    return {
        "refreshes": len(latencies),
        "p50_ms": round(percentile(latencies, 0.5), 1),
        "p95_ms": round(percentile(latencies, 0.95), 1),
        "max_ms": round(max(latencies), 1),
        "mean_ms": round(statistics.fmean(latencies), 1),
        "hop_median_ms": {
            name: round(statistics.median(hops[name]), 1)
            for name in [*(hop for hop, _, _ in HOPS), "subscriber"]
            if hops.get(name)
        },
        "latencies_ms": [round(x, 1) for x in latencies],
    }


MODES: dict[str, dict[str, str]] = {
    # the settings before this work: the fixed window and a container started per batch
    "before": {"METRICLOOM_STAGE_BATCHING": "fixed", "METRICLOOM_SANDBOX__WARM_POOL": "0"},
    # the fixed window (the default), containers started ahead by the warm pool (opt-in)
    "pool": {"METRICLOOM_STAGE_BATCHING": "fixed", "METRICLOOM_SANDBOX__WARM_POOL": "2"},
    # adaptive batching (opt-in) with the warm pool
    "after": {"METRICLOOM_STAGE_BATCHING": "adaptive", "METRICLOOM_SANDBOX__WARM_POOL": "2"},
}


async def under_load(
    settings: Settings,
    db_url: str,
    cluster: Cluster,
    charts: list[tuple[str, str]],
    label: str,
    count: int,
    idle_s: float,
    load: int,
    spread_s: float,
) -> dict[str, Any]:
    """One setting's refreshes while ``load`` metrics fall due: latencies, the load's polls
    per second and when all its points were stored."""
    run_id = settings.topic_prefix.strip("-")
    log = Path(f"/tmp/metricloom-{run_id}-{label}-load.log")
    worker = WorkerProcess(settings, log, MODES[label] | LOAD_SETTINGS)
    try:
        await asyncio.to_thread(worker.wait_ready)
        await refreshes(cluster, charts[:1], 1, 0.0)  # warm, before the clock
        start = datetime.now(UTC) + timedelta(seconds=5)
        await asyncio.to_thread(seed, db_url, load, start, spread_s, f"{label}-")
        progress(f"under load, {label}: {load} metrics due from {start:%H:%M:%S} (log {log})")
        await asyncio.sleep(max(0.0, (start - datetime.now(UTC)).total_seconds()))
        times = await overlapping_refreshes(cluster, charts[:count], idle_s)
        refreshed_at = datetime.now(UTC)
        stored = await _stored(db_url, f"repo-{label}-%", load, deadline_s=1800)
        async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
            await conn.execute(  # not due again while the next setting is measured
                "UPDATE metrics SET next_poll_at = now() + interval '1 day'"
                " WHERE params->>'REPO' LIKE %s",
                (f"repo-{label}-%",),
            )
    finally:
        await asyncio.to_thread(worker.stop, 60)
    first, last, points, done = stored
    return {
        **summary(times, {}),
        "load_metrics": load,
        "load_points_stored": points,
        "load_polls_per_second": round(points / max(1e-9, (last - first).total_seconds()), 1),
        "seconds_from_first_due_to_all_points": round((done - start).total_seconds(), 1),
        "refreshes_ended_before_load_stored": refreshed_at < done,
    }


async def _stored(
    db_url: str, repos: str, expected: int, deadline_s: float
) -> tuple[datetime, datetime, int, datetime]:
    """Wait for ``expected`` points of the load metrics whose repository matches ``repos``:
    their first and last fetch times, how many there are, and when the last was seen."""
    query = (
        "SELECT min(p.ts), max(p.ts), count(*) FROM metric_data_points p"
        " JOIN metrics m ON m.id = p.metric_id WHERE m.params->>'REPO' LIKE %s"
    )
    deadline = time.monotonic() + deadline_s
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
        while True:
            cur = await conn.execute(query, (repos,))
            row = await cur.fetchone()
            assert row is not None
            if row[2] >= expected or time.monotonic() > deadline:
                return row[0], row[1], row[2], datetime.now(UTC)
            await asyncio.sleep(0.5)


async def run(
    count: int, metrics: int, idle_s: float, rounds: int, load: int = 0, spread_s: float = 60.0
) -> dict[str, Any]:
    run_id = uuid.uuid4().hex[:8]
    with (
        migrated_database(f"metricloom_fresh_{run_id}") as db_url,
        running_demo_api(5000 + 2 * len(MODES) * load) as demo,  # every setting's load
    ):
        settings = Settings(
            kafka=admin_kafka(),  # the local cluster's admin (a super user)
            topic_prefix=f"fresh-{run_id}-",
            topic_partitions=2,
            database_url=SecretStr(db_url),
            provider_urls=demo_provider_urls(demo),
        )
        await prepare_cluster(settings, [ORG])
        try:
            wanted = max(metrics, count) if load else metrics  # under load: one per refresh
            result, charts = await _measure(settings, run_id, count, wanted, idle_s, rounds)
            if load:
                async with Cluster(settings, hops=False) as cluster:
                    for label in MODES:
                        result[label]["under_load"] = await under_load(
                            settings, db_url, cluster, charts, label, count, idle_s, load, spread_s
                        )
                result["load_spread_s"] = spread_s
                result["load_settings"] = LOAD_SETTINGS
                result["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
            return result
        finally:
            await unprepare_cluster(settings)


async def _measure(
    settings: Settings, run_id: str, count: int, metrics: int, idle_s: float, rounds: int
) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """The idle rounds; the figures and the charts registered."""
    latencies: dict[str, list[float]] = defaultdict(list)
    hops: dict[str, dict[str, list[float]]] = {label: defaultdict(list) for label in MODES}
    charts: list[tuple[str, str]] = []
    async with Cluster(settings) as cluster:
        for round_ in range(rounds):  # the modes alternate: a busy spell hits both
            share = count // rounds + (1 if round_ < count % rounds else 0)
            for label, mode in MODES.items():
                log = Path(f"/tmp/metricloom-freshness-{run_id}-{label}-{round_}.log")
                worker = WorkerProcess(settings, log, mode)
                try:
                    await asyncio.to_thread(worker.wait_ready)
                    progress(f"round {round_ + 1}, {label}: worker ready ({mode}, log {log})")
                    if not charts:
                        charts = await register(cluster, metrics)
                    else:  # a new worker: one refresh to warm it before the clock
                        await refreshes(cluster, charts[:1], 1, 0.0)
                    times, hop = await refreshes(cluster, charts, share, idle_s)
                finally:
                    await asyncio.to_thread(worker.stop, 60)
                latencies[label] += times
                for name, values in hop.items():
                    hops[label][name] += values
    results = {
        label: {"settings": mode, **summary(latencies[label], hops[label])}
        for label, mode in MODES.items()
    }
    return {
        "benchmark": "freshness",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "what": "refresh_metric produced -> its chart config received on chart-configs.<org>",
        "metrics": metrics,
        "rounds": rounds,
        "idle_between_s": idle_s,
        "stage_batch_window_s": settings.stage_batch_window_s,
        "stage_linger_min_s": settings.stage_linger_min_s,
        "stage_batch_size": settings.stage_batch_size,
        "cpus": os.cpu_count(),
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        **results,
        "p50_pool_over_before": round(results["pool"]["p50_ms"] / results["before"]["p50_ms"], 3),
        "p50_after_over_before": round(results["after"]["p50_ms"] / results["before"]["p50_ms"], 3),
    }, charts


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--refreshes", type=int, default=20)
    parser.add_argument("--metrics", type=int, default=3)
    parser.add_argument("--idle", type=float, default=1.0, help="seconds between refreshes")
    parser.add_argument("--rounds", type=int, default=2, help="alternations of the modes")
    parser.add_argument("--load", type=int, default=0, help="metrics polled meanwhile (0: none)")
    parser.add_argument("--spread", type=float, default=60.0, help="the load falls due over")
    args = parser.parse_args()
    result = asyncio.run(
        run(args.refreshes, args.metrics, args.idle, max(1, args.rounds), args.load, args.spread)
    )
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
