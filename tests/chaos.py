"""The fault suite: the real cluster under faults, and an oracle that counts what went wrong.

``python -m tests.chaos`` (``make chaos``) runs the full suite and prints JSON;
``tests/integration/test_chaos.py`` runs a shorter one inside ``make test``.

Set-up, on the real broker, database and Docker engine (its own database, topic prefix and
demo API): several worker processes; metrics of three templates created through the
commands topic (current values, a year of weekly history, 90 days of daily history in
three chunks), a chart for a share of them, and one scheduled poll each falling due during
the run; refresh commands keep coming throughout.

Faults, one after the other: SIGKILL of a random worker (restarted after a moment) several
times, a broker restart, a database restart, the Docker engine away for longer than the
old retry bound (the workers reach it through a socket this module can cut), poison
records on the commands topic, and with three workers one killed while the others work.

Oracle, once the cluster is quiet again:

* every expected point stored, exactly once (points per metric from its polls and
  history: none missing, none extra);
* every rollup equal to a recomputation from the points;
* every command with exactly one result;
* no metric polled more often than its polls (the demo API's own request counts), except
  a request that was in flight when its worker died (the ledger counts those: refetches);
* consumer lag 0 on every stage's topic;
* every chart's latest config published after the last fault;
* no dead letter but those of the poison records.

The JSON says what was injected, what was lost, duplicated and mismatched, and how long the
cluster took to answer a command again after each fault (and a killed worker to be ready).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from psycopg import sql
from psycopg.rows import dict_row
from pydantic import SecretStr

from schema import rollups
from schema.models import PollFrequency
from streams.admin import admin_client, partitions
from streams.client import send_command
from streams.messages import (
    CommandBase,
    CreateDashboardMetric,
    CreateMetric,
    RefreshMetric,
    TenantCommand,
)
from streams.security import aiokafka_auth
from streams.settings import Settings
from streams.topics import topic_name
from tests.conftest import (
    ROOT,
    WorkerProcess,
    admin_kafka,
    demo_provider_urls,
    migrated_database,
    running_demo_api,
)
from tests.integration.conftest import prepare_cluster, unprepare_cluster

ORG = "chaos"
STAGE_TOPICS = (
    "command-inbox",
    "operator-commands",
    "poll-due",
    "raw-payloads",
    "points",
    "metric-updated",
    "codegen-requests",
)
"""The topics the stages' group consumes (the ingress's group consumes ``commands.chaos``)."""


@dataclass(frozen=True)
class ChaosConfig:
    stars: int = 150
    """Current-value metrics (github-repo-stars)."""
    weekly_history: int = 20
    """Metrics with a year of weekly history (github-commit-activity)."""
    daily_history: int = 10
    """Metrics with 90 days of history in three chunks (posthog-events)."""
    charted: float = 0.3
    """Share of metrics with a chart."""
    workers: int = 3
    kills: int = 5
    outage_s: float = 40.0
    """The Docker engine away for this long (the old retry bound was 30 s)."""
    window_s: float = 90.0
    """Scheduled polls fall due over this window, while the faults happen."""
    refresh_every_s: float = 1.0
    settle_timeout_s: float = 600.0
    """How long the cluster may take to drain after the last fault. The full suite's 54
    charts are written in TypeScript (the default since 2026-11-29: tsc in the sandbox,
    10 to 15 s a chart under this load), and their generation settles about 5 minutes
    after the faults (310 s measured, 2026-11-29); 240 s, enough for Python, timed out."""
    seed: int = 7
    stage_batching: str = "fixed"
    """The workers' METRICLOOM_STAGE_BATCHING (``fixed``, the default, or ``adaptive``)."""
    warm_pool: int = 0
    """The workers' METRICLOOM_SANDBOX__WARM_POOL."""


