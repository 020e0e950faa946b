"""Fixtures for the dashboard's tests: two organisations with real Kafka principals, the
built browser app, and ``python -m dashboard serve`` in a subprocess against the session's
broker, database and worker (faster than its compose service, and the same code).

The organisations are SCRAM principals of the shared broker, reused by every run (a
deleted credential misbehaves on Kafka 3.9.1, see streams/tenants.py): each run sets
their passwords and grants the ACLs of its own topic prefix, and takes exactly those ACLs
back at its end.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from streams.admin import ensure_tenant_topics
from streams.settings import Settings
from streams.tenants import Tenants, tenant_grants
from tests.conftest import ROOT, WorkerProcess, free_port, settings_env, wait_for_port

WEB = ROOT / "dashboard" / "web"
ARTIFACTS = ROOT / "test-artifacts" / "dashboard"
ORG, OTHER = "dash-a", "dash-b"


@dataclass(frozen=True)
class Tenant:
    org: str
    password: str


@pytest.fixture(scope="session")
def dashboard_tenants(settings: Settings, topics: None) -> Iterator[dict[str, Tenant]]:
    """Two organisations, each with its principal, ACLs and topics (the session's prefix)."""
    tenants = Tenants(settings)
    made = {}
    for org in (ORG, OTHER):
        password = secrets.token_urlsafe(18)
        tenants.add_tenant(org, password)
        asyncio.run(ensure_tenant_topics(settings, org))
        made[org] = Tenant(org, password)
    try:
        yield made
    finally:
        for org in made:
            tenants.ungrant(org, tenant_grants(settings, org))


def _newest(path: Path) -> float:
    return max((p.stat().st_mtime for p in path.rglob("*") if p.is_file()), default=0.0)


@pytest.fixture(scope="session")
def web_build() -> Path:
    """The browser app, built (npm) unless dist/ is newer than its sources."""
    dist = WEB / "dist"
    sources = max(_newest(WEB / "src"), (WEB / "package-lock.json").stat().st_mtime)
    if not (dist / "index.html").exists() or _newest(dist) < sources:
        if not (WEB / "node_modules").exists():
            subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=WEB, check=True)
        subprocess.run(["npm", "run", "build"], cwd=WEB, check=True, stdout=subprocess.DEVNULL)
    return dist


@dataclass
class DashboardServer:
    url: str
    log_path: Path

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture(scope="session")
def dashboard(
    settings: Settings,
    worker: WorkerProcess,
    dashboard_tenants: dict[str, Tenant],
    web_build: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[DashboardServer]:
    """The dashboard server on a free port, its own principal the admin (dead letters)."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("dashboard") / "dashboard.log"
    env = settings_env(settings, principal="admin") | {
        "METRICLOOM_DASHBOARD_PORT": str(port),
        "METRICLOOM_DASHBOARD_WEB_DIR": str(web_build),
    }
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dashboard", "serve"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for_port(port)
            yield DashboardServer(f"http://127.0.0.1:{port}", log_path)
        finally:
            proc.terminate()
            proc.wait(timeout=15)


def logged_in(server: DashboardServer, tenant: Tenant) -> httpx.Client:
    """An HTTP client with the organisation's session cookie."""
    client = httpx.Client(base_url=server.url, timeout=60)
    answer = client.post(
        "/api/login", json={"organization_id": tenant.org, "password": tenant.password}
    )
    assert answer.status_code == 200, answer.text
    return client


def command(client: httpx.Client, org: str, body: dict[str, Any]) -> dict[str, Any]:
    """A command through the dashboard's endpoint, accepted by the worker."""
    answer = client.post(f"/api/orgs/{org}/commands", json=body)
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    assert result["status"] == "accepted", result
    return result


def wait_until(check: Any, timeout: float, what: str, interval: float = 0.5) -> Any:
    """Ask ``check`` until it returns something truthy (a read of the pipeline's state,
    which offers no event to wait on from here)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(interval)
    raise AssertionError(f"{what} not within {timeout} s")


def artifact(name: str) -> str:
    """Where a test's screenshot goes (test-artifacts/, not in git)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return str(ARTIFACTS / name)


CHROMIUM = os.environ.get("METRICLOOM_CHROMIUM", "/usr/bin/chromium")
