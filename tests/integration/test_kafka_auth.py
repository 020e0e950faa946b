"""Kafka that knows who is talking, on the real broker: SASL/SCRAM on every listener, the
StandardAuthorizer denying what no ACL allows, one principal per organisation."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError, TopicAuthorizationFailedError
from pydantic import SecretStr

from streams.messages import CreateDashboardMetric, CreateMetric, RefreshMetric
from streams.security import aiokafka_auth
from streams.settings import Settings
from streams.tenants import Tenants
from streams.topics import topic_name
from tests.conftest import WorkerProcess
from tests.integration.conftest import Kafka

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def tenants(settings: Settings, topics: None) -> Iterator[dict[str, Settings]]:
    """Principals for two organisations (their topics exist from the session's start);
    each organisation's settings, as its own services would have them. Revoked after."""
    admin = Tenants(settings)
    out = {}
    for org in ("acme", "beta"):
        password = admin.add_tenant(org)
        out[org] = settings.model_copy(
            update={
                "kafka": settings.kafka.model_copy(
                    update={"username": org, "password": SecretStr(password)}
                )
            }
        )
    yield out
    for org in out:
        admin.remove_tenant(org)


async def _produce(tenant: Settings, topic: str, value: bytes) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=tenant.kafka_bootstrap, request_timeout_ms=10_000, **aiokafka_auth(tenant)
    )
    await producer.start()
    try:
        await producer.send_and_wait(topic, value)
    finally:
        await producer.stop()


async def _read(tenant: Settings, topic: str, org: str) -> None:
    consumer = AIOKafkaConsumer(
        topic,
        group_id=f"{org}.test-{uuid.uuid4().hex[:6]}",
        bootstrap_servers=tenant.kafka_bootstrap,
        auto_offset_reset="earliest",
        **aiokafka_auth(tenant),
    )
    try:
        await consumer.start()
        await asyncio.wait_for(consumer.getmany(timeout_ms=2000), 20)
    finally:
        await consumer.stop()


async def test_a_client_without_credentials_is_refused(settings: Settings) -> None:
    """The broker's listener wants SASL/SCRAM: a plain client cannot even bootstrap."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, request_timeout_ms=5000)
    with pytest.raises(KafkaError):
        await producer.start()
    await producer.stop()


async def test_a_tenant_reaches_only_its_own_topics(
    settings: Settings, tenants: dict[str, Settings]
) -> None:
    """acme writes its commands topic and reads its answer topics; each of beta's topics
    and every internal topic is an authorization error, for writing and for reading."""
    acme = tenants["acme"]

    def name(base: str, org: str | None = None) -> str:
        return topic_name(settings, base, org)

    await _produce(acme, name("commands", "acme"), b'{"type": "refresh_metric"}')
    await _read(acme, name("command-results", "acme"), "acme")
    await _read(acme, name("chart-configs", "acme"), "acme")
    refused_writes = [name("commands", "beta"), name("command-results", "acme")]
    refused_writes += [
        name(base) for base in ("poll-due", "points", "raw-payloads", "command-inbox")
    ]
    for topic in refused_writes:
        with pytest.raises(TopicAuthorizationFailedError):
            await _produce(acme, topic, b"{}")
    refused_reads = [name("chart-configs", "beta"), name("command-results", "beta")]
    refused_reads += [name(base) for base in ("dead-letter", "raw-payloads", "operator-alerts")]
    for topic in refused_reads:
        with pytest.raises(TopicAuthorizationFailedError):
            await _read(acme, topic, "acme")


async def test_the_worker_answers_each_organisation_on_its_own_topics(
    settings: Settings, tenants: dict[str, Settings], worker: WorkerProcess, kafka: Kafka
) -> None:
    """acme and beta each create a metric and a chart with their own credentials; each
    gets its results and its chart only on its own topics. A command acme sends that names
    beta is rejected, on acme's results topic."""
    from streams.client import send_command

    charts: dict[str, str] = {}
    for org in ("acme", "beta"):
        create = CreateMetric(
            organization_id=org,
            template_id="github-repo-stars",
            params={"OWNER": "octocat", "REPO": f"auth-{org}-{uuid.uuid4().hex[:6]}"},
        )
        created = await send_command(tenants[org], create, 60)
        assert created.status == "accepted", created
        place = CreateDashboardMetric(
            organization_id=org,
            dashboard_id="d",
            metric_id=created.metric_id,
        )
        placed = await send_command(tenants[org], place, 60)
        assert placed.status == "accepted", placed
        charts[org] = str(placed.dashboard_metric_id)
    for org, dm in charts.items():

        def this_chart(v: dict[str, Any], d: str = dm) -> bool:
            return bool(v["dashboard_metric_id"] == d)

        _, config = await kafka.wait_for("chart-configs", this_chart, 90, org)
        assert config["organization_id"] == org
        other = "beta" if org == "acme" else "acme"
        with pytest.raises(TimeoutError):  # nowhere on the other organisation's topic
            await kafka.wait_for("chart-configs", this_chart, 3, other)

    forged = RefreshMetric(organization_id="beta", metric_id=uuid.uuid4())
    await _produce(tenants["acme"], topic_name(settings, "commands", "acme"), forged.to_bytes())
    _, result = await kafka.wait_for(
        "command-results", lambda v: v["command_id"] == str(forged.command_id), 60, "acme"
    )
    assert result["status"] == "rejected" and "names organisation 'beta'" in result["error"]


def test_a_non_python_client_sends_a_command_as_a_tenant(
    settings: Settings, tenants: dict[str, Settings], worker: WorkerProcess, tmp_path: Path
) -> None:
    """kcat (librdkafka) with the tenant's SASL settings, as the README shows: it produces
    a command to its commands topic and reads its answer from its results topic."""
    acme = tenants["acme"]
    config = tmp_path / "acme.conf"
    password = acme.kafka.password.get_secret_value() if acme.kafka.password else ""
    config.write_text(
        "security.protocol=SASL_PLAINTEXT\nsasl.mechanisms=SCRAM-SHA-512\n"
        f"sasl.username=acme\nsasl.password={password}\n"
    )
    config.chmod(0o600)
    command = RefreshMetric(organization_id="acme", metric_id=uuid.uuid4())
    common = ["kcat", "-F", str(config), "-b", settings.kafka_bootstrap, "-q"]
    subprocess.run(
        [*common, "-P", "-t", topic_name(settings, "commands", "acme"), "-k", "acme"],
        input=command.to_bytes(),
        check=True,
        timeout=30,
    )
    answers: list[dict[str, Any]] = []
    for _ in range(30):
        done = subprocess.run(
            [
                *common,
                "-C",
                "-t",
                topic_name(settings, "command-results", "acme"),
                "-e",
                "-o",
                "beginning",
            ],
            capture_output=True,
            check=True,
            timeout=60,
        )
        answers = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
        if any(a.get("command_id") == str(command.command_id) for a in answers):
            break
        time.sleep(1)  # polling the topic again (kcat -e reads to its end and exits)
    [answer] = [a for a in answers if a.get("command_id") == str(command.command_id)]
    assert answer["status"] == "rejected" and "has no metric" in answer["error"]