@dataclass
class Report:
    faults: list[dict[str, Any]] = field(default_factory=list)
    metrics: int = 0
    commands: int = 0
    expected_points: int = 0
    stored_points: int = 0
    lost_points: int = 0
    duplicated_points: int = 0
    metrics_wrong: list[str] = field(default_factory=list)
    rollup_mismatches: int = 0
    commands_without_result: int = 0
    commands_with_several_results: int = 0
    """Commands answered with two different results (handled twice): a failure."""
    repeated_results: list[dict[str, Any]] = field(default_factory=list)
    """Every command whose result record is on the topic more than once. Identical copies
    are the at-least-once window (a worker killed after the broker took the result but
    before the command log marked it delivered sends the stored bytes again): reported,
    not a failure; consumers match results by command id."""
    polled_more_than_due: int = 0
    refetched_after_crash: int = 0
    lag: dict[str, int] = field(default_factory=dict)
    charts_stale: int = 0
    healthy_dead_letters: int = 0
    poison_dead_letters: int = 0
    restart_to_ready_s: list[float] = field(default_factory=list)
    settle_s: float = 0.0

    @property
    def ok(self) -> bool:
        return not (
            self.lost_points
            or self.duplicated_points
            or self.rollup_mismatches
            or self.commands_without_result
            or self.commands_with_several_results
            or self.polled_more_than_due
            or any(self.lag.values())
            or self.charts_stale
            or self.healthy_dead_letters
        )

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


# --- the Docker engine, behind a socket this module can cut -------------------------------


