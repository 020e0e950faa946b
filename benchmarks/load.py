"""Load test: 10,000 metrics on the frequent tier, one worker, the demo API.

A real worker (subprocess) on the real Kafka, TimescaleDB and Docker. The metrics are
inserted due across ``--spread`` seconds; an independent consumer watches ``poll-due`` and
``raw-payloads``. Reports ticks issued per second, tick lateness (when the tick reached
Kafka minus when the metric was due) p50/p95, polls per second (payloads fetched), duplicate
polls (the same metric and due time polled twice: must be 0), and requests beyond the
provider's rate limit (the demo API's own count: must be 0).

    python -m benchmarks.load [--metrics 10000] [--spread 60] [--rate-limit 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
from aiokafka import AIOKafkaConsumer
from psycopg.types.json import Jsonb
from pydantic import SecretStr

from agents.generators.offline import metric_code_for
from streams.security import aiokafka_auth
from streams.settings import Settings
from streams.topics import topic_name
from templates import get_template
from tests.conftest import WorkerProcess, admin_kafka, migrated_database, running_demo_api
from tests.integration.conftest import prepare_cluster

ROOT = Path(__file__).resolve().parent.parent


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


LOAD_SETTINGS = {
    "METRICLOOM_SCHEDULER_INTERVAL_S": "1",
    "METRICLOOM_SCHEDULER_BATCH": "1000",
    "METRICLOOM_STAGE_BATCH_SIZE": "200",
}
"""The worker's settings for the load (freshness under load uses the same)."""


def seed(db_url: str, count: int, start: datetime, spread_s: float, tag: str = "") -> None:
    """``count`` frequent-tier ``github-repo-stars`` metrics falling due evenly across
    ``spread_s`` from ``start`` (repositories named ``repo-{tag}{n}``), and the template's
    offline Python transformer when it has none yet."""
    template = get_template("github-repo-stars")
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO metric_transformers"
            " (template_id, polling_endpoint, code, generator, language)"
            " VALUES (%s, %s, %s, 'offline-v1', 'python') ON CONFLICT DO NOTHING",
            (template.id, Jsonb(template.polling.model_dump()), metric_code_for(template)),
        )
        with conn.cursor().copy(
            "COPY metrics (id, organization_id, template_id, params, poll_frequency, next_poll_at)"
            " FROM STDIN"
        ) as copy:
            for n in range(count):
                due = start + timedelta(seconds=spread_s * n / count)
                params = json.dumps({"OWNER": f"load{n % 97}", "REPO": f"repo-{tag}{n}"})
                copy.write_row(
                    (uuid.uuid4(), f"org-{n % 50}", template.id, params, "frequent", due)
                )


async def watch(settings: Settings, expected: int, deadline: float) -> dict[str, Any]:
    consumer = AIOKafkaConsumer(
        topic_name(settings, "poll-due"),
        topic_name(settings, "raw-payloads"),
        bootstrap_servers=settings.kafka_bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_partition_fetch_bytes=8 << 20,
        **aiokafka_auth(settings),
    )
    await consumer.start()
    ticks: list[tuple[str, str, float]] = []
    fetched: list[float] = []
    try:
        while len(fetched) < expected and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=1000, max_records=5000)
            for tp, messages in batches.items():
                for message in messages:
                    value = json.loads(message.value or b"{}")
                    at = message.timestamp / 1000
                    if tp.topic.endswith("poll-due"):
                        ticks.append((value["metric_id"], value["due_at"], at))
                    else:
                        fetched.append(at)
    finally:
        await consumer.stop()
    lateness = [at - datetime.fromisoformat(due).timestamp() for _, due, at in ticks]
    duplicates = sum(n - 1 for n in Counter((m, d) for m, d, _ in ticks).values() if n > 1)
    tick_times = [at for _, _, at in ticks]
    return {
        "ticks": len(ticks),
        "ticks_per_second": round(len(ticks) / max(1e-9, max(tick_times) - min(tick_times)), 1)
        if ticks
        else 0,
        "tick_lateness_p50_s": round(percentile(lateness, 0.5), 3) if lateness else None,
        "tick_lateness_p95_s": round(percentile(lateness, 0.95), 3) if lateness else None,
        "polls": len(fetched),
        "polls_per_second": round(len(fetched) / max(1e-9, max(fetched) - min(fetched)), 1)
        if fetched
        else 0,
        "duplicate_polls": duplicates,
    }


async def run(count: int, spread_s: float, rate_limit: int) -> dict[str, Any]:
    run_id = uuid.uuid4().hex[:8]
    with (
        migrated_database(f"metricloom_load_{run_id}") as db_url,
        running_demo_api(rate_limit) as demo,
    ):
        return await _load(run_id, db_url, demo, count, spread_s, rate_limit)


async def _load(
    run_id: str, db_url: str, demo: str, count: int, spread_s: float, rate_limit: int
) -> dict[str, Any]:
    settings = Settings(
        kafka=admin_kafka(),  # the local cluster's admin (a super user)
        topic_prefix=f"load-{run_id}-",
        database_url=SecretStr(db_url),
        provider_urls={"github": f"{demo}/github"},
    )
    worker = None
    log = Path(f"/tmp/metricloom-load-{run_id}.log")
    try:
        await prepare_cluster(settings, [])  # the worker's grants and topics
        start = datetime.now(UTC) + timedelta(seconds=20)
        seed(db_url, count, start, spread_s)
        worker = WorkerProcess(settings, log, LOAD_SETTINGS)
        started = time.monotonic()
        report = await watch(settings, count, started + 600)
        row = None
        for _ in range(600):  # let the writer catch up with the fetches
            with psycopg.connect(db_url) as conn:
                row = conn.execute(
                    "SELECT count(*), count(DISTINCT metric_id) FROM metric_data_points"
                ).fetchone()
            if row and row[0] >= count:
                break
            await asyncio.sleep(0.5)
        report["seconds_from_first_due_to_all_points"] = round(
            (datetime.now(UTC) - start).total_seconds(), 1
        )
        stats = httpx.get(f"{demo}/demo/stats").json()
        return {
            "benchmark": "load",
            "metrics": count,
            "tier": "frequent (15 min)",
            "due_spread_seconds": spread_s,
            **report,
            "points_written": row[0] if row else 0,
            "metrics_with_points": row[1] if row else 0,
            "provider_requests": stats["served"],
            "requests_beyond_rate_limit": stats["over_limit"],
            "rate_limit_per_hour": rate_limit,
        }
    finally:
        if worker is not None:
            worker.stop(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--metrics", type=int, default=10_000)
    parser.add_argument("--spread", type=float, default=60.0)
    parser.add_argument("--rate-limit", type=int, default=20_000)
    args = parser.parse_args()
    json.dump(asyncio.run(run(args.metrics, args.spread, args.rate_limit)), sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
