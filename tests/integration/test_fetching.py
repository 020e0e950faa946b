"""Every fetch branch over real HTTP against the demo API: retries, rate limits in their
three spellings, 202, size cap, and what the fetch stage records on the metric."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from aiohttp import web

from agents.fetch_client import FetchError, RetryLaterError, fetch_payload, request_for
from agents.fetching import FetchStage
from agents.pipeline import Incoming
from agents.services import Services
from schema import ledger
from schema.models import Pagination
from streams.messages import PollDue
from streams.settings import FetchSettings, Settings
from templates import get_template
from tests.conftest import free_port
from tests.integration.conftest import stored_metric

pytestmark = pytest.mark.integration

FAST = FetchSettings(attempts=3, backoff_initial_s=0.01, backoff_max_s=0.05, max_inline_wait_s=2)
TEMPLATE = get_template("github-repo-stars")


def _request(settings: Settings, repo: str) -> httpx.Request:
    return request_for(settings, TEMPLATE, TEMPLATE.polling, {"OWNER": "octocat", "REPO": repo})


async def test_server_errors_are_retried_then_succeed(
    services: Services, settings: Settings
) -> None:
    """Two 503s, then an answer: the fetch succeeds within its attempts."""
    repo = "flaky-2"
    owner = f"o{uuid.uuid4().hex[:6]}"  # a fresh path: the demo API counts per path
    request = request_for(settings, TEMPLATE, TEMPLATE.polling, {"OWNER": owner, "REPO": repo})
    payload = await fetch_payload(services.http, request, FAST)
    assert payload["full_name"] == f"{owner}/{repo}"


async def test_persistent_server_errors_give_up_clearly(
    services: Services, settings: Settings
) -> None:
    """Ten 503s: a FetchError after the attempts allowed, naming the status."""
    request = request_for(
        settings,
        TEMPLATE,
        TEMPLATE.polling,
        {"OWNER": f"o{uuid.uuid4().hex[:6]}", "REPO": "flaky-10"},
    )
    with pytest.raises(FetchError, match=r"HTTP 503 \(after 3 attempts\)"):
        await fetch_payload(services.http, request, FAST)


async def test_retry_after_zero_is_waited_inline(services: Services, settings: Settings) -> None:
    """429 with Retry-After: 0 is retried at once, and the answer comes through."""
    request = request_for(
        settings,
        TEMPLATE,
        TEMPLATE.polling,
        {"OWNER": f"o{uuid.uuid4().hex[:6]}", "REPO": "ratelimited-1"},
    )
    assert (await fetch_payload(services.http, request, FAST))["stargazers_count"] > 0


@pytest.mark.parametrize(
    ("repo", "hours"), [("ratelimited-long", 1.0), ("ratelimited-date", 2.0), ("exhausted", 0.5)]
)
async def test_long_rate_limits_defer_the_poll(
    services: Services, settings: Settings, repo: str, hours: float
) -> None:
    """Retry-After in seconds or as a date, or X-RateLimit-Reset: come back then."""
    with pytest.raises(RetryLaterError) as info:
        await fetch_payload(services.http, _request(settings, repo), FAST)
    expected = datetime.now(UTC) + timedelta(hours=hours)
    assert abs((info.value.retry_at - expected).total_seconds()) < 5
    assert "rate limited until" in str(info.value)


async def test_accepted_means_come_back_later(services: Services, settings: Settings) -> None:
    """GitHub's 202 (statistics being computed) defers the poll by the configured delay."""
    with pytest.raises(RetryLaterError, match="202 Accepted"):
        await fetch_payload(services.http, _request(settings, "computing"), FAST)


async def test_oversized_body_is_refused(services: Services, settings: Settings) -> None:
    """An 11 MB answer is cut off at the 10 MB cap, with a clear error."""
    with pytest.raises(FetchError, match="over the 10485760-byte cap"):
        await fetch_payload(services.http, _request(settings, "huge"), FAST)


