"""The demo API: GitHub, YouTube, PostHog and Google Sheets answers, shaped as the real
APIs document them, with values that evolve over time, so the local cluster and the tests
run with no internet and no credentials (aiohttp, already a dependency of Faust).

Routes mirror the real paths under a per-provider prefix: point
``METRICLOOM_PROVIDER_URLS__GITHUB`` at ``http://host:port/github`` and the template's
``/repos/{OWNER}/{REPO}`` resolves here. A repository, video or sheet named ``missing``
answers 404 the way the real API does.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from aiohttp import web

from demo_api import github, posthog, sheets, youtube

MISSING = "missing"


def _now() -> datetime:
    return datetime.now(UTC)


def _json(data: object, status: int = 200) -> web.Response:
    return web.json_response(
        data, status=status, dumps=lambda o: json.dumps(o, separators=(",", ":"))
    )


async def healthz(_: web.Request) -> web.Response:
    return _json({"ok": True})


async def github_repo(request: web.Request) -> web.Response:
    owner, repo = request.match_info["owner"], request.match_info["repo"]
    if MISSING in (owner, repo):
        return _json(github.NOT_FOUND, status=404)
    return _json(github.repository(owner, repo, _now()))


async def github_code_frequency(request: web.Request) -> web.Response:
    return _json(
        github.code_frequency(request.match_info["owner"], request.match_info["repo"], _now())
    )


async def github_commit_activity(request: web.Request) -> web.Response:
    return _json(
        github.commit_activity(request.match_info["owner"], request.match_info["repo"], _now())
    )


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
    return _json(posthog.query(request.match_info["project"], body, _now()))


async def sheets_values(request: web.Request) -> web.Response:
    sheet_id = request.match_info["sheet"]
    if sheet_id == MISSING:
        return _google_error(404, "Requested entity was not found.", "notFound")
    return _json(sheets.values(sheet_id, request.match_info["range"], _now()))


def make_app() -> web.Application:
    app = web.Application()
    app.add_routes(
        [
            web.get("/healthz", healthz),
            web.get("/github/repos/{owner}/{repo}", github_repo),
            web.get("/github/repos/{owner}/{repo}/stats/code_frequency", github_code_frequency),
            web.get("/github/repos/{owner}/{repo}/stats/commit_activity", github_commit_activity),
            web.get("/youtube/v3/videos", youtube_videos),
            web.get("/youtube/v3/channels", youtube_channels),
            web.post("/posthog/api/projects/{project}/query/", posthog_query),
            web.get("/sheets/v4/spreadsheets/{sheet}/values/{range}", sheets_values),
        ]
    )
    return app


def serve(host: str, port: int) -> None:
    web.run_app(make_app(), host=host, port=port, print=None, access_log=None)
