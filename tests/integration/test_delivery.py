"""The delivery contract on the real broker: poison records are contained to themselves,
offsets are committed as the next offset to read, and a redelivered tick or command does
its work once."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from agents.commands import CommandStage
from agents.fetching import FetchStage
from agents.pipeline import Incoming, process_batch
from agents.services import Services
from streams.admin import admin_client, ensure_tenant_topics, partitions
from streams.app import TenantTopics
from streams.messages import CommandResult, CreateMetric, PollDue, RefreshMetric, TenantCommand
from streams.security import aiokafka_auth
from streams.settings import Settings
from streams.topics import topic_name
from tests.conftest import WorkerProcess, inbox_message
from tests.integration.conftest import Kafka, stored_metric

pytestmark = [pytest.mark.integration, pytest.mark.slow]

NUL_FIELD = b'{"type": "create_metric", "organization_id": "a\\u0000b", "template_id": "t"}'
LONE_SURROGATE = b'{"type": "create_metric", "organization_id": "\\ud800", "template_id": "t"}'
WRONG_VERSION = (
    b'{"schema_version": 2, "type": "refresh_metric", "organization_id": "o",'
    b' "metric_id": "00000000-0000-0000-0000-000000000001"}'
)
OVERSIZED = (
    b'{"type": "create_dashboard_metric", "organization_id": "o", "dashboard_id": "d",'
    b' "metric_id": "00000000-0000-0000-0000-000000000001", "title": "' + b"x" * 999_000 + b'"}'
)
POISON: dict[str, bytes | None] = {
    "null": None,
    "empty": b"",
    "invalid-utf8": b"\xff\xfe{}",
    "lone-surrogate": LONE_SURROGATE,
    "nul": NUL_FIELD,
    "schema-version": WRONG_VERSION,
    "oversized": OVERSIZED,
}


async def _produce_all(settings: Settings, records: list[bytes | None]) -> list[tuple[int, int]]:
    """Produce the records in one go (so they land in one batch); their (partition, offset)."""
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        acks="all",
        max_request_size=2_000_000,
        **aiokafka_auth(settings),
    )
    await producer.start()
    try:
        topic = topic_name(settings, "commands", "o")
        futures = [await producer.send(topic, value=value, key=b"o") for value in records]
        sent = [await future for future in futures]
    finally:
        await producer.stop()
    return [(meta.partition, meta.offset) for meta in sent]


async def _results(
    settings: Settings, mine: Callable[[dict[str, Any]], bool], wanted: int, timeout: float = 60
) -> list[dict[str, Any]]:
    """The command results that are ``mine``, read from the topic's start until ``wanted``
    of them arrived (or the time is up: the caller's assertions say what is missing)."""
    consumer = AIOKafkaConsumer(
        topic_name(settings, "command-results", "o"),
        bootstrap_servers=settings.kafka_bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        **aiokafka_auth(settings),
    )
    await consumer.start()
    out: list[dict[str, Any]] = []
    try:
        async with asyncio.timeout(timeout):
            while len(out) < wanted:
                batch = await consumer.getmany(timeout_ms=1000)
                values = [json.loads(m.value or b"{}") for msgs in batch.values() for m in msgs]
                out += [v for v in values if mine(v)]
    except TimeoutError:
        pass
    finally:
        await consumer.stop()
    return out


async def test_each_poison_record_is_contained_to_itself(
    worker: WorkerProcess, kafka: Kafka, settings: Settings
) -> None:
    """Null, empty, invalid UTF-8, a lone surrogate, NUL, an unknown schema version and a
    record of about 1 MB, between two valid commands on an organisation's commands topic:
    each poison record gets its own dead letter and a rejection naming its partition and
    offset (on that organisation's results topic); both valid commands are accepted."""
    good = [
        CreateMetric(
            organization_id="o",
            template_id="github-repo-stars",
            params={"OWNER": "octocat", "REPO": f"poison-{n}-{uuid.uuid4().hex[:6]}"},
        )
        for n in range(2)
    ]
    records = [good[0].to_bytes(), *POISON.values(), good[1].to_bytes()]
    where = await _produce_all(settings, records)
    poison_at = dict(zip(POISON, where[1:-1], strict=True))
    ids = {str(c.command_id) for c in good}

    def mine(result: dict[str, Any]) -> bool:
        return (
            result.get("command_id") in ids
            or (
                result.get("partition"),
                result.get("offset"),
            )
            in where
        )

    results = await _results(settings, mine, len(records))
    assert sorted(r["status"] for r in results if r["command_id"] in ids) == ["accepted"] * 2, (
        worker.output()[-5000:]
    )
    for kind, (partition, offset) in poison_at.items():
        answers = [r for r in results if (r["partition"], r["offset"]) == (partition, offset)]
        assert len(answers) == 1 and answers[0]["status"] == "rejected", (kind, answers)

        def at(v: dict[str, Any], p: int = partition, o: int = offset) -> bool:
            if v["topic"] != "command-inbox" or not v["original"]:
                return False
            inbox = TenantCommand.model_validate_json(v["original"])
            return (inbox.organization_id, inbox.partition, inbox.offset) == ("o", p, o)

        _, dead = await kafka.wait_for("dead-letter", at, timeout=30)
        assert dead["stage"] == "commands" and dead["organization_id"] is None, kind
        inbox = TenantCommand.model_validate_json(dead["original"])
        assert inbox.organization_id == "o" and inbox.body() == POISON[kind], kind
        assert not dead["truncated"], kind


async def test_committed_offsets_are_the_next_to_read(
    worker: WorkerProcess, kafka: Kafka, settings: Settings
) -> None:
    """Once the worker has answered, the committed offset of every partition it consumed
    on the way — the organisation's commands topic (the ingress's group) and the inbox (the
    stages' group) — is that partition's end: nothing is one behind, nothing would be run
    again after a restart."""
    command = RefreshMetric(organization_id="o", metric_id=uuid.uuid4())
    await kafka.command(command)
    await kafka.wait_for(
        "command-results", lambda v: v["command_id"] == str(command.command_id), 60, "o"
    )
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, **aiokafka_auth(settings)
    )
    admin = admin_client(settings)
    await consumer.start()
    await admin.start()
    lagging: dict[str, int] = {}
    try:
        for _ in range(40):
            lagging = {}
            for group, base, org in (
                (f"{settings.app_id}-ingress", "commands", "o"),
                (settings.app_id, "command-inbox", None),
            ):
                topic = topic_name(settings, base, org)
                tps = [TopicPartition(topic, p) for p in await partitions(settings, base, org)]
                ends = await consumer.end_offsets(tps)
                offsets = await admin.list_consumer_group_offsets(group, partitions=tps)
                for tp in tps:
                    committed = offsets[tp].offset if tp in offsets else 0
                    if ends[tp] > 0 and committed != ends[tp]:
                        lagging[f"{tp.topic}[{tp.partition}]"] = ends[tp] - committed
            if not lagging:
                break
            await asyncio.sleep(0.5)
    finally:
        await consumer.stop()
        await admin.close()
    assert lagging == {}


