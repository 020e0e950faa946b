"""Integration fixtures: a real worker process, real Kafka producers and consumers."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from pydantic import SecretStr

from agents.generators.offline import metric_code_for
from agents.generators.openai_compatible import OpenAICompatibleGenerator
from schema import catalog
from schema.models import Metric, MetricTransformer, PollFrequency
from streams.admin import delete_topics, ensure_tenant_topics, ensure_topics
from streams.messages import CommandBase
from streams.security import aiokafka_auth
from streams.settings import ModelSettings, Settings
from streams.tenants import Tenants, worker_grants
from streams.topics import topic_name
from templates import get_template
from tests.conftest import TEST_ORGS, WorkerProcess, free_port
from tests.integration.model_server import ScriptedModel

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def topics(settings: Settings) -> Iterator[None]:
    """The session's topics (the worker's, and every test organisation's) and the worker
    principal's ACLs for them, made once; deleted and revoked at the end."""
    with prepared_cluster(settings, TEST_ORGS):
        yield


@contextmanager
def prepared_cluster(settings: Settings, orgs: Iterable[str]) -> Iterator[None]:
    """What `metricloom setup` and `tenant add` do, for a prefixed (test) deployment;
    undone at the end."""
    asyncio.run(prepare_cluster(settings, orgs))
    try:
        yield
    finally:
        asyncio.run(unprepare_cluster(settings))


async def prepare_cluster(settings: Settings, orgs: Iterable[str]) -> None:
    password = settings.kafka.worker_password
    await asyncio.to_thread(
        Tenants(settings).grant_worker, password.get_secret_value() if password else None
    )
    await ensure_topics(settings)
    for org in orgs:
        await ensure_tenant_topics(settings, org)


async def unprepare_cluster(settings: Settings) -> None:
    await delete_topics(settings)
    await asyncio.to_thread(
        Tenants(settings).ungrant, settings.kafka.worker_username, worker_grants(settings)
    )


@pytest.fixture(scope="session")
def worker(
    settings: Settings, topics: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerProcess]:
    """One worker for the session's end-to-end tests."""
    proc = WorkerProcess(settings, tmp_path_factory.mktemp("worker") / "worker.log")
    try:
        proc.wait_ready()
        yield proc
    finally:
        proc.stop()


class Kafka:
    """Produce to and read from the session's topics, independently of any worker."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def produce(
        self, base: str, value: bytes | None, key: bytes | None = None, org: str | None = None
    ) -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=self.settings.kafka_bootstrap,
            acks="all",
            max_request_size=2_000_000,
            **aiokafka_auth(self.settings),
        )
        await producer.start()
        try:
            await producer.send_and_wait(topic_name(self.settings, base, org), value=value, key=key)
        finally:
            await producer.stop()

    async def command(self, command: CommandBase) -> None:
        """A tenant's command, on its organisation's commands topic."""
        org = command.organization_id
        await self.produce("commands", command.to_bytes(), org.encode(), org=org)

    async def wait_for(
        self,
        base: str,
        predicate: Callable[[dict[str, Any]], bool],
        timeout: float = 60.0,
        org: str | None = None,
    ) -> tuple[bytes | None, dict[str, Any]]:
        """The first record (from the topic's beginning) whose JSON value matches; an
        organisation's topic with ``org``."""
        consumer = AIOKafkaConsumer(
            topic_name(self.settings, base, org),
            bootstrap_servers=self.settings.kafka_bootstrap,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            **aiokafka_auth(self.settings),
        )
        await consumer.start()
        try:
            async with asyncio.timeout(timeout):
                async for message in consumer:
                    value = json.loads(message.value or b"null")
                    if isinstance(value, dict) and predicate(value):
                        return message.key, value
        finally:
            await consumer.stop()
        raise AssertionError("unreachable")


@pytest.fixture
def kafka(settings: Settings, topics: None) -> Kafka:
    return Kafka(settings)


@pytest.fixture
async def db_conn(database_url: str) -> AsyncIterator[Any]:
    import psycopg
    from psycopg.rows import dict_row

    conn = await psycopg.AsyncConnection.connect(
        database_url, autocommit=True, row_factory=dict_row
    )
    yield conn
    await conn.close()


async def stored_metric(
    conn: Any,
    repo: str,
    *,
    org: str = "o",
    template_id: str = "github-repo-stars",
    owner: str = "octocat",
    frequency: PollFrequency = PollFrequency.DAILY,
    next_poll_at: datetime | None = None,
    connection_id: uuid.UUID | None = None,
    with_transformer: bool = True,
) -> Metric:
    """A repository metric in the catalog: what most stage tests start from; with its
    template's transformer (offline code) unless a test made one already, since the fetch
    stage does not fetch for a template that has none."""
    if with_transformer:
        template = get_template(template_id)
        await catalog.insert_metric_transformer(
            conn,
            MetricTransformer(
                template_id=template.id,
                polling_endpoint=template.polling,
                code=metric_code_for(template),
                generator="offline-v1",
            ),
        )
    metric = Metric(
        id=uuid.uuid4(),
        organization_id=org,
        template_id=template_id,
        params={"OWNER": owner, "REPO": repo},
        poll_frequency=frequency,
        next_poll_at=next_poll_at,
        connection_id=connection_id,
    )
    await catalog.insert_metric(conn, metric)
    return metric


@pytest.fixture
async def model() -> AsyncIterator[ScriptedModel]:
    """The scripted OpenAI-compatible model server: answers what a test scripts."""
    server = ScriptedModel()
    await server.start(free_port())
    yield server
    await server.stop()


@pytest.fixture
async def generator(model: ScriptedModel) -> AsyncIterator[OpenAICompatibleGenerator]:
    """The model-backed generator, talking to the scripted model."""
    client = OpenAICompatibleGenerator(
        ModelSettings(api_key=SecretStr("test-key"), base_url=model.url, name="scripted-model")
    )
    yield client
    await client.close()
