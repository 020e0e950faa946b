"""Credentials per connection: a direct token or the Nango proxy, resolved only in the
fetch stage, never on Kafka, never in errors."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import SecretStr

from agents.fetching import FetchStage
from agents.pipeline import Incoming
from agents.services import Services
from demo_api.server import DEMO_NANGO_SECRET, DEMO_TOKEN
from schema import catalog
from schema.models import Connection
from schema.token_encryption import Keyring, new_key
from streams.messages import PollDue
from streams.settings import Settings
from tests.conftest import ROOT, settings_env
from tests.integration.conftest import stored_metric

pytestmark = pytest.mark.integration


async def _poll(
    services: Services, db_conn: Any, repo: str, connection: Connection | None
) -> list[Any]:
    if connection is not None:
        await catalog.insert_connection(db_conn, connection, services.keyring)
    metric = await stored_metric(
        db_conn, repo, org="cred-org", connection_id=connection.id if connection else None
    )
    tick = PollDue(metric_id=metric.id, due_at=datetime.now(UTC))
    return await FetchStage().handle(
        services, [(Incoming("poll-due", 0, 1, None, tick.to_bytes()), tick)]
    )


def _connection(**fields: Any) -> Connection:
    return Connection.model_validate(
        {"id": uuid.uuid4(), "organization_id": "cred-org", "provider": "github", **fields}
    )


async def test_private_repository_needs_its_token(services: Services, db_conn: Any) -> None:
    """Without credentials the provider says 401 (recorded, dead-lettered); with the
    connection's token the payload comes through, and the token is in no record."""
    [denied] = await _poll(services, db_conn, "private", None)
    assert denied.topic == "dead-letter" and "HTTP 401" in denied.record.error
    token = _connection(auth="token", token=SecretStr(DEMO_TOKEN))
    [sent] = await _poll(services, db_conn, "private", token)
    assert sent.topic == "raw-payloads"
    assert sent.record.payload["full_name"] == "octocat/private"
    assert DEMO_TOKEN not in sent.record.to_bytes().decode()
    assert DEMO_TOKEN not in repr(token) and DEMO_TOKEN not in denied.record.to_bytes().decode()


async def test_nango_connection_goes_through_the_proxy(
    services: Services, settings: Settings, db_conn: Any, demo_api_url: str
) -> None:
    """A Nango connection sends the request to Nango's proxy with the connection headers
    and the secret key; Nango adds the provider's credentials."""
    nango_settings = settings.model_copy(
        update={
            "nango": settings.nango.model_copy(
                update={
                    "base_url": f"{demo_api_url}/nango",
                    "secret_key": SecretStr(DEMO_NANGO_SECRET),
                }
            )
        }
    )
    nango_services = Services(
        settings=nango_settings, db=services.db, sandbox=services.sandbox, http=services.http
    )
    nango = _connection(
        auth="nango", nango_connection_id="conn-1", nango_provider_config_key="github"
    )
    [sent] = await _poll(nango_services, db_conn, "private", nango)
    assert sent.topic == "raw-payloads"
    assert sent.record.payload["full_name"] == "octocat/private"
    assert DEMO_NANGO_SECRET not in sent.record.to_bytes().decode()


async def test_connection_of_another_provider_is_refused(services: Services, db_conn: Any) -> None:
    """A YouTube connection on a GitHub metric is an error on the metric, not a leak."""
    wrong = _connection(auth="token", token=SecretStr("yt-secret"), provider="youtube")
    [dead] = await _poll(services, db_conn, "hello-world", wrong)
    assert dead.topic == "dead-letter"
    assert "is for youtube, not github" in dead.record.error
    assert "yt-secret" not in dead.record.to_bytes().decode()


def _rotate(settings: Settings, keys: str) -> dict[str, Any]:
    env = settings_env(settings) | {"METRICLOOM_TOKEN_KEYS": keys}
    done = subprocess.run(
        [sys.executable, "-m", "metricloom.cli", "tokens", "rotate"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


async def _stored_token(db_conn: Any, connection: Connection) -> str:
    cur = await db_conn.execute(
        "SELECT token FROM integration_connections WHERE id = %s", (connection.id,)
    )
    return str((await cur.fetchone())["token"])


async def test_tokens_are_encrypted_at_rest_and_rotated_to_a_new_key(
    services: Services, settings: Settings, db_conn: Any
) -> None:
    """The database holds no token in plain text; `metricloom tokens rotate` re-seals every
    token with a new first key (and one stored before encryption too), after which the old
    key can go; a worker without the key that sealed a token says so and sends nothing."""
    assert settings.token_keys is not None
    session_keys = settings.token_keys.get_secret_value()
    token = _connection(auth="token", token=SecretStr(DEMO_TOKEN))
    [sent] = await _poll(services, db_conn, "private", token)
    assert sent.topic == "raw-payloads"
    stored = await _stored_token(db_conn, token)
    assert DEMO_TOKEN not in stored and stored.startswith("v1:test:")
    legacy = _connection(auth="none")
    await catalog.insert_connection(db_conn, legacy, None)
    await db_conn.execute(  # a row from before encryption: its token in plain text
        "UPDATE integration_connections SET auth = 'token', token = %s WHERE id = %s",
        (DEMO_TOKEN, legacy.id),
    )

    rotated_key = new_key()
    counts = _rotate(settings, f"rotated:{rotated_key},{session_keys}")
    assert counts["key"] == "rotated" and counts["encrypted"] == 1 and counts["resealed"] >= 1
    try:
        for connection in (token, legacy):
            assert (await _stored_token(db_conn, connection)).startswith("v1:rotated:")
        rotated = Services(
            settings=settings,
            db=services.db,
            sandbox=services.sandbox,
            http=services.http,
            keyring=Keyring.parse(f"rotated:{rotated_key}"),  # the old key dropped
        )
        for connection in (token, legacy):
            metric = await stored_metric(
                db_conn, "private", org="cred-org", connection_id=connection.id
            )
            tick = PollDue(metric_id=metric.id, due_at=datetime.now(UTC))
            fetched: Any
            [fetched] = await FetchStage().handle(
                rotated, [(Incoming("poll-due", 0, 1, None, tick.to_bytes()), tick)]
            )
            assert fetched.topic == "raw-payloads"
            assert fetched.record.payload["full_name"] == "octocat/private"
        again = PollDue(metric_id=metric.id, due_at=datetime.now(UTC))
        refused: Any  # the session's key no longer opens it
        [refused] = await FetchStage().handle(
            services, [(Incoming("poll-due", 0, 1, None, again.to_bytes()), again)]
        )
        assert refused.topic == "dead-letter" and "no longer holds" in refused.record.error
    finally:  # back to the session's key, for the tests and the worker after this one
        assert _rotate(settings, f"{session_keys},rotated:{rotated_key}")["key"] == "test"
    assert (await _stored_token(db_conn, token)).startswith("v1:test:")