async def test_a_redelivered_tick_fetches_once(
    services: Services, db_conn: Any, demo_api_url: str
) -> None:
    """The same tick three times (a redelivery after a crash, twice): one request to the
    provider, and the same payload each time, with the first fetch's time."""
    metric = await stored_metric(db_conn, f"once-{uuid.uuid4().hex[:6]}")
    # Not a never-fetched metric: the session's worker, finishing another test's transformer
    # of this template, sends every never-fetched metric of it a first poll, and its fetch
    # would be counted here too (it lands within this test since stage hops take
    # milliseconds, not a batch window).
    await db_conn.execute(
        "UPDATE metrics SET last_fetched_at = now() - interval '1 day' WHERE id = %s",
        (metric.id,),
    )
    tick = PollDue(metric_id=metric.id, due_at=datetime.now(UTC))
    message = Incoming("poll-due", 0, 1, None, tick.to_bytes())
    path = f"/github/repos/octocat/{metric.params['REPO']}"

    def served() -> int:
        stats = httpx.get(f"{demo_api_url}/demo/stats").json()
        return int(stats["paths"].get(path, 0))

    before = served()
    payloads = []
    for _ in range(3):
        out = await process_batch(FetchStage(), services, [message])
        payloads += [json.loads(o.value) for o in out if o.topic == "raw-payloads"]
    assert served() - before == 1
    assert len({(p["poll_id"], p["fetched_at"], json.dumps(p["payload"])) for p in payloads}) == 1


