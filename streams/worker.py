"""Starting a worker: topics, stray sandboxes, then the Faust worker until SIGTERM."""

from __future__ import annotations

import asyncio
import threading

import faust
import structlog

from agents.services import Services
from providers import check_settings
from sandbox.executor import SandboxExecutor, sweep_logged
from streams.admin import ensure_topics
from streams.app import create_app
from streams.health import Health
from streams.logging import configure_logging
from streams.settings import Settings
from templates import load_templates

log = structlog.get_logger(__name__)


class Worker(faust.Worker):
    """Faust's worker, reporting readiness on the health endpoint once every agent runs."""

    def __init__(self, app: faust.App, health: Health, loglevel: str) -> None:
        super().__init__(app, loglevel=loglevel, quiet=True)
        self._health = health

    async def on_startup_finished(self) -> None:
        await super().on_startup_finished()
        self._health.ready.set()
        log.info("worker.ready", health=f"{self._health.address}/healthz")

    async def on_stop(self) -> None:
        self._health.ready.clear()
        await super().on_stop()


def run_worker(settings: Settings) -> None:
    """Run one worker in the foreground. Faust handles SIGTERM/SIGINT: it stops the
    agents after the batch in hand, commits offsets and exits."""
    configure_logging(settings.log_level)
    # Declared providers and templates, checked before anything runs: a file that does not
    # validate, or a setting naming no provider, stops the worker here with its name.
    check_settings(settings)
    load_templates(settings.templates_dir, settings.providers_dir)
    health = Health(settings.health_host, settings.health_port)
    health.start()
    log.info(
        "worker.starting",
        kafka=settings.kafka_bootstrap,
        topic_prefix=settings.topic_prefix,
        database=settings.database_location,
        health=f"{health.address}/healthz",
        metrics=f"{health.address}/metrics",
    )
    created = asyncio.run(ensure_topics(settings))
    if created:
        log.info("topics.created", topics=created)
    services = Services.from_settings(settings)
    # Stale containers of a dead worker, swept beside the start (ready without waiting for
    # the engine). A worker that sends its batches to a runner has no engine: the runner
    # sweeps at its own start.
    if isinstance(services.sandbox, SandboxExecutor):
        threading.Thread(target=sweep_logged, args=(services.sandbox,), daemon=True).start()
    app = create_app(settings, services)
    worker = Worker(app, health, settings.log_level.lower())
    try:
        worker.execute_from_commandline()
    finally:
        health.stop()