class SocketProxy:
    """A Unix socket forwarding to the Docker engine's. ``down()`` refuses new connections
    and cuts the open ones (a container being attached loses its stdin and removes itself);
    ``up()`` serves again."""

    def __init__(self, path: Path, target: str = "/var/run/docker.sock") -> None:
        self.path = path
        self.target = target
        self._server: socket.socket | None = None
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"unix://{self.path}"

    def up(self) -> None:
        with suppress(FileNotFoundError):
            self.path.unlink()
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(str(self.path))
        server.listen(64)
        self._server = server
        threading.Thread(target=self._accept, args=(server,), daemon=True).start()

    def down(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        with suppress(FileNotFoundError):
            self.path.unlink()
        with self._lock:
            for conn in list(self._open):
                with suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
                conn.close()
            self._open.clear()

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            engine = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            engine.connect(self.target)
            with self._lock:
                self._open.update({client, engine})
            for a, b in ((client, engine), (engine, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
            sink.shutdown(socket.SHUT_WR)
        except OSError:
            pass


# --- the run ------------------------------------------------------------------------------


@dataclass
class Expected:
    """What the oracle expects of one metric."""

    template: str
    path: str
    polls: int = 0
    charted: bool = False

    def points(self, days: tuple[date, date] | None = None) -> int:
        """Points this metric should have. A daily series (posthog-events) has one point per
        day: 90 days of history, and a poll on a later UTC day (the run crossed midnight)
        adds that day. So its stored span of days, when it is at least 90 and ends by today,
        is what it should hold: a missing or doubled day still shows as a difference."""
        if self.template == "github-commit-activity":
            return 52 + self.polls
        if self.template == "posthog-events":
            if days is not None:
                span = (days[1] - days[0]).days + 1
                if span >= 90 and days[1] <= datetime.now(UTC).date():
                    return span
            return 90
        return self.polls

    def requests(self) -> int:
        if self.template == "github-commit-activity":
            return self.polls  # + 1 history request, counted on its own path
        if self.template == "posthog-events":
            return self.polls + 3  # the same path for the three history chunks
        return self.polls


class Chaos:
    def __init__(self, config: ChaosConfig, workdir: Path) -> None:
        self.config = config
        self.workdir = workdir
        self.random = random.Random(config.seed)
        self.report = Report()
        self.workers: list[WorkerProcess | None] = []
        self.expected: dict[str, Expected] = {}
        self.setup_commands: set[str] = set()
        self.poison: list[tuple[int, int]] = []
        self.charts: dict[str, str] = {}
        self.last_fault_at = datetime.now(UTC)
        self.proxy = SocketProxy(workdir / "docker.sock")
        self.settings: Settings
        self.demo_url = ""

    # -- cluster -------------------------------------------------------------------------

    def start_worker(self, index: int) -> float:
        extra = {
            "METRICLOOM_SANDBOX__DOCKER_URL": self.proxy.url,
            "METRICLOOM_TOPIC_PARTITIONS": str(self.settings.topic_partitions),
            "METRICLOOM_DB_POOL_SIZE": "4",
            "METRICLOOM_KAFKA__GROUP_INSTANCE_ID": f"chaos-worker-{index}",
            "METRICLOOM_STAGE_BATCHING": self.config.stage_batching,
            "METRICLOOM_SANDBOX__WARM_POOL": str(self.config.warm_pool),
        }
        log = self.workdir / f"worker-{index}-{time.time_ns()}.log"
        started = time.monotonic()
        worker = WorkerProcess(self.settings, log, extra)
        worker.wait_ready(timeout=60)
        while len(self.workers) <= index:
            self.workers.append(None)
        self.workers[index] = worker
        return time.monotonic() - started

    def stop_all(self) -> None:
        for worker in self.workers:
            if worker is not None:
                worker.stop()

    async def command(self, command: CommandBase, timeout: float = 120) -> dict[str, Any]:
        result = await send_command(self.settings, command, timeout)
        return result.model_dump(mode="json")

    async def refresh(self, metric_id: str, timeout: float) -> bool:
        """A refresh command; True once answered. Whether it was accepted (one more poll
        of its metric) is read from the results at the end: a command the sender gave up
        on may still have been produced, and answered later."""
        command = RefreshMetric(organization_id=ORG, metric_id=uuid.UUID(metric_id))
        try:
            await self.command(command, timeout=timeout)
        except Exception:
            return False
        return True

    async def probe(self, started: float, give_up_s: float = 300) -> float:
        """Seconds from ``started`` until a command is answered again (a cluster that does
        not answer within ``give_up_s`` fails the run rather than hanging it)."""
        canary = next(iter(self.expected))
        while not await self.refresh(canary, timeout=10):
            if time.monotonic() - started > give_up_s:
                raise TimeoutError(f"no command answered {give_up_s} s after the fault")
            await asyncio.sleep(0.5)
        return time.monotonic() - started

    # -- set-up --------------------------------------------------------------------------

    async def warm_up(self, conn: Any) -> None:
        """Each template's transformer written before the run, from metrics of its own
        (generation samples a metric's endpoint: that request is not a poll)."""
        templates = {
            "github-repo-stars": {"OWNER": "chaos", "REPO": "warm-up"},
            "github-commit-activity": {"OWNER": "chaos", "REPO": "warm-up"},
            "posthog-events": {"PROJECT_ID": "9999"},  # PostHog project ids are numbers
        }
        for template, params in templates.items():
            command = CreateMetric(
                organization_id=f"{ORG}-warm-up",
                template_id=template,
                params=params,
                poll_frequency=PollFrequency.MANUAL,
            )
            await send_command(self.settings, command, 120)
        for _ in range(240):
            cur = await conn.execute(
                "SELECT count(*) AS n FROM metric_transformers WHERE template_id = ANY(%s)",
                (list(templates),),
            )
            if (await cur.fetchone())["n"] == len(templates):
                return
            await asyncio.sleep(0.5)
        raise TimeoutError("the templates' transformers were not written in 120 s")

    async def create_metrics(self) -> None:
        plan = [
            ("github-repo-stars", self.config.stars),
            ("github-commit-activity", self.config.weekly_history),
            ("posthog-events", self.config.daily_history),
        ]
        run = uuid.uuid4().hex[:6]
        project = uuid.uuid4().int % 10**6  # PostHog project ids are numbers
        creates: list[tuple[CreateMetric, str]] = []
        for template, count in plan:
            for n in range(count):
                if template == "posthog-events":
                    params, path = (
                        {"PROJECT_ID": f"{project}{n}"},
                        f"/posthog/api/projects/{project}{n}/query/",
                    )
                else:
                    repo = f"chaos-{run}-{n}"
                    params = {"OWNER": "chaos", "REPO": repo}
                    suffix = "/stats/participation" if template == "github-commit-activity" else ""
                    path = f"/github/repos/chaos/{repo}{suffix}"
                command = CreateMetric(  # manual until its one scheduled poll is set
                    organization_id=ORG,
                    template_id=template,
                    params=params,
                    poll_frequency=PollFrequency.MANUAL,
                )
                creates.append((command, path))
        results = await asyncio.gather(*(self.command(c) for c, _ in creates))
        for (command, path), result in zip(creates, results, strict=True):
            assert result["status"] == "accepted", result
            self.expected[result["metric_id"]] = Expected(command.template_id, path, polls=1)
        self.setup_commands = {str(c.command_id) for c, _ in creates}
        charted = self.random.sample(
            sorted(self.expected), int(len(self.expected) * self.config.charted)
        )
        places = [
            CreateDashboardMetric(
                organization_id=ORG,
                dashboard_id="chaos",
                metric_id=uuid.UUID(m),
                date_range_days=90 if self.expected[m].template == "posthog-events" else 30,
            )
            for m in charted
        ]
        for place, result in zip(
            places, await asyncio.gather(*(self.command(p) for p in places)), strict=True
        ):
            assert result["status"] == "accepted", result
            self.charts[result["dashboard_metric_id"]] = str(place.metric_id)
            self.expected[str(place.metric_id)].charted = True
        self.report.metrics = len(self.expected)

    async def schedule_polls(self, conn: Any) -> None:
        """One scheduled poll per metric, falling due across the window (the next one is a
        period later, after the run)."""
        start = datetime.now(UTC) + timedelta(seconds=5)
        for metric_id, expected in self.expected.items():
            due = start + timedelta(seconds=self.random.uniform(0, self.config.window_s))
            await conn.execute(
                "UPDATE metrics SET poll_frequency = 'frequent', next_poll_at = %s WHERE id = %s",
                (due, metric_id),
            )
            expected.polls += 1

    # -- faults --------------------------------------------------------------------------

    def note(self, what: str) -> None:
        """A progress line on stderr (pytest shows it when the test fails or times out)."""
        print(f"chaos {datetime.now(UTC):%H:%M:%S}: {what}", file=sys.stderr, flush=True)

    async def fault(self, name: str, action: Any) -> None:
        started = time.monotonic()
        self.last_fault_at = datetime.now(UTC)
        self.note(f"{name}: begins")
        detail = dict(await action() or {})
        self.note(f"{name}: done {detail}; probing")
        recovered = await self.probe(started)
        self.note(f"{name}: answered after {recovered:.1f} s")
        self.last_fault_at = datetime.now(UTC)
        if "back_s" in detail:  # how long the cluster took once the service was back
            detail["answered_after_back_s"] = round(recovered - detail["back_s"], 2)
        self.report.faults.append(
            {
                "fault": name,
                "at": self.last_fault_at.isoformat(timespec="seconds"),
                "recovered_s": round(recovered, 2),
                **detail,
            }
        )

    async def kill_worker(self) -> dict[str, Any]:
        """SIGKILL a worker; the survivors must answer within the session timeout (its
        partitions move), and the worker, started again, must be ready."""
        index = self.random.randrange(len(self.workers))
        worker = self.workers[index]
        assert worker is not None
        killed = time.monotonic()
        worker.proc.send_signal(signal.SIGKILL)
        worker.proc.wait()
        worker.stop()  # closes its log
        restarted = asyncio.create_task(asyncio.to_thread(self.start_worker, index))
        survivors = await self.probe(killed)
        ready = await restarted
        self.report.restart_to_ready_s.append(round(ready, 2))
        return {
            "worker": index,
            "answered_s": round(survivors, 2),
            "restart_to_ready_s": round(ready, 2),
        }

    async def restart(self, service: str) -> dict[str, Any]:
        """Restart a compose service; how long until it is healthy again."""
        started = time.monotonic()
        for step in (["restart", service], ["up", "-d", "--wait", service]):
            await asyncio.to_thread(
                subprocess.run,
                ["docker", "compose", *step],
                cwd=ROOT,
                check=True,
                capture_output=True,
            )
        return {"service": service, "back_s": round(time.monotonic() - started, 2)}

    async def sandbox_outage(self) -> dict[str, Any]:
        self.proxy.down()
        await asyncio.sleep(self.config.outage_s)
        self.proxy.up()
        return {"away_s": self.config.outage_s}

    async def inject_poison(self) -> dict[str, Any]:
        records: list[bytes | None] = [
            None,
            b"",
            b"\xff\xfe{}",
            b'{"type": "refresh_metric", "organization_id": "\\ud800"}',
            b'{"type": "create_metric", "organization_id": "a\\u0000b", "template_id": "t"}',
            b'{"schema_version": 9, "type": "refresh_metric", "organization_id": "o"}',
            b'{"type": "refresh_metric", "organization_id": "o", "title": "'
            + b"x" * 900_000
            + b'"}',
        ]
        producer = AIOKafkaProducer(
            bootstrap_servers=self.settings.kafka_bootstrap,
            acks="all",
            max_request_size=2_000_000,
            **aiokafka_auth(self.settings),
        )
        await producer.start()
        try:
            topic = topic_name(self.settings, "commands", ORG)
            for value in records:
                meta = await producer.send_and_wait(topic, value=value, key=b"chaos")
                self.poison.append((meta.partition, meta.offset))
        finally:
            await producer.stop()
        return {"records": len(records)}

    async def refreshes(self, stop: asyncio.Event) -> None:
        """Refresh commands all along (each is one more expected poll of its metric)."""
        ids = sorted(self.expected)
        while not stop.is_set():
            await self.refresh(self.random.choice(ids), timeout=120)
            with suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.config.refresh_every_s)

    # -- oracle --------------------------------------------------------------------------

    async def settle(self, conn: Any) -> None:
        """Wait until every expected point is stored and the consumers are caught up."""
        started = time.monotonic()
        deadline = started + self.config.settle_timeout_s
        while time.monotonic() < deadline:
            counts, last_days = await self.point_counts(conn)
            lag = await self.lag()
            if all(
                counts.get(m, 0) >= e.points(last_days.get(m)) for m, e in self.expected.items()
            ) and not any(lag.values()):
                break
            await asyncio.sleep(2)
        await asyncio.sleep(3)  # anything still moving shows up as a duplicate
        self.report.settle_s = round(time.monotonic() - started, 1)

    async def point_counts(self, conn: Any) -> tuple[dict[str, int], dict[str, tuple[date, date]]]:
        """Points stored per metric, and the UTC days of each metric's first and last point."""
        cur = await conn.execute(
            "SELECT metric_id::text AS m, count(*) AS n,"
            " (min(ts) AT TIME ZONE 'UTC')::date AS first,"
            " (max(ts) AT TIME ZONE 'UTC')::date AS last FROM metric_data_points"
            " WHERE metric_id = ANY(%s::uuid[]) GROUP BY 1",
            (list(self.expected),),
        )
        rows = await cur.fetchall()
        return (
            {r["m"]: int(r["n"]) for r in rows},
            {r["m"]: (r["first"], r["last"]) for r in rows},
        )

    async def lag(self) -> dict[str, int]:
        admin = admin_client(self.settings)
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.kafka_bootstrap, **aiokafka_auth(self.settings)
        )
        await admin.start()
        await consumer.start()
        try:
            out = {}
            offsets = await admin.list_consumer_group_offsets(self.settings.app_id)
            groups: list[tuple[str, str, str | None]] = [
                (self.settings.app_id, base, None) for base in STAGE_TOPICS
            ]
            groups.append((f"{self.settings.app_id}-ingress", "commands", ORG))
            for group, base, org in groups:
                offsets = await admin.list_consumer_group_offsets(group)
                topic = topic_name(self.settings, base, org)
                tps = [TopicPartition(topic, p) for p in await partitions(self.settings, base, org)]
                ends = await consumer.end_offsets(tps)
                out[topic.removeprefix(self.settings.topic_prefix)] = sum(
                    ends[tp] - (max(0, offsets[tp].offset) if tp in offsets else 0) for tp in tps
                )
            return out
        finally:
            await admin.close()
            await consumer.stop()

    async def judge(self, conn: Any) -> None:
        report = self.report
        counts, last_days = await self.point_counts(conn)
        for metric_id, expected in self.expected.items():
            have, want = counts.get(metric_id, 0), expected.points(last_days.get(metric_id))
            report.expected_points += want
            report.stored_points += have
            report.lost_points += max(0, want - have)
            report.duplicated_points += max(0, have - want)
            if have != want:
                report.metrics_wrong.append(f"{metric_id} {expected.template}: {have} of {want}")
        report.rollup_mismatches = await rollup_mismatches(conn, list(self.expected))
        report.lag = await self.lag()
        stats = httpx.get(f"{self.demo_url}/demo/stats").json()["paths"]
        refetches = self.refetches()
        report.refetched_after_crash = sum(refetches.values())
        for metric_id, expected in self.expected.items():
            asked = int(stats.get(expected.path, 0))
            if asked > expected.requests() + refetches.get(metric_id, 0):
                report.polled_more_than_due += 1
        results = await self.read_all("command-results", ORG)
        answered = Counter(str(r.get("command_id")) for r in results)
        poisoned = set(self.poison)
        sent = [
            str(c["command_id"])
            for c in await self.read_all("commands", ORG, with_coordinates=True)
            if (c["partition"], c["offset"]) not in poisoned and "command_id" in c
        ]
        report.commands = len(sent)
        report.commands_without_result = sum(1 for c in sent if answered[c] == 0)
        for command_id in sorted(c for c in set(sent) if answered[c] > 1):
            copies = [r for r in results if str(r.get("command_id")) == command_id]
            identical = all(c == copies[0] for c in copies)
            if not identical:  # two different answers: the command was handled twice
                report.commands_with_several_results += 1
            report.repeated_results.append(
                {
                    "command_id": command_id,
                    "type": copies[0].get("type"),
                    "copies": len(copies),
                    "identical": identical,
                    "at": sorted({str(c.get("at")) for c in copies}),
                }
            )
        dead = await self.read_all("dead-letter")
        poison = set(self.poison)
        report.poison_dead_letters = sum(1 for d in dead if _tenant_coordinates(d) in poison)
        report.healthy_dead_letters = len(dead) - report.poison_dead_letters
        configs = await self.read_all("chart-configs", ORG)
        latest: dict[str, str] = {}
        for config in configs:
            latest[config["dashboard_metric_id"]] = max(
                latest.get(config["dashboard_metric_id"], ""), config["generated_at"]
            )
        after = self.last_fault_at.isoformat().replace("+00:00", "Z")
        report.charts_stale = sum(1 for dm in self.charts if latest.get(dm, "") < after)

    def refetches(self) -> Counter[str]:
        """Polls refetched because their worker died mid-request, by metric (the workers'
        own ``fetch.refetch`` log events)."""
        out: Counter[str] = Counter()
        for log in self.workdir.glob("worker-*.log"):
            for line in log.read_text(errors="replace").splitlines():
                if '"fetch.refetch"' in line:
                    out[json.loads(line)["metric_id"]] += 1
        return out

    async def read_all(
        self, base: str, org: str | None = None, with_coordinates: bool = False
    ) -> list[dict[str, Any]]:
        """Every JSON object on a topic now (with ``partition`` and ``offset`` added when
        asked); records that are not JSON objects are skipped."""
        topic = topic_name(self.settings, base, org)
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.kafka_bootstrap,
            enable_auto_commit=False,
            max_partition_fetch_bytes=17 * 1024 * 1024,
            **aiokafka_auth(self.settings),
        )
        await consumer.start()
        try:
            tps = [TopicPartition(topic, p) for p in await partitions(self.settings, base, org)]
            consumer.assign(tps)
            begins = await consumer.beginning_offsets(tps)
            ends = await consumer.end_offsets(tps)
            for tp in tps:  # explicit offsets: a lazy seek_to_beginning raced the end lookup
                consumer.seek(tp, begins[tp])
            out: list[dict[str, Any]] = []
            while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
                for messages in (await consumer.getmany(timeout_ms=1000)).values():
                    for m in messages:
                        try:
                            value = json.loads(m.value or b"")
                        except ValueError:
                            continue
                        if isinstance(value, dict):
                            if with_coordinates:
                                value = {**value, "partition": m.partition, "offset": m.offset}
                            out.append(value)
            return out
        finally:
            await consumer.stop()

    # -- the whole run -------------------------------------------------------------------

    async def run(self, database_url: str, demo_url: str) -> Report:
        self.demo_url = demo_url
        run = uuid.uuid4().hex[:8]
        self.settings = Settings(
            kafka=admin_kafka(),
            topic_prefix=f"chaos-{run}-",
            topic_partitions=4,
            database_url=SecretStr(database_url),
            scheduler_interval_s=1.0,
            stage_batch_window_s=0.2,
            pause_initial_s=0.5,
            pause_max_s=4.0,
            provider_urls=demo_provider_urls(demo_url),
        )
        self.note("preparing the cluster")
        await prepare_cluster(self.settings, [ORG, f"{ORG}-warm-up"])
        self.proxy.up()
        for index in range(self.config.workers):
            await asyncio.to_thread(self.start_worker, index)
        conn = await psycopg.AsyncConnection.connect(
            database_url, autocommit=True, row_factory=dict_row
        )
        try:
            self.note("workers started; warming up")
            await self.warm_up(conn)
            self.note("creating metrics")
            await self.create_metrics()
            await self.schedule_polls(conn)
            stop = asyncio.Event()
            background = asyncio.create_task(self.refreshes(stop))
            try:
                for _ in range(self.config.kills):
                    await self.fault("kill worker", self.kill_worker)
                await self.fault("broker restart", lambda: self.restart("kafka"))
                await self.fault("database restart", lambda: self.restart("timescaledb"))
                await self.fault("docker engine away", self.sandbox_outage)
                await self.fault("poison records", self.inject_poison)
            finally:
                stop.set()
                await background
            # every chart redrawn after the last fault: its metric polled once more
            await asyncio.gather(*(self.refresh(m, timeout=120) for m in set(self.charts.values())))
            self.note("charts redrawn after the faults; settling")
            await self.count_refreshes()
            await conn.close()
            conn = await psycopg.AsyncConnection.connect(
                database_url, autocommit=True, row_factory=dict_row
            )
            await self.settle(conn)
            await self.judge(conn)
        finally:
            await conn.close()
            self.stop_all()
            self.proxy.down()
            await unprepare_cluster(self.settings)
        return self.report

    async def count_refreshes(self) -> None:
        """Every refresh on the commands topic that was accepted is one more poll."""
        accepted = {
            r["command_id"]: r["metric_id"]  # once per command, however often answered
            for r in await self.read_all("command-results", ORG)
            if r.get("status") == "accepted" and r.get("type") == "refresh_metric"
        }
        for metric_id in accepted.values():
            if metric_id in self.expected:
                self.expected[metric_id].polls += 1


