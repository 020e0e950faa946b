"""Starting a worker: topics, stray sandboxes, then the Faust worker until SIGTERM."""

from __future__ import annotations

import asyncio

import faust
import structlog

from agents.services import Services
from sandbox.executor import sweep_stale
from streams.app import create_app
from streams.logging import configure_logging
from streams.settings import Settings
from streams.topics import ensure_topics

log = structlog.get_logger(__name__)


def run_worker(settings: Settings) -> None:
    """Run one worker in the foreground. Faust handles SIGTERM/SIGINT: it stops the
    agents after the batch in hand, commits offsets and exits."""
    configure_logging(settings.log_level)
    created = asyncio.run(ensure_topics(settings))
    if created:
        log.info("topics.created", topics=created)
    services = Services.from_settings(settings)
    removed = sweep_stale(services.sandbox.client)
    if removed:
        log.info("sandbox.swept", containers=removed)
    app = create_app(settings, services)
    worker = faust.Worker(app, loglevel=settings.log_level.lower(), quiet=True)
    worker.execute_from_commandline()
