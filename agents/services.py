"""What the stages share in one worker process: settings, the pool, the sandbox, HTTP.

Opened lazily by the first stage that needs it and closed when the worker stops, so the
stage functions can be driven in tests with a real database and no Faust at all.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx

from sandbox.limits import SandboxLimits
from sandbox.protocol import Sandbox
from schema import rollups
from schema.db import Database
from schema.token_encryption import Keyring
from streams.settings import Settings


@dataclass
class Services:
    settings: Settings
    db: Database
    sandbox: Sandbox
    http: httpx.AsyncClient
    keyring: Keyring | None = None
    """Opens the stored provider tokens; used only on the fetch path."""
    _rollup_mode: rollups.Mode | None = field(default=None, repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> Services:
        return cls(
            settings=settings,
            db=Database(settings.database_url.get_secret_value(), max_size=settings.db_pool_size),
            sandbox=sandbox_for(settings.sandbox),
            http=httpx.AsyncClient(
                timeout=httpx.Timeout(settings.fetch.timeout_s, connect=5.0),
                follow_redirects=False,  # followed by fetch_client, only inside scope
                headers={"User-Agent": "metricloom/0.1"},
            ),
            keyring=keyring_for(settings),
        )

    async def rollup_mode(self) -> rollups.Mode:
        """Whether this database has continuous aggregates or maintained rollup tables
        (decided by the migrations, read once)."""
        if self._rollup_mode is None:
            async with self.db.transaction() as conn:
                self._rollup_mode = await rollups.detect_mode(conn)
        return self._rollup_mode

    async def close(self) -> None:
        await self.http.aclose()
        await self.sandbox.aclose()
        await self.db.close()


def keyring_for(settings: Settings) -> Keyring | None:
    """The token keys the settings name, or None when there are none (a connection with a
    token is then refused where it is stored or used, with a clear error)."""
    keys = settings.token_keys
    return Keyring.parse(keys.get_secret_value()) if keys is not None else None


def sandbox_for(limits: SandboxLimits) -> Sandbox:
    """The sandbox runner's client when a runner socket is configured (the worker then
    needs no Docker engine), else a local executor that runs the containers itself."""
    if limits.runner_socket:
        from sandbox.client import SandboxRunnerClient

        return SandboxRunnerClient(limits)
    from sandbox.executor import SandboxExecutor

    return SandboxExecutor(limits)