ROLLUP_MISMATCHES = """
WITH truth AS (
    SELECT metric_id, time_bucket(%(w)s, ts) AS bucket, count(*) AS count, sum(value) AS sum,
           min(value) AS min, max(value) AS max, last(value, ts) AS last, max(ts) AS last_ts
    FROM metric_data_points WHERE metric_id = ANY(%(ids)s::uuid[]) GROUP BY 1, 2
), stored AS (
    SELECT metric_id, bucket, count, sum, min, max, last, last_ts
    FROM {relation} WHERE metric_id = ANY(%(ids)s::uuid[])
)
SELECT count(*) AS n FROM truth t FULL JOIN stored s USING (metric_id, bucket)
WHERE t.count IS DISTINCT FROM s.count OR t.min IS DISTINCT FROM s.min
   OR t.max IS DISTINCT FROM s.max OR t.last IS DISTINCT FROM s.last
   OR t.last_ts IS DISTINCT FROM s.last_ts
   OR abs(coalesce(t.sum, 0) - coalesce(s.sum, 0)) > 1e-6 * greatest(1, abs(coalesce(t.sum, 0)))
"""
"""Rows of one rollup relation that differ from a recomputation from the points."""


def _tenant_coordinates(letter: dict[str, Any]) -> tuple[int, int] | None:
    """Where a dead-lettered command was produced (its inbox envelope says)."""
    if letter.get("topic") != "command-inbox" or not letter.get("original"):
        return None
    inbox = TenantCommand.model_validate_json(letter["original"])
    return inbox.partition, inbox.offset


