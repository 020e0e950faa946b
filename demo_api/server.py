"""The demo API: GitHub, YouTube, PostHog and Google Sheets answers (and Open-Meteo's and
CoinGecko's, for the templates that prove providers are data), shaped as the real
APIs document them, with values that evolve over time, so the local cluster and the tests
run with no internet and no credentials (aiohttp, already a dependency of Faust).

Routes mirror the real paths under a per-provider prefix: point
``METRICLOOM_PROVIDER_URLS__GITHUB`` at ``http://host:port/github`` and the template's
``/repos/{OWNER}/{REPO}`` resolves here. A repository, video or sheet named ``missing``
answers 404 the way the real API does.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

from aiohttp import ClientSession, web

from demo_api import coingecko, github, open_meteo, posthog, sheets, youtube

MISSING = "missing"
RATE_LIMIT = 5000


class Behaviours:
    """Provider misbehaviour on request, by repository name, so tests exercise every fetch
    branch over real HTTP: ``flaky-N`` (the first N requests of a path answer 503),
    ``ratelimited-N`` (429 with ``Retry-After: 0``, N times), ``ratelimited-long``
    (``Retry-After: 3600``), ``ratelimited-date`` (``Retry-After`` as an HTTP date, two
    hours ahead), ``exhausted`` (403 with ``X-RateLimit-Remaining: 0`` and a reset time),
    ``computing`` (GitHub's 202 while statistics are computed), ``computing-N`` (202 for
    the first N requests of a path), ``computing-history`` (202 from the commit-activity
    history only) and ``huge`` (an 11 MB body).
    """

    def __init__(self, rate_limit: int = RATE_LIMIT) -> None:
        self.hits: dict[str, int] = {}
        self.rate_limit = rate_limit
        self.windows: dict[tuple[str, int], int] = {}
        self.served = 0
        self.over_limit = 0
        self.requests: dict[str, int] = {}

    def rate(self, credential: str) -> tuple[dict[str, str], bool]:
        """GitHub's rate-limit headers for this credential's hourly window; True when the
        request is beyond the limit (it then gets a 429, and is counted)."""
        self.served += 1
        reset = int(_now().timestamp()) // 3600 * 3600 + 3600
        used = self.windows[(credential, reset)] = self.windows.get((credential, reset), 0) + 1
        over = used > self.rate_limit
        self.over_limit += over
        headers = {
            "X-RateLimit-Limit": str(self.rate_limit),
            "X-RateLimit-Remaining": str(max(0, self.rate_limit - used)),
            "X-RateLimit-Reset": str(reset),
            "X-RateLimit-Resource": "core",
        }
        return headers, over

    def misbehave(self, name: str, path: str) -> web.Response | None:
        count = self.hits[path] = self.hits.get(path, 0) + 1
        kind, _, n = name.rpartition("-")
        if kind == "flaky" and n.isdigit() and count <= int(n):
            return _json({"message": "Service Unavailable"}, status=503)
        if kind == "ratelimited" and n.isdigit() and count <= int(n):
            return _rate_limited({"Retry-After": "0"})
        if name == "ratelimited-long":
            return _rate_limited({"Retry-After": "3600"})
        if name == "ratelimited-date":
            when = format_datetime(_now() + timedelta(hours=2), usegmt=True)
            return _rate_limited({"Retry-After": when})
        if name == "exhausted":
            reset = str(int((_now() + timedelta(minutes=30)).timestamp()))
            return _json(
                {"message": "API rate limit exceeded"},
                status=403,
                headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset},
            )
        if name == "redirect-away":  # a provider sending its client to a link-local address
            return web.Response(
                status=302, headers={"Location": "http://169.254.169.254/latest/meta-data/"}
            )
        if name == "redirect-home":  # a renamed repository: the same API, another path
            return web.Response(
                status=301, headers={"Location": path.replace("redirect-home", "hello-world")}
            )
        if name == "computing":
            return _json({}, status=202)
        if kind == "computing" and n.isdigit() and count <= int(n):
            return _json({}, status=202)
        if name == "computing-history" and path.endswith("/stats/commit_activity"):
            return _json({}, status=202)
        return None


def _rate_limited(headers: dict[str, str]) -> web.Response:
    body = {
        "message": "API rate limit exceeded",
        "documentation_url": "https://docs.github.com/rest/rate-limit",
    }
    return _json(body, status=429, headers={"X-RateLimit-Remaining": "0", **headers})


def _now() -> datetime:
    return datetime.now(UTC)


def _json(data: object, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(
        data, status=status, headers=headers, dumps=lambda o: json.dumps(o, separators=(",", ":"))
    )


async def healthz(_: web.Request) -> web.Response:
    return _json({"ok": True})


def _behaviours(request: web.Request) -> Behaviours:
    return request.app[BEHAVIOURS]


async def _github(request: web.Request, build: Any) -> web.Response:
    owner, repo = request.match_info["owner"], request.match_info["repo"]
    behaviours = _behaviours(request)
    odd = behaviours.misbehave(repo, request.path)
    if odd is not None:
        return odd
    if MISSING in (owner, repo):
        return _json(github.NOT_FOUND, status=404)
    data = build(owner, repo, _now())
    if repo == "huge":
        data = {**data, "description": "x" * (11 * 1024 * 1024)} if isinstance(data, dict) else data
    headers, over = behaviours.rate(request.headers.get("Authorization", "anonymous"))
    if over:
        return _rate_limited({**headers, "Retry-After": "60"})
    return _json(data, headers=headers)


DEMO_TOKEN = "demo-token"  # noqa: S105 - the demo API's fake credential
DEMO_NANGO_SECRET = "demo-nango-secret"  # noqa: S105 - fake, for the demo


async def github_repo(request: web.Request) -> web.Response:
    if request.match_info["repo"] == "private" and (
        request.headers.get("Authorization") != f"Bearer {DEMO_TOKEN}"
    ):
        return _json(
            {
                "message": "Requires authentication",
                "documentation_url": "https://docs.github.com/rest",
            },
            status=401,
        )
    return await _github(request, github.repository)


def _count_from(name: str, default: int) -> int:
    tail = name.rpartition("-")[2]
    return int(tail) if tail.isdigit() else default


async def github_stargazers(request: web.Request) -> web.Response:
    """``GET /repos/{owner}/{repo}/stargazers`` with ``Accept: …star+json``: paged by
    ``per_page``/``page`` with a ``Link`` header, as GitHub does (``stars-N``: N stars)."""
    total = _count_from(request.match_info["repo"], 30)
    per_page = min(100, int(request.query.get("per_page", "30")))
    page = int(request.query.get("page", "1"))
    start = (page - 1) * per_page
    first = datetime(2024, 1, 1, tzinfo=UTC)
    rows = [
        {
            "starred_at": (first + timedelta(hours=7 * n)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "user": {"login": f"user{n}", "id": 1000 + n, "type": "User"},
        }
        for n in range(start, min(total, start + per_page))
    ]
    links = []
    last = max(1, -(-total // per_page))
    if page < last and request.match_info["repo"].startswith("link-away"):
        links.append('<http://169.254.169.254/repos/x/stargazers?page=2>; rel="next"')
    elif page < last:
        links.append(f'<{request.url.update_query(page=str(page + 1))}>; rel="next"')
        links.append(f'<{request.url.update_query(page=str(last))}>; rel="last"')
    headers = {"Link": ", ".join(links)} if links else {}
    return _json(rows, headers=headers)


async def youtube_playlist_items(request: web.Request) -> web.Response:
    """``playlistItems.list``: ``maxResults`` per page, ``nextPageToken`` until the end
    (``PL…-N``: N videos)."""
    total = _count_from(request.query.get("playlistId", ""), 20)
    size = min(50, int(request.query.get("maxResults", "5")))
    start = int(request.query.get("pageToken", "0") or 0)
    items = [
        {
            "kind": "youtube#playlistItem",
            "id": f"item{n}",
            "snippet": {
                "position": n,
                "title": f"Video {n}",
                "publishedAt": (datetime(2024, 1, 1, tzinfo=UTC) + timedelta(days=n)).strftime(
                    "%Y-%m-%dT%H:%M:%SZ"
                ),
            },
        }
        for n in range(start, min(total, start + size))
    ]
    body: dict[str, Any] = {
        "kind": "youtube#playlistItemListResponse",
        "items": items,
        "pageInfo": {"totalResults": total, "resultsPerPage": size},
    }
    if start + size < total:
        body["nextPageToken"] = str(start + size)
    return _json(body)


async def nango_proxy(request: web.Request) -> web.Response:
    """Nango's proxy (``/proxy/{path}``): checks the secret key and the connection
    headers, then forwards to the provider with the provider's credentials added."""
    if request.headers.get("Authorization") != f"Bearer {DEMO_NANGO_SECRET}":
        return _json(
            {"error": {"code": "unknown_user_account", "message": "bad secret key"}}, status=401
        )
    key = request.headers.get("Provider-Config-Key", "")
    if not request.headers.get("Connection-Id") or key not in {
        "github",
        "youtube",
        "posthog",
        "sheets",
    }:
        return _json(
            {"error": {"code": "missing_connection", "message": "no such connection"}}, status=400
        )
    prefix = {
        "github": "/github",
        "youtube": "/youtube/v3",
        "posthog": "/posthog",
        "sheets": "/sheets/v4",
    }[key]
    target = request.url.with_path(prefix + "/" + request.match_info["tail"])
    headers = {"Authorization": f"Bearer {DEMO_TOKEN}", "Content-Type": "application/json"}
    async with (
        ClientSession() as session,
        session.request(
            request.method, target, headers=headers, data=await request.read()
        ) as upstream,
    ):
        body = await upstream.read()
        return web.Response(body=body, status=upstream.status, content_type="application/json")


