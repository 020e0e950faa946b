"""Codegen benchmark: how often the model is called, and what a generation costs.

Runs a real worker (subprocess) against the real Kafka, TimescaleDB and Docker, with the
model pointed at a local OpenAI-compatible server that answers correct code (a stand-in:
no real model is reachable here, so model *latency* is not measured, only how many calls
the design makes and what validation costs). Reports:

* model calls while creating ``--metrics`` metrics of a fresh template and a chart each
  (generation: once per template, once per chart);
* model calls during ``--polls`` refresh polls in steady state (goal: 0; the old design
  made one per refresh), and the polls per second the worker sustained;
* seconds and attempts per template generation (in the deployment's transformer language,
  TypeScript by default, so a generation includes tsc), offline generator and model path, and the
  offline generator's first-attempt pass rate on every shipped template (real samples from
  the demo API).

    python -m benchmarks.codegen [--metrics 10] [--polls 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
from aiokafka import AIOKafkaProducer
from pydantic import SecretStr

from agents.generation import fetch_sample, generate_metric, language_for
from agents.generators.offline import OfflineGenerator, chart_code_in, metric_code_in
from agents.generators.openai_compatible import OpenAICompatibleGenerator
from agents.services import Services
from streams.client import send_command
from streams.messages import CreateDashboardMetric, CreateMetric, RefreshMetric
from streams.security import aiokafka_auth
from streams.settings import ModelSettings, Settings
from streams.topics import topic_name
from templates import load_templates
from tests.conftest import (
    DEMO_PARAMS,
    WorkerProcess,
    admin_kafka,
    demo_provider_urls,
    free_port,
    migrated_database,
    running_demo_api,
)
from tests.integration.conftest import prepare_cluster
from tests.integration.model_server import ScriptedModel

ROOT = Path(__file__).resolve().parent.parent


async def _sample(services: Services, template_id: str) -> tuple[Any, dict[str, Any]]:
    template = load_templates()[template_id]
    return await fetch_sample(services, template, {p: DEMO_PARAMS[p] for p in template.param_names})


async def generation_costs(settings: Settings, model: ScriptedModel) -> dict[str, Any]:
    services = Services.from_settings(settings)
    offline = OfflineGenerator()
    remote = OpenAICompatibleGenerator(
        settings.model.model_copy(update={"api_key": SecretStr("k"), "base_url": model.url})
    )
    per_template: dict[str, Any] = {}
    try:
        for template_id, template in load_templates().items():
            sample, config = await _sample(services, template_id)
            language = language_for(settings, template)
            started = time.perf_counter()
            outcome = await generate_metric(services, offline, template, sample, config, language)
            offline_s = time.perf_counter() - started
            model.script(metric_code_in(template, language))
            started = time.perf_counter()
            remote_outcome = await generate_metric(
                services, remote, template, sample, config, language
            )
            per_template[template_id] = {
                "language": language,
                "offline_first_attempt_passed": outcome.attempts == 1,
                "offline_seconds": round(offline_s, 3),
                "model_path_seconds": round(time.perf_counter() - started, 3),
                "model_calls": remote_outcome.model_calls,
            }
    finally:
        await remote.close()
        await services.close()
    passed = sum(1 for v in per_template.values() if v["offline_first_attempt_passed"])
    return {
        "templates": per_template,
        "offline_first_attempt_pass_rate": f"{passed}/{len(per_template)}",
    }


async def steady_state(
    settings: Settings, model: ScriptedModel, metrics: int, polls: int, db_url: str
) -> dict[str, Any]:
    template = load_templates()["github-repo-stars"]
    first = metric_code_in(template, language_for(settings, template))
    chart = chart_code_in("line", "last", "Stars", settings.transformer_language)
    model.script(*([first] + [chart] * metrics))
    worker = WorkerProcess(
        settings,
        Path("/tmp/metricloom-bench-codegen-worker.log"),
        {
            "METRICLOOM_MODEL__API_KEY": "bench-key",
            "METRICLOOM_MODEL__BASE_URL": model.url,
            "METRICLOOM_LOG_LEVEL": "INFO",
        },
    )
    try:
        await asyncio.to_thread(worker.wait_ready, 120.0)  # the model server runs on this loop
        ids = []
        for n in range(metrics):
            create = CreateMetric(
                organization_id="bench",
                template_id=template.id,
                params={"OWNER": "bench", "REPO": f"repo-{n}"},
                poll_frequency="manual",
            )
            result = await send_command(settings, create, 120)
            ids.append(result.metric_id)
            place = CreateDashboardMetric(
                organization_id="bench",
                dashboard_id="d",
                metric_id=result.metric_id,
                chart_type="line",
            )
            await send_command(settings, place, 120)
        await _wait_rows(db_url, "metric_data_points", metrics)
        await _wait_rows(db_url, "chart_transformers", metrics)  # every generation done
        generation_calls = len(model.requests)
        model.requests.clear()
        started = time.perf_counter()
        producer = AIOKafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap, acks="all", **aiokafka_auth(settings)
        )
        await producer.start()
        try:
            for n in range(polls):
                command = RefreshMetric(organization_id="bench", metric_id=ids[n % metrics])
                await producer.send(
                    topic_name(settings, "commands", "bench"), command.to_bytes(), key=b"bench"
                )
            await producer.flush()
        finally:
            await producer.stop()
        await _wait_rows(db_url, "metric_data_points", metrics + polls)
        elapsed = time.perf_counter() - started
        return {
            "metrics": metrics,
            "model_calls_creating_metrics_and_charts": generation_calls,
            "polls": polls,
            "model_calls_during_polls": len(model.requests),
            "model_calls_per_1000_polls": round(len(model.requests) * 1000 / polls, 2),
            "old_design_model_calls_per_1000_polls": 1000,
            "polls_per_second_end_to_end": round(polls / elapsed, 1),
        }
    finally:
        worker.stop(timeout=60)


async def _wait_rows(db_url: str, table: str, count: int) -> None:
    """Wait until ``table`` (``metric_data_points`` or ``chart_transformers``) holds
    ``count`` rows."""
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
        for _ in range(3000):
            cur = await conn.execute(f"SELECT count(*) FROM {table}")
            row = await cur.fetchone()
            if row and row[0] >= count:
                return
            await asyncio.sleep(0.2)
    raise TimeoutError(f"fewer than {count} rows in {table}")


async def main_async(metrics: int, polls: int) -> dict[str, Any]:
    run = uuid.uuid4().hex[:8]
    model = ScriptedModel()
    with (
        migrated_database(f"metricloom_bench_codegen_{run}") as db_url,
        running_demo_api() as demo,
    ):
        await model.start(free_port())
        try:
            settings = Settings(
                kafka=admin_kafka(),  # the local cluster's admin (a super user)
                topic_prefix=f"bench-{run}-",
                database_url=SecretStr(db_url),
                provider_urls=demo_provider_urls(demo),
                model=ModelSettings(),
            )
            await prepare_cluster(settings, ["bench"])  # the worker's grants, bench's topics
            return {
                "benchmark": "codegen",
                "generation": await generation_costs(settings, model),
                "steady_state": await steady_state(settings, model, metrics, polls, db_url),
            }
        finally:
            await model.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--metrics", type=int, default=10)
    parser.add_argument("--polls", type=int, default=1000)
    args = parser.parse_args()
    json.dump(asyncio.run(main_async(args.metrics, args.polls)), sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