async def rollup_mismatches(conn: Any, metric_ids: list[str]) -> int:
    """Rollup rows that differ from a recomputation from the points (both families, every
    granularity), for these metrics."""
    mismatches = 0
    for rollup in rollups.ROLLUPS:
        cur = await conn.execute(
            sql.SQL(ROLLUP_MISMATCHES).format(relation=sql.Identifier(rollup.relation)),
            {"w": rollup.width, "ids": metric_ids},
        )
        row = await cur.fetchone()
        mismatches += int(row["n"])
    return mismatches


@contextmanager
def chaos_environment(run_id: str) -> Iterator[tuple[str, str, Path]]:
    """Its own database, demo API (a rate limit no run reaches) and working folder."""
    workdir = Path(tempfile.mkdtemp(prefix="metricloom-chaos-"))
    try:
        with (
            migrated_database(f"metricloom_chaos_{run_id}") as url,
            running_demo_api(rate_limit=10_000_000) as demo,
        ):
            yield url, demo, workdir
    finally:
        if not os.environ.get("METRICLOOM_CHAOS_KEEP"):
            shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description="metricloom's fault suite (JSON out)")
    for name, value in asdict(ChaosConfig()).items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    args = parser.parse_args()
    config = ChaosConfig(**{k.replace("-", "_"): v for k, v in vars(args).items()})
    with chaos_environment(uuid.uuid4().hex[:8]) as (url, demo, workdir):
        report = asyncio.run(Chaos(config, workdir).run(url, demo))
    print(json.dumps({"config": asdict(config), **report.as_json()}, indent=2))
    raise SystemExit(0 if report.ok else 1)


if __name__ == "__main__":
    main()
