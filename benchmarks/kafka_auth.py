"""What SASL/SCRAM costs: the same broker image, plaintext and SASL_PLAINTEXT, in one run.

Starts two throwaway single-node brokers from ``metricloom/kafka`` (host ports 29192 and
29193; removed at the end): one with the image's plaintext listener (the baseline), one
configured as the local cluster is (SCRAM-SHA-512, StandardAuthorizer, a super user the
clients authenticate as). For each, in alternating rounds, with aiokafka as the worker
uses it:

* ``connect_ms``: a new producer's start, one acknowledged record, its stop (a client's
  whole connection cost, where SCRAM's handshake lands);
* ``produce_rps`` / ``consume_rps``: 20,000 records of 1 KiB through one producer, and read
  back by one consumer;
* ``round_trip_ms``: one record produced and seen by a consumer already subscribed (a
  pipeline hop), p50 and p95 of 200.

And end to end through metricloom, a worker on each broker (its own database, the
worker as the broker's principal): a tenant's command produced to ``commands.bench``,
through the ingress, ``command-inbox`` and the command agent, to its answer on
``command-results.bench`` (``refresh_metric`` of an unknown metric: the full command path
without a fetch), by a long-lived producer and consumer:

* ``command_p50_ms`` / ``command_p95_ms``: one command at a time, 50 of them;
* ``commands_per_s``: 300 produced at once, until the last is answered.

Prints one JSON document: each broker's medians over the rounds, and SASL over
plaintext for each figure.

    python -m benchmarks.kafka_auth [--rounds 3] [--records 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import statistics
import subprocess
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from pydantic import SecretStr

from streams.admin import ensure_tenant_topics, ensure_topics
from streams.messages import RefreshMetric
from streams.settings import Settings
from streams.topics import topic_name
from tests.conftest import WorkerProcess, migrated_database, running_demo_api
from tests.integration.conftest import prepare_cluster

IMAGE = "metricloom/kafka"
PLAIN_PORT, SASL_PORT = 29192, 29193


def start_broker(name: str, port: int, password: str | None) -> None:
    env = {
        "KAFKA_CFG_LISTENERS": "PLAINTEXT://:9092,CONTROLLER://127.0.0.1:9093",
        "KAFKA_CFG_ADVERTISED_LISTENERS": f"PLAINTEXT://127.0.0.1:{port}",
        "KAFKA_LOCAL_PORT": "9092",
    }
    if password is not None:
        env = {
            "KAFKA_ADMIN_PASSWORD": password,
            "KAFKA_LOCAL_PORT": "19093",
            "KAFKA_CFG_LISTENERS": "EXTERNAL://:9092,INTERNAL://:19092,"
            "CONTROLLER://127.0.0.1:9093,LOCAL://127.0.0.1:19093",
            "KAFKA_CFG_ADVERTISED_LISTENERS": f"EXTERNAL://127.0.0.1:{port},"
            "INTERNAL://localhost:19092,LOCAL://127.0.0.1:19093",
            "KAFKA_CFG_LISTENER_SECURITY_PROTOCOL_MAP": "EXTERNAL:SASL_PLAINTEXT,"
            "INTERNAL:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT,LOCAL:PLAINTEXT",
            "KAFKA_CFG_INTER_BROKER_LISTENER_NAME": "INTERNAL",
            "KAFKA_CFG_SASL_ENABLED_MECHANISMS": "SCRAM-SHA-512",
            "KAFKA_CFG_SASL_MECHANISM_INTER_BROKER_PROTOCOL": "SCRAM-SHA-512",
            "KAFKA_CFG_AUTHORIZER_CLASS_NAME": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "KAFKA_CFG_ALLOW_EVERYONE_IF_NO_ACL_FOUND": "false",
            "KAFKA_CFG_SUPER_USERS": "User:admin;User:ANONYMOUS",
        }
    args = ["docker", "run", "-d", "--rm", "--name", name, "-p", f"127.0.0.1:{port}:9092"]
    for key, value in env.items():
        args += ["-e", f"{key}={value}"]  # the benchmark's own throwaway password
    subprocess.run([*args, IMAGE], check=True, capture_output=True)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        state = subprocess.run(
            ["docker", "inspect", "-f", "{{.State.Health.Status}}", name],
            capture_output=True,
            text=True,
        ).stdout.strip()
        if state == "healthy":
            return
        time.sleep(1)  # polling the engine's health check
    raise TimeoutError(f"broker {name} not healthy in 180 s")


def client_args(port: int, password: str | None) -> dict[str, Any]:
    args: dict[str, Any] = {"bootstrap_servers": f"127.0.0.1:{port}"}
    if password is not None:
        args |= {
            "security_protocol": "SASL_PLAINTEXT",
            "sasl_mechanism": "SCRAM-SHA-512",
            "sasl_plain_username": "admin",
            "sasl_plain_password": password,
        }
    return args


async def make_topic(args: dict[str, Any]) -> str:
    topic = f"bench-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(**args)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()
    return topic


async def connect_ms(args: dict[str, Any], topic: str, n: int = 20) -> float:
    times = []
    for _ in range(n):
        started = time.perf_counter()
        producer = AIOKafkaProducer(**args)
        await producer.start()
        await producer.send_and_wait(topic, b"x")
        await producer.stop()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


async def throughput(args: dict[str, Any], topic: str, records: int) -> tuple[float, float]:
    value = secrets.token_bytes(1024)
    producer = AIOKafkaProducer(**args, linger_ms=5)
    await producer.start()
    try:
        started = time.perf_counter()
        for _ in range(records):
            await producer.send(topic, value)
        await producer.flush()
        produce = records / (time.perf_counter() - started)
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(topic, **args, auto_offset_reset="earliest", group_id=None)
    await consumer.start()
    try:
        seen, started = 0, time.perf_counter()
        while seen < records:
            batch = await consumer.getmany(timeout_ms=1000, max_records=5000)
            seen += sum(len(b) for b in batch.values())
        consume = seen / (time.perf_counter() - started)
    finally:
        await consumer.stop()
    return produce, consume


async def round_trips(args: dict[str, Any], topic: str, n: int = 200) -> list[float]:
    consumer = AIOKafkaConsumer(topic, **args, auto_offset_reset="latest", group_id=None)
    producer = AIOKafkaProducer(**args)
    await consumer.start()
    await producer.start()
    try:
        await consumer.seek_to_end()
        out = []
        for _ in range(n):
            marker = uuid.uuid4().bytes
            started = time.perf_counter()
            await producer.send_and_wait(topic, marker)
            while True:
                batch = await consumer.getmany(timeout_ms=1000)
                if any(r.value == marker for rs in batch.values() for r in rs):
                    break
            out.append((time.perf_counter() - started) * 1000)
        return out
    finally:
        await producer.stop()
        await consumer.stop()


async def measure(port: int, password: str | None, records: int) -> dict[str, float]:
    args = client_args(port, password)
    topic = await make_topic(args)
    produce, consume = await throughput(args, topic, records)
    trips = sorted(await round_trips(args, topic))
    return {
        "connect_ms": round(await connect_ms(args, topic), 2),
        "produce_rps": round(produce),
        "consume_rps": round(consume),
        "round_trip_p50_ms": round(trips[len(trips) // 2], 2),
        "round_trip_p95_ms": round(trips[int(len(trips) * 0.95)], 2),
    }


def pipeline_settings(port: int, password: str | None, db_url: str, demo: str) -> Settings:
    kafka: dict[str, Any] = {}
    if password is not None:  # the clients as admin; the worker as its own principal
        kafka = {
            "username": "admin",
            "password": SecretStr(password),
            "worker_password": SecretStr(secrets.token_urlsafe(24)),
        }
    return Settings(
        kafka_bootstrap=f"127.0.0.1:{port}",
        kafka=kafka,
        topic_prefix=f"kauth-{uuid.uuid4().hex[:6]}-",
        topic_partitions=2,
        database_url=SecretStr(db_url),
        provider_urls={"github": f"{demo}/github"},
    )


async def prepare(settings: Settings) -> None:
    """Topics (and, on the SASL broker, the worker's grants) for one organisation."""
    if settings.kafka.username is None:
        await ensure_topics(settings)
        await ensure_tenant_topics(settings, "bench")
    else:
        await prepare_cluster(settings, ["bench"])


async def command_path(
    settings: Settings, sequential: int = 50, burst: int = 300
) -> dict[str, float]:
    args = client_args(
        int(settings.kafka_bootstrap.rsplit(":", 1)[1]),
        settings.kafka.password.get_secret_value() if settings.kafka.password else None,
    )
    consumer = AIOKafkaConsumer(
        topic_name(settings, "command-results", "bench"),
        **args,
        auto_offset_reset="latest",
        group_id=None,
    )
    producer = AIOKafkaProducer(**args, acks="all")
    await consumer.start()
    await producer.start()
    answered: dict[str, asyncio.Event] = {}

    async def collect() -> None:
        while True:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for record in records:
                    command_id = json.loads(record.value)["command_id"]
                    answered.setdefault(command_id, asyncio.Event()).set()

    collector = asyncio.create_task(collect())
    topic = topic_name(settings, "commands", "bench")
    try:
        await consumer.seek_to_end()
        times = []
        for _ in range(sequential):
            command = RefreshMetric(organization_id="bench", metric_id=uuid.uuid4())
            done = answered.setdefault(str(command.command_id), asyncio.Event())
            started = time.perf_counter()
            await producer.send_and_wait(topic, command.to_bytes(), key=b"bench")
            await asyncio.wait_for(done.wait(), 60)
            times.append((time.perf_counter() - started) * 1000)
        commands = [
            RefreshMetric(organization_id="bench", metric_id=uuid.uuid4()) for _ in range(burst)
        ]
        events = [answered.setdefault(str(c.command_id), asyncio.Event()) for c in commands]
        started = time.perf_counter()
        for command in commands:
            await producer.send(topic, command.to_bytes(), key=b"bench")
        await producer.flush()
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in events)), 300)
        rate = burst / (time.perf_counter() - started)
    finally:
        collector.cancel()
        await producer.stop()
        await consumer.stop()
    times.sort()
    return {
        "command_p50_ms": round(times[len(times) // 2], 1),
        "command_p95_ms": round(times[int(len(times) * 0.95)], 1),
        "commands_per_s": round(rate, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--records", type=int, default=20_000)
    options = parser.parse_args()
    password = secrets.token_urlsafe(24)
    run = uuid.uuid4().hex[:6]
    names = {"plaintext": f"bench-plain-{run}", "sasl_scram": f"bench-sasl-{run}"}
    ports = {"plaintext": PLAIN_PORT, "sasl_scram": SASL_PORT}
    secrets_of = {"plaintext": None, "sasl_scram": password}
    rounds: dict[str, list[dict[str, float]]] = {"plaintext": [], "sasl_scram": []}
    workers: list[WorkerProcess] = []
    try:
        start_broker(names["plaintext"], PLAIN_PORT, None)
        start_broker(names["sasl_scram"], SASL_PORT, password)
        with (
            migrated_database(f"metricloom_kauth_plain_{run}") as plain_db,
            migrated_database(f"metricloom_kauth_sasl_{run}") as sasl_db,
            running_demo_api() as demo,
        ):
            dbs = {"plaintext": plain_db, "sasl_scram": sasl_db}
            settings = {
                kind: pipeline_settings(ports[kind], secrets_of[kind], dbs[kind], demo)
                for kind in ports
            }
            try:
                for kind in ports:
                    asyncio.run(prepare(settings[kind]))
                    plain = {"METRICLOOM_KAFKA__USERNAME": ""} if kind == "plaintext" else {}
                    worker = WorkerProcess(
                        settings[kind], Path(f"/tmp/metricloom-kauth-{kind}-{run}.log"), plain
                    )
                    workers.append(worker)
                    worker.wait_ready()
                for _ in range(options.rounds):
                    for kind in ports:
                        figures = asyncio.run(
                            measure(ports[kind], secrets_of[kind], options.records)
                        )
                        figures |= asyncio.run(command_path(settings[kind]))
                        rounds[kind].append(figures)
            finally:  # the workers stop before their databases are dropped
                for worker in workers:
                    worker.stop()
    finally:
        for name in names.values():
            subprocess.run(["docker", "rm", "-f", name], capture_output=True)
    medians = {
        kind: {key: statistics.median(r[key] for r in runs) for key in runs[0]}
        for kind, runs in rounds.items()
    }
    ratio = {
        key: round(medians["sasl_scram"][key] / medians["plaintext"][key], 3)
        for key in medians["plaintext"]
    }
    print(
        json.dumps(
            {
                "benchmark": "kafka_auth",
                "at": datetime.now(UTC).isoformat(timespec="seconds"),
                "rounds": options.rounds,
                "records": options.records,
                "baseline": "plaintext (same image, same run)",
                "medians": medians,
                "sasl_over_plaintext": ratio,
                "rounds_detail": rounds,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