async def test_rate_limited_poll_is_deferred_then_sent_again_as_the_same_poll(
    services: Services, db_conn: Any
) -> None:
    """Through the fetch stage: the poll is deferred to the provider's retry time with its
    error on the metric; nothing is dead-lettered or produced now. When the time comes,
    the scheduler releases the same tick (same poll id), once."""
    metric = await stored_metric(db_conn, "ratelimited-long", template_id=TEMPLATE.id)
    tick = PollDue(metric_id=metric.id, due_at=datetime.now(UTC))
    incoming = Incoming("poll-due", 0, 1, None, tick.to_bytes())
    sends = await FetchStage().handle(services, [(incoming, tick)])
    assert sends == []
    cur = await db_conn.execute(
        "SELECT state, retry_at, error FROM polls WHERE id = %s", (tick.poll_id,)
    )
    poll = await cur.fetchone()
    later = datetime.now(UTC) + timedelta(hours=1)
    assert poll["state"] == "deferred" and abs((poll["retry_at"] - later).total_seconds()) < 10
    cur = await db_conn.execute("SELECT last_error FROM metrics WHERE id = %s", (metric.id,))
    assert "rate limited" in (await cur.fetchone())["last_error"]
    assert await FetchStage().handle(services, [(incoming, tick)]) == []  # early: nothing
    released = await ledger.release_deferred(db_conn, later + timedelta(minutes=1), 100)
    mine = [PollDue.model_validate(t) for t in released if t["metric_id"] == str(metric.id)]
    assert [t.poll_id for t in mine] == [tick.poll_id]
    again = await ledger.release_deferred(db_conn, later + timedelta(minutes=1), 100)
    assert all(t["metric_id"] != str(metric.id) for t in again)  # released once


async def test_a_redirect_inside_the_provider_is_followed(
    services: Services, settings: Settings
) -> None:
    """A 301 to another path of the same provider (a renamed repository) is followed."""
    owner = f"o{uuid.uuid4().hex[:6]}"
    request = request_for(
        settings, TEMPLATE, TEMPLATE.polling, {"OWNER": owner, "REPO": "redirect-home"}
    )
    payload = await fetch_payload(services.http, request, FAST)
    assert payload["full_name"] == f"{owner}/hello-world"


async def test_a_redirect_out_of_the_provider_is_refused(
    services: Services, settings: Settings
) -> None:
    """A 302 to a link-local address (a cloud metadata service) is an error on the metric,
    never a request: neither the credentials nor the answer travel."""
    with pytest.raises(FetchError, match=r"HTTP 302 to http://169\.254\.169\.254.*not followed"):
        await fetch_payload(
            services.http,
            _request(settings, "redirect-away"),
            FAST,
            scope=settings.provider_urls["github"],
        )


async def test_a_next_page_out_of_the_provider_is_refused(
    services: Services, settings: Settings
) -> None:
    """A ``link`` header naming another origin ends the fetch with an error instead of
    sending the request's headers (its Authorization) there."""
    base = settings.provider_urls["github"]
    request = httpx.Request(
        "GET",
        f"{base}/repos/o/link-away-90/stargazers?per_page=30",
        headers={"Authorization": "Bearer secret"},
    )
    with pytest.raises(FetchError, match=r"next page is at http://169\.254\.169\.254"):
        await fetch_payload(
            services.http, request, FAST, pagination=Pagination(kind="link"), scope=base
        )


Respond = Callable[[web.Request], web.Response]


@asynccontextmanager
async def local_server(
    host: str, respond: Respond | None = None
) -> AsyncIterator[tuple[str, list[web.Request]]]:
    """A real HTTP server on ``host`` answering every request with ``respond(request)``
    (200 ``{}`` by default); yields its base URL and the requests it received."""
    seen: list[web.Request] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append(request)
        return respond(request) if respond is not None else web.json_response({})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, host, port).start()
    try:
        yield f"http://{host}:{port}", seen
    finally:
        await runner.cleanup()


