"""Fixtures shared by the suites.

Integration tests run against the real services that ``make services`` starts (Kafka on
127.0.0.1:9092, TimescaleDB on 127.0.0.1:5432, the Docker engine). Each test session gets
its own database and its own topic prefix, so it can run beside a ``make up`` cluster and
leaves that cluster's data alone.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
from pydantic import SecretStr

from agents.pipeline import Incoming
from agents.services import Services
from sandbox.limits import SandboxLimits
from schema.migrate import apply_migrations
from schema.roles import grant_application_role
from schema.token_encryption import new_key
from streams.messages import TenantCommand
from streams.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
APP_ROLE = "metricloom_app"


def local_secret(name: str) -> str:
    """A password of the local cluster: from the environment, else from the .env that
    scripts/secrets.sh wrote (`make test` makes sure it exists)."""
    if os.environ.get(name):
        return os.environ[name]
    env = ROOT / ".env"
    for line in env.read_text().splitlines() if env.exists() else []:
        key, _, value = line.partition("=")
        if key == name:
            return value
    raise RuntimeError(f"{name} is not set and not in {env} (run `make secrets`)")


TEST_ORGS = (
    "o",
    "acme",
    "beta",
    "heal-org",
    "backfill-org",
    "owner-org",
    "other-org",
    "cred-org",
    "client-org",
    "e2e-org",
    "sched-org",
    "dl-org",
    "chaos",
    "bench",
)
"""The organisations the tests use: each has its topics from the session's start (the
worker's ingress subscribes to every organisation's commands topic)."""


def sandbox_limits(**overrides: object) -> SandboxLimits:
    """The sandbox settings the environment gives (``METRICLOOM_SANDBOX__IMAGE``,
    ``__RUNTIME``, ...: a second checkout tests its own image), with these overrides."""
    base = Settings().sandbox.model_dump()
    return SandboxLimits.model_validate(base | overrides)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The fault suite runs last: it restarts the broker and the database others share."""
    items.sort(key=lambda item: item.get_closest_marker("chaos") is not None)


def inbox_message(value: bytes | None, org: str = "o", offset: int = 7) -> Incoming:
    """A record ``org`` produced to its commands topic, as the ingress passes it on to the
    command stage (``command-inbox``)."""
    text, encoded = None, None
    if value is not None:
        try:
            text = value.decode()
        except UnicodeDecodeError:
            encoded = base64.b64encode(value).decode()
    envelope = TenantCommand(
        organization_id=org,
        topic=f"commands.{org}",
        partition=0,
        offset=offset,
        value=text,
        value_base64=encoded,
    )
    return Incoming("command-inbox", 0, offset, org.encode(), envelope.to_bytes())


@pytest.fixture(scope="session")
def run_id() -> str:
    return uuid.uuid4().hex[:10]


def admin_url(database: str = "postgres") -> str:
    """The local TimescaleDB as its superuser (the schema's owner): migrations, databases."""
    password = quote(local_secret("METRICLOOM_DB_ADMIN_PASSWORD"), safe="")
    return f"postgresql://metricloom:{password}@127.0.0.1:5432/{database}"


def app_url(database: str) -> str:
    """The local TimescaleDB as the rows-only application role, as the workers connect."""
    password = quote(local_secret("METRICLOOM_DB_APP_PASSWORD"), safe="")
    return f"postgresql://{APP_ROLE}:{password}@127.0.0.1:5432/{database}"