async def github_code_frequency(request: web.Request) -> web.Response:
    return await _github(request, github.code_frequency)


async def github_commit_activity(request: web.Request) -> web.Response:
    return await _github(request, github.commit_activity)


async def github_participation(request: web.Request) -> web.Response:
    return await _github(request, github.participation)


def _google_error(status: int, message: str, reason: str) -> web.Response:
    return _json(
        {
            "error": {
                "code": status,
                "message": message,
                "errors": [{"message": message, "domain": "global", "reason": reason}],
            }
        },
        status=status,
    )


async def youtube_videos(request: web.Request) -> web.Response:
    if "statistics" not in request.query.get("part", ""):
        return _google_error(400, "Required parameter: part", "required")
    ids = [i for i in request.query.get("id", "").split(",") if i and i != MISSING]
    return _json(youtube.videos(ids, _now()))


async def youtube_channels(request: web.Request) -> web.Response:
    if "statistics" not in request.query.get("part", ""):
        return _google_error(400, "Required parameter: part", "required")
    ids = [i for i in request.query.get("id", "").split(",") if i and i != MISSING]
    return _json(youtube.channels(ids, _now()))


async def posthog_query(request: web.Request) -> web.Response:
    try:
        body = await request.json()
    except ValueError:
        return _json(
            {
                "type": "validation_error",
                "code": "parse_error",
                "detail": "Malformed request",
                "attr": None,
            },
            status=400,
        )
    answer = posthog.query(request.match_info["project"], body, _now())
    if "limit" in request.query:  # paged: hasMore and an offset, as the query API pages
        limit, offset = int(request.query["limit"]), int(request.query.get("offset", "0"))
        rows = answer["results"]
        answer = {
            **answer,
            "results": rows[offset : offset + limit],
            "limit": limit,
            "offset": offset,
            "hasMore": offset + limit < len(rows),
        }
    return _json(answer)


