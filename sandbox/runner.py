"""The sandbox runner: the only process that talks to the Docker engine.

It serves exactly one operation on a Unix socket, ``POST /v1/run`` (see
:class:`~sandbox.protocol.RunRequest`): run this code, with its entry name, over these
inputs, with the image, runtime and limits of the RUNNER's own settings. Anything else is
refused before Docker is touched: another path (404), another method (405), a query
string, a body that is not the request model, or any field it does not have (an image, a
mount, ``privileged``...): 400, with a one-line reason.

The runner holds no database, Kafka, provider or model settings: only the sandbox's
(``METRICLOOM_SANDBOX__*``) and its log level. At start it removes sandbox containers a
dead process left behind past their deadline.

    metricloom sandbox-runner
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from pathlib import Path

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler
from pydantic import ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from sandbox.exceptions import SandboxHardeningError, SandboxUnavailableError
from sandbox.executor import SandboxExecutor, sweep_logged
from sandbox.limits import SandboxLimits
from sandbox.protocol import (
    DEFAULT_RUNNER_SOCKET,
    RUN_PATH,
    RunnerFailure,
    RunRequest,
    RunResponse,
)

log = structlog.get_logger(__name__)

RUNNER_LABEL = "metricloom.sandbox.runner"
MAX_REQUEST_BYTES = 512 * 1024 * 1024
"""A stage batch of 100 payloads at the fetch stage's 10 MiB body cap, with room."""


class RunnerSettings(BaseSettings):
    """What the runner reads from the environment: the sandbox's settings and the log
    level, nothing else (other ``METRICLOOM_*`` variables are ignored)."""

    model_config = SettingsConfigDict(
        env_prefix="METRICLOOM_", env_nested_delimiter="__", frozen=True, extra="ignore"
    )

    sandbox: SandboxLimits = SandboxLimits()
    log_level: str = "INFO"

    @property
    def socket_path(self) -> str:
        return self.sandbox.runner_socket or DEFAULT_RUNNER_SOCKET


def _refuse(status: int, reason: str) -> web.Response:
    """A refusal: the status and one line saying why."""
    line = " ".join(reason.split())[:500]
    return web.Response(status=status, text=f"refused: {line}\n")


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"]) or "body"
    return f"{where}: {error['msg']}"


def create_app(executor: SandboxExecutor) -> web.Application:
    """The runner's HTTP application: one route, ``POST /v1/run``."""

    async def run(request: web.Request) -> web.Response:
        if request.query_string:
            return _refuse(400, "the operation takes no query parameters")
        if request.content_type != "application/json":
            return _refuse(400, "the body must be application/json")
        try:
            body = RunRequest.model_validate_json(await request.read())
        except ValidationError as exc:
            return _refuse(400, _first_error(exc))
        log.info("runner.batch", inputs=len(body.inputs), tenants=len(set(body.tenants or [""])))
        try:
            results = await executor.run(
                body.code, body.entry, body.inputs, body.tenants, body.language
            )
        except SandboxHardeningError as exc:
            failure = RunnerFailure(error="hardening", message=str(exc))
        except SandboxUnavailableError as exc:
            failure = RunnerFailure(error="unavailable", message=str(exc))
        else:
            return web.Response(
                body=RunResponse(results=results).model_dump_json().encode(),
                content_type="application/json",
            )
        log.warning("runner.unavailable", error=failure.message)
        return web.Response(
            status=503, body=failure.model_dump_json().encode(), content_type="application/json"
        )

    @web.middleware
    async def one_line_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
        """aiohttp's own refusals (404, 405, 413) as one-line reasons too."""
        try:
            return await handler(request)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            return _refuse(exc.status, f"{request.method} {request.path}: {exc.reason}")

    app = web.Application(client_max_size=MAX_REQUEST_BYTES, middlewares=[one_line_errors])
    app.router.add_post(RUN_PATH, run)
    return app


async def serve(settings: RunnerSettings, stop: asyncio.Event) -> None:
    """Serve on the socket until ``stop`` is set; batches in hand finish first."""
    executor = SandboxExecutor(settings.sandbox, labels={RUNNER_LABEL: str(os.getpid())})
    path = Path(settings.socket_path)
    _clear_socket(path, create_parent=True)  # a socket file left by a runner that died
    runner = web.AppRunner(
        create_app(executor), access_log=None, shutdown_timeout=settings.sandbox.batch_timeout_s
    )
    await runner.setup()
    site = web.UnixSite(runner, str(path))
    await site.start()
    os.chmod(path, 0o660)  # the worker (same user, or the group) may connect; nobody else
    sweep = asyncio.create_task(asyncio.to_thread(sweep_logged, executor))
    log.info(
        "runner.ready",
        socket=str(path),
        image=settings.sandbox.image,
        runtime=settings.sandbox.runtime,
        process_per=settings.sandbox.fresh_process,
    )
    try:
        await stop.wait()
    finally:
        log.info("runner.stopping")
        await runner.cleanup()
        await sweep
        executor.close()
        _clear_socket(path)


def _clear_socket(path: Path, create_parent: bool = False) -> None:
    if create_parent:
        path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def run_runner(settings: RunnerSettings) -> None:
    """Run the runner in the foreground until SIGTERM or SIGINT."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await serve(settings, stop)

    asyncio.run(main())