@contextmanager
def migrated_database(name: str) -> Iterator[str]:
    """Create and migrate a database on the test server (as its owner, as `metricloom
    migrate` does) and yield the application role's URL for it; drop it afterwards."""
    with psycopg.connect(admin_url(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        apply_migrations(admin_url(name))
        grant_application_role(admin_url(name), app_url(name))
        yield app_url(name)
    finally:
        with psycopg.connect(admin_url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def database_url(run_id: str) -> Iterator[str]:
    """A fresh, migrated database for this test session, dropped at the end."""
    with migrated_database(f"metricloom_test_{run_id}") as url:
        yield url


@pytest.fixture(scope="session")
def demo_api_url() -> Iterator[str]:
    """The demo API, served by the real CLI command in a subprocess."""
    with running_demo_api() as url:
        yield url


@contextmanager
def running_demo_api(rate_limit: int | None = None) -> Iterator[str]:
    """``metricloom demo-api`` in a subprocess on a free port; yields its base URL."""
    port = free_port()
    extra = ["--rate-limit", str(rate_limit)] if rate_limit is not None else []
    proc = subprocess.Popen(
        [sys.executable, "-m", "metricloom.cli", "demo-api", "--port", str(port), *extra],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def admin_kafka() -> dict[str, object]:
    """The admin principal (a super user): what the tests' own clients run as."""
    return {
        "username": "admin",
        "password": SecretStr(local_secret("METRICLOOM_KAFKA_ADMIN_PASSWORD")),
        "worker_password": SecretStr(local_secret("METRICLOOM_KAFKA_WORKER_PASSWORD")),
        "session_timeout_s": 4.0,
    }


def demo_provider_urls(demo: str) -> dict[str, str]:
    """Every provider's base URL on a demo API at ``demo``."""
    return {
        "github": f"{demo}/github",
        "youtube": f"{demo}/youtube/v3",
        "posthog": f"{demo}/posthog",
        "sheets": f"{demo}/sheets/v4",
        "open_meteo": f"{demo}/open-meteo/v1",
        "coingecko": f"{demo}/coingecko/api/v3",
    }


DEMO_PARAMS = {
    "OWNER": "octocat",
    "REPO": "hello-world",
    "VIDEO_ID": "dQw4w9WgXcQ",
    "CHANNEL_ID": "UC_x5XG1OV2P6uZZ5FSM9Ttw",
    "PROJECT_ID": "4242",
    "SPREADSHEET_ID": "1BxiMVs0XRA5nFMdKvBdBZjgmUUqptlbs74OgvE2upms",
    "RANGE": "Sheet1!A1:C40",
    "LATITUDE": "52.52",
    "LONGITUDE": "13.41",
    "COIN": "bitcoin",
    "CURRENCY": "usd",
    "COINS": "bitcoin,ethereum",
}
"""A value for every shipped template's parameters, each matching its pattern."""


@pytest.fixture(scope="session")
def settings(run_id: str, database_url: str, demo_api_url: str) -> Settings:
    return Settings(
        kafka=admin_kafka(),
        topic_prefix=f"test-{run_id}-",
        topic_partitions=2,
        database_url=SecretStr(database_url),
        scheduler_interval_s=1.0,
        stage_batch_window_s=0.2,
        pause_initial_s=0.2,
        pause_max_s=2.0,
        healing={"retry_gaps_s": (0.0, 0.5, 0.5)},
        provider_urls=demo_provider_urls(demo_api_url),
        token_keys=SecretStr(f"test:{new_key()}"),
    )


def run_cli(
    settings: Settings,
    *args: str,
    stdin: str | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """``metricloom ARGS`` as a user runs it, reading these settings as the admin principal
    (``env`` adds to them), its output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "metricloom.cli", *args],
        cwd=ROOT,
        env=settings_env(settings, principal="admin") | (env or {}),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def settings_env(settings: Settings, principal: str = "worker") -> dict[str, str]:
    """The environment that makes a process read these settings, as the worker principal
    (or, with ``principal="admin"``, as the admin one: operator commands)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("METRICLOOM_")}
    password = settings.kafka.worker_password if principal == "worker" else settings.kafka.password
    env.update(
        {
            "METRICLOOM_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
            "METRICLOOM_KAFKA__USERNAME": principal,
            "METRICLOOM_KAFKA__PASSWORD": password.get_secret_value() if password else "",
            "METRICLOOM_KAFKA__SESSION_TIMEOUT_S": str(settings.kafka.session_timeout_s),
            "METRICLOOM_TOPIC_PREFIX": settings.topic_prefix,
            "METRICLOOM_TOPIC_PARTITIONS": str(settings.topic_partitions),
            "METRICLOOM_DATABASE_URL": settings.database_url.get_secret_value(),
            "METRICLOOM_SCHEDULER_INTERVAL_S": str(settings.scheduler_interval_s),
            "METRICLOOM_STAGE_BATCH_WINDOW_S": str(settings.stage_batch_window_s),
            "METRICLOOM_STAGE_LINGER_MIN_S": str(settings.stage_linger_min_s),
            "METRICLOOM_STAGE_BATCHING": settings.stage_batching,
            "METRICLOOM_TRANSFORMER_LANGUAGE": settings.transformer_language,
            "METRICLOOM_HEALING__RETRY_GAPS_S": json.dumps(list(settings.healing.retry_gaps_s)),
            "METRICLOOM_PAUSE_INITIAL_S": str(settings.pause_initial_s),
            "METRICLOOM_PAUSE_MAX_S": str(settings.pause_max_s),
            "METRICLOOM_HEALTH_PORT": "0",  # any free port: several workers run at once
            "METRICLOOM_SANDBOX__IMAGE": settings.sandbox.image,
            "METRICLOOM_SANDBOX__RUNTIME": settings.sandbox.runtime,
            "METRICLOOM_TOKEN_KEYS": (
                settings.token_keys.get_secret_value() if settings.token_keys else ""
            ),
        }
    )
    env.update(
        {
            f"METRICLOOM_PROVIDER_URLS__{name.upper()}": url
            for name, url in settings.provider_urls.items()
        }
    )
    return env


WORKER_ARGS = ("-m", "metricloom.cli", "worker")


class WorkerProcess:
    """``metricloom worker`` in a subprocess, its output in a log file (tests and benchmarks;
    ``extra_env`` adds settings :func:`settings_env` does not carry; ``args``, the
    interpreter's arguments, lets a benchmark start a variant of the worker)."""

    def __init__(
        self,
        settings: Settings,
        log_path: Path,
        extra_env: dict[str, str] | None = None,
        args: Sequence[str] = WORKER_ARGS,
    ) -> None:
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, *args],
            cwd=ROOT,
            env=settings_env(settings) | (extra_env or {}),
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if '"worker.ready"' in self.output():
                return
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"worker exited with {self.proc.returncode}:\n{self.output()[-4000:]}"
                )
            time.sleep(0.2)
        raise TimeoutError(f"worker not ready after {timeout} s:\n{self.output()[-4000:]}")

    def stop(self, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


@pytest.fixture
async def services(settings: Settings) -> AsyncIterator[Services]:
    """The stages' shared resources on the real database and Docker, without Faust."""
    svc = Services.from_settings(settings)
    yield svc
    await svc.close()
