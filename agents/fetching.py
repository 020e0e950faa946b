"""Fetch stage: a poll-due tick becomes a raw payload from the provider's API.

Credentials are resolved here and only here, from the worker's settings; they never
travel on Kafka, reach the sandbox, or appear in an error message. A provider's failure
(HTTP error, timeout, a body that is not JSON) belongs to that metric: it is recorded as
the metric's last error and dead-lettered; the next scheduled poll tries again.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx
import structlog

from agents.pipeline import Incoming, Send, Stage, dead_letter
from agents.services import Services
from schema import catalog
from schema.exceptions import MetricloomError
from schema.models import Endpoint, Metric, MetricTemplate
from streams.messages import PollDue, RawPayload
from streams.settings import Settings
from templates import get_template

log = structlog.get_logger(__name__)

MAX_BODY_BYTES = 10 * 1024 * 1024


class FetchError(MetricloomError):
    """The provider did not give a usable answer for one metric."""


def request_for(
    settings: Settings, template: MetricTemplate, endpoint: Endpoint, params: dict[str, str]
) -> httpx.Request:
    """The HTTP request for one metric's endpoint, credentials included."""
    base = getattr(settings.provider_urls, template.provider).rstrip("/")
    path = endpoint.path.format(**{k: quote(v, safe="") for k, v in params.items()})
    query = {k: v.format(**params) for k, v in endpoint.query.items()}
    headers = {"Accept": "application/json"}
    if template.provider == "github":
        headers["Accept"] = "application/vnd.github+json"
        headers["X-GitHub-Api-Version"] = "2022-11-28"
    token = getattr(settings.provider_tokens, template.provider)
    if token is not None:
        headers["Authorization"] = f"Bearer {token.get_secret_value()}"
    body = endpoint.body
    if body is not None:
        headers["Content-Type"] = "application/json"
    return httpx.Request(
        endpoint.method,
        base + path,
        params=query,
        headers=headers,
        content=json.dumps(body).encode() if body is not None else None,
    )


async def fetch_payload(http: httpx.AsyncClient, request: httpx.Request) -> Any:
    """Send the request and return the JSON body; FetchError for anything else."""
    where = f"{request.method} {request.url.copy_with(query=None)}"
    try:
        response = await http.send(request)
    except httpx.TimeoutException as exc:
        raise FetchError(f"{where}: timed out") from exc
    except httpx.HTTPError as exc:
        raise FetchError(f"{where}: {type(exc).__name__}: {exc}") from exc
    if response.status_code >= 400:
        raise FetchError(f"{where}: HTTP {response.status_code} {response.reason_phrase}")
    if len(response.content) > MAX_BODY_BYTES:
        raise FetchError(f"{where}: body of {len(response.content)} bytes is over the cap")
    try:
        return response.json()
    except ValueError as exc:
        raise FetchError(f"{where}: body is not JSON") from exc


class FetchStage(Stage[PollDue]):
    name = "fetch"

    def decode(self, value: bytes) -> PollDue:
        return PollDue.model_validate_json(value)

    async def handle(self, services: Services, batch: list[tuple[Incoming, PollDue]]) -> list[Send]:
        sends: list[Send] = []
        for message, tick in batch:
            async with services.db.transaction() as conn:
                metric = await catalog.get_metric(conn, tick.metric_id)
            if metric is None or metric.status != "active":
                why = "no such metric" if metric is None else f"metric is {metric.status}"
                sends.append(dead_letter(self.name, message, why, tick.metric_id))
                continue
            sends.append(await self._fetch_one(services, message, metric))
        return sends

    async def _fetch_one(self, services: Services, message: Incoming, metric: Metric) -> Send:
        template = get_template(metric.template_id)
        request = request_for(services.settings, template, template.polling, metric.params)
        fetched_at = datetime.now(UTC)
        try:
            payload = await fetch_payload(services.http, request)
        except FetchError as exc:
            log.warning("fetch.failed", metric_id=str(metric.id), error=str(exc))
            async with services.db.transaction() as conn:
                await catalog.record_metric_error(conn, metric.id, self.name, str(exc))
            return dead_letter(self.name, message, exc, metric.id)
        async with services.db.transaction() as conn:
            await catalog.record_fetch_success(conn, metric.id, fetched_at)
        raw = RawPayload(
            metric_id=metric.id,
            organization_id=metric.organization_id,
            template_id=template.id,
            fetched_at=fetched_at,
            endpoint=template.polling.path,
            payload=payload,
        )
        return Send("raw-payloads", str(metric.id), raw)