async def test_the_same_tick_twice_in_one_batch_fetches_once(
    services: Services, db_conn: Any, demo_api_url: str
) -> None:
    """A command delivered again before its records were confirmed sends its stored poll
    again: a second record with the same tick, often in the same fetch batch as the first.
    The batch's fetches run concurrently, so without care both claimed the poll and both
    fetched, and the two payloads' fetch times made two points (found by the fault suite).
    One request, and one payload however many copies."""
    metric = await stored_metric(db_conn, f"twice-{uuid.uuid4().hex[:6]}")
    await db_conn.execute(  # not never-fetched: see test_a_redelivered_tick_fetches_once
        "UPDATE metrics SET last_fetched_at = now() - interval '1 day' WHERE id = %s",
        (metric.id,),
    )
    tick = PollDue(metric_id=metric.id, due_at=datetime.now(UTC), reason="refresh")
    copies = [Incoming("poll-due", 0, offset, None, tick.to_bytes()) for offset in (1, 2, 3)]
    path = f"/github/repos/octocat/{metric.params['REPO']}"

    def served() -> int:
        stats = httpx.get(f"{demo_api_url}/demo/stats").json()
        return int(stats["paths"].get(path, 0))

    before = served()
    out = await process_batch(FetchStage(), services, copies)
    payloads = [json.loads(o.value) for o in out if o.topic == "raw-payloads"]
    assert served() - before == 1
    assert len(payloads) >= 1
    assert len({(p["poll_id"], p["fetched_at"], json.dumps(p["payload"])) for p in payloads}) == 1


async def test_two_workers_fetching_one_poll_emit_one_payload(
    services: Services, db_conn: Any
) -> None:
    """Two attempts of one poll at once (a worker still fetching after its partition moved
    to another, which the ledger takes for a refetch): the second to record its answer
    emits the first one's instead, so both payloads are the same, with one fetch time, and
    the writer's upsert keeps one point."""
    metric = await stored_metric(db_conn, f"race-{uuid.uuid4().hex[:6]}")
    await db_conn.execute(  # not never-fetched: see test_a_redelivered_tick_fetches_once
        "UPDATE metrics SET last_fetched_at = now() - interval '1 day' WHERE id = %s",
        (metric.id,),
    )
    tick = PollDue(metric_id=metric.id, due_at=datetime.now(UTC), reason="refresh")
    message = Incoming("poll-due", 0, 1, None, tick.to_bytes())
    outs = await asyncio.gather(
        process_batch(FetchStage(), services, [message]),
        process_batch(FetchStage(), services, [message]),
    )
    payloads = [json.loads(o.value) for out in outs for o in out if o.topic == "raw-payloads"]
    assert len(payloads) >= 1
    assert len({(p["poll_id"], p["fetched_at"], json.dumps(p["payload"])) for p in payloads}) == 1


async def test_a_redelivered_command_answers_once(services: Services) -> None:
    """A command handled, its records delivered, then its record delivered again: the
    second time it sends nothing (no second result, no second first poll). Delivered
    again before its records were confirmed, it sends the very same bytes. Sent again in a
    new record (a client that gave up waiting), it gets its first result again, and
    nothing is redone."""
    stage = CommandStage()
    command = CreateMetric(
        organization_id="o",
        template_id="github-repo-stars",
        params={"OWNER": "octocat", "REPO": f"again-{uuid.uuid4().hex[:6]}"},
    )
    message = inbox_message(command.to_bytes(), "o", offset=5)
    first = await process_batch(stage, services, [message])
    second = await process_batch(stage, services, [message])
    assert [(o.topic, o.value) for o in second] == [(o.topic, o.value) for o in first]
    results = [
        CommandResult.model_validate_json(o.value) for o in first if o.topic == "command-results.o"
    ]
    assert [r.status for r in results] == ["accepted"]
    assert any(o.topic == "poll-due" for o in first)
    await stage.delivered(services, [message])
    assert await process_batch(stage, services, [message]) == []
    resent = await process_batch(stage, services, [inbox_message(command.to_bytes(), "o", 6)])
    assert [(o.topic, o.value) for o in resent] == [
        (o.topic, o.value) for o in first if o.topic == "command-results.o"
    ]


async def test_the_same_record_twice_in_one_batch_is_answered_once(services: Services) -> None:
    """The ingress can pass a record on twice (its worker died before it committed): both
    copies may land in one batch of the command stage, which answers the command once."""
    command = RefreshMetric(organization_id="o", metric_id=uuid.uuid4())
    message = inbox_message(command.to_bytes(), "o", offset=11)
    out = await process_batch(CommandStage(), services, [message, message])
    assert [o.topic for o in out].count("command-results.o") == 1


async def test_a_tenant_added_a_moment_ago_is_not_taken_for_a_removed_one(
    settings: Settings,
) -> None:
    """The producer drops records for a removed tenant's topics. A tenant whose topics
    were created just after another name was looked up is found at once (its records
    were dropped for up to 10 s before); a name found missing stays missing."""
    topics = TenantTopics(settings)
    org = f"fresh-{uuid.uuid4().hex[:6]}"
    removed = topic_name(settings, "command-results", f"gone-{org}")
    assert not await topics.exists(removed)  # a lookup just now
    await ensure_tenant_topics(settings, org)
    assert await topics.exists(topic_name(settings, "command-results", org))
    assert not await topics.exists(removed)
