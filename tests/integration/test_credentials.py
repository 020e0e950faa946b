"""Credentials per connection: a direct token or the Nango proxy, resolved only in the
fetch stage, never on Kafka, never in errors."""

from __future__ import annotations

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
from streams.messages import PollDue
from streams.settings import Settings
from tests.integration.conftest import stored_metric

pytestmark = pytest.mark.integration


async def _poll(
    services: Services, db_conn: Any, repo: str, connection: Connection | None
) -> list[Any]:
    if connection is not None:
        await catalog.insert_connection(db_conn, connection)
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