async def sheets_values(request: web.Request) -> web.Response:
    sheet_id = request.match_info["sheet"]
    if sheet_id == MISSING:
        return _google_error(404, "Requested entity was not found.", "notFound")
    return _json(sheets.values(sheet_id, request.match_info["range"], _now()))


def _bad_request(reason: str) -> web.Response:
    return _json({"error": True, "reason": reason}, status=400)


async def open_meteo_forecast(request: web.Request) -> web.Response:
    """Open-Meteo's ``/v1/forecast`` (its error body on a bad parameter)."""
    query = request.query
    try:
        latitude, longitude = float(query["latitude"]), float(query["longitude"])
        past_days = int(query.get("past_days", "0"))
        forecast_days = int(query.get("forecast_days", "7"))
    except (KeyError, ValueError):
        return _bad_request("Parameter 'latitude' and 'longitude' must be floats")
    if not (-90 <= latitude <= 90 and -180 <= longitude <= 180):
        return _bad_request("Latitude must be in range of -90 to 90°.")
    variables = [v for v in query.get("hourly", "").split(",") if v]
    return _json(
        open_meteo.forecast(latitude, longitude, variables, past_days, forecast_days, _now())
    )


async def coingecko_simple_price(request: web.Request) -> web.Response:
    ids = [i for i in request.query.get("ids", "").split(",") if i]
    currencies = [c for c in request.query.get("vs_currencies", "").split(",") if c]
    if not ids or not currencies:
        return _json({"error": "Missing parameter ids or vs_currencies"}, status=422)
    return _json(coingecko.simple_price(ids, currencies, _now()))