async def test_a_request_to_a_private_address_not_the_scopes_own_is_not_sent(
    services: Services, demo_api_url: str
) -> None:
    """The scope is the demo API named ``localhost`` (its own address, 127.0.0.1, is
    allowed: a local name the operator chose); a request to 127.0.0.2, another loopback
    address, is refused before it is sent: the server there sees nothing, so neither the
    token nor the answer travels."""
    scope = demo_api_url.replace("127.0.0.1", "localhost") + "/github"
    async with local_server("127.0.0.2") as (elsewhere, seen):
        request = httpx.Request(
            "GET", f"{elsewhere}/github/repos/o/r", headers={"Authorization": "Bearer secret"}
        )
        with pytest.raises(
            FetchError, match=r"host 127\.0\.0\.2 resolves to 127\.0\.0\.2, a non-public"
        ) as info:
            await fetch_payload(services.http, request, FAST, scope=scope)
    assert info.value.status == "request"
    assert seen == []


async def test_a_scope_named_by_a_local_name_still_fetches(
    services: Services, settings: Settings, demo_api_url: str
) -> None:
    """A provider base URL naming the demo API by a name without a dot (``localhost``
    here, ``demo-api`` in compose) that resolves to a private address keeps working."""
    local = settings.model_copy(
        update={
            "provider_urls": settings.provider_urls
            | {"github": demo_api_url.replace("127.0.0.1", "localhost") + "/github"}
        }
    )
    request = request_for(local, TEMPLATE, TEMPLATE.polling, {"OWNER": "octocat", "REPO": "x"})
    assert request.url.host == "localhost"
    payload = await fetch_payload(services.http, request, FAST, scope=local.provider_urls["github"])
    assert payload["full_name"] == "octocat/x"


@pytest.mark.parametrize("status", [302, 307])
async def test_a_redirect_to_a_private_address_sends_nothing_there(
    services: Services, status: int
) -> None:
    """A provider (a real local server) redirecting to another private address: refused
    (the target is outside the scope), and the server there receives no request, so the
    Authorization header goes nowhere."""
    async with local_server("127.0.0.2") as (elsewhere, seen):

        def moved(_: web.Request) -> web.Response:
            return web.Response(status=status, headers={"Location": f"{elsewhere}/steal"})

        async with local_server("127.0.0.1", moved) as (provider, asked):
            request = httpx.Request(
                "GET", f"{provider}/api/x", headers={"Authorization": "Bearer secret"}
            )
            with pytest.raises(FetchError, match=rf"HTTP {status} to http://127\.0\.0\.2"):
                await fetch_payload(services.http, request, FAST, scope=f"{provider}/api")
    assert len(asked) == 1 and asked[0].headers["Authorization"] == "Bearer secret"
    assert seen == []


async def test_a_redirect_keeps_the_original_headers_and_adds_none(
    services: Services,
) -> None:
    """A redirect inside the scope whose Location carries user-info is followed with the
    original request's headers only: the connection's Authorization, not a Basic one
    made from the Location, and no header the response sent."""

    def respond(request: web.Request) -> web.Response:
        if request.path == "/api/next":
            return web.json_response({"ok": True})
        return web.Response(
            status=307,
            headers={
                "Location": f"http://evil:pw@127.0.0.1:{request.url.port}/api/next",
                "Set-Cookie": "session=stolen",
                "X-Extra": "1",
            },
        )

    async with local_server("127.0.0.1", respond) as (provider, seen):
        request = httpx.Request(
            "POST",
            f"{provider}/api/first",
            headers={"Authorization": "Bearer secret", "Content-Type": "application/json"},
            content=b"{}",
        )
        body = await fetch_payload(services.http, request, FAST, scope=f"{provider}/api")
    assert body == {"ok": True}
    assert [r.path for r in seen] == ["/api/first", "/api/next"]
    follow = seen[1]
    assert follow.method == "POST" and follow.headers["Authorization"] == "Bearer secret"
    assert "Cookie" not in follow.headers and "X-Extra" not in follow.headers