async def coingecko_exchange_rates(_: web.Request) -> web.Response:
    return _json(coingecko.exchange_rates(_now()))


async def coingecko_market_chart(request: web.Request) -> web.Response:
    coin = request.match_info["coin"]
    if coin not in coingecko.USD:
        return _json({"error": "coin not found"}, status=404)
    days = request.query.get("days", "1")
    if not days.isdigit() or not 1 <= int(days) <= 365:
        return _json({"error": "invalid days"}, status=422)
    currency = request.query.get("vs_currency", "usd")
    return _json(coingecko.market_chart(coin, currency, int(days), _now()))


BEHAVIOURS = web.AppKey("behaviours", Behaviours)


async def stats(request: web.Request) -> web.Response:
    """What the demo API saw: requests beyond a rate limit (load tests), and every path's
    request count (the fault suite's "polled once per period" oracle)."""
    behaviours = _behaviours(request)
    return _json(
        {
            "served": behaviours.served,
            "over_limit": behaviours.over_limit,
            "paths": behaviours.requests,
        }
    )


@web.middleware
async def count_requests(request: web.Request, handler: Any) -> web.StreamResponse:
    if request.path not in ("/healthz", "/demo/stats"):
        counts = _behaviours(request).requests
        counts[request.path] = counts.get(request.path, 0) + 1
    response: web.StreamResponse = await handler(request)
    return response


def make_app(rate_limit: int = RATE_LIMIT) -> web.Application:
    app = web.Application(middlewares=[count_requests])
    app[BEHAVIOURS] = Behaviours(rate_limit)
    app.add_routes(
        [
            web.get("/healthz", healthz),
            web.get("/demo/stats", stats),
            web.route("*", "/nango/proxy/{tail:.*}", nango_proxy),
            web.get("/github/repos/{owner}/{repo}", github_repo),
            web.get("/github/repos/{owner}/{repo}/stats/code_frequency", github_code_frequency),
            web.get("/github/repos/{owner}/{repo}/stats/commit_activity", github_commit_activity),
            web.get("/github/repos/{owner}/{repo}/stats/participation", github_participation),
            web.get("/github/repos/{owner}/{repo}/stargazers", github_stargazers),
            web.get("/youtube/v3/playlistItems", youtube_playlist_items),
            web.get("/youtube/v3/videos", youtube_videos),
            web.get("/youtube/v3/channels", youtube_channels),
            web.post("/posthog/api/projects/{project}/query/", posthog_query),
            web.get("/sheets/v4/spreadsheets/{sheet}/values/{range}", sheets_values),
            web.get("/open-meteo/v1/forecast", open_meteo_forecast),
            web.get("/coingecko/api/v3/simple/price", coingecko_simple_price),
            web.get("/coingecko/api/v3/exchange_rates", coingecko_exchange_rates),
            web.get("/coingecko/api/v3/coins/{coin}/market_chart", coingecko_market_chart),
        ]
    )
    return app


def serve(host: str, port: int, rate_limit: int = RATE_LIMIT) -> None:
    web.run_app(make_app(rate_limit), host=host, port=port, print=None, access_log=None)
