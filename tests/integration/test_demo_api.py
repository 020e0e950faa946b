"""The demo API over real HTTP: the real APIs' shapes, values that evolve."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from demo_api.evolving import counter

pytestmark = pytest.mark.integration


def test_github_repository_shape_and_not_found(demo_api_url: str) -> None:
    """``GET /repos/{owner}/{repo}`` answers GitHub's fields; ``missing`` is a 404."""
    repo = httpx.get(f"{demo_api_url}/github/repos/octocat/hello-world").json()
    for field in (
        "id",
        "full_name",
        "stargazers_count",
        "forks_count",
        "open_issues_count",
        "subscribers_count",
        "owner",
        "created_at",
        "default_branch",
    ):
        assert field in repo
    assert repo["full_name"] == "octocat/hello-world"
    missing = httpx.get(f"{demo_api_url}/github/repos/octocat/missing")
    assert missing.status_code == 404 and missing.json()["message"] == "Not Found"


def test_github_statistics_shapes(demo_api_url: str) -> None:
    """code_frequency is [week, additions, -deletions]; commit_activity has 7 days a week."""
    weeks = httpx.get(f"{demo_api_url}/github/repos/a/b/stats/code_frequency").json()
    assert len(weeks) == 52 and all(len(w) == 3 and w[2] <= 0 for w in weeks)
    activity = httpx.get(f"{demo_api_url}/github/repos/a/b/stats/commit_activity").json()
    assert all(len(w["days"]) == 7 and w["total"] == sum(w["days"]) for w in activity)


def test_youtube_statistics_are_strings(demo_api_url: str) -> None:
    """videos.list and channels.list return counts as strings, as the real API does."""
    videos = httpx.get(
        f"{demo_api_url}/youtube/v3/videos", params={"part": "statistics", "id": "abc"}
    ).json()
    stats = videos["items"][0]["statistics"]
    assert videos["kind"] == "youtube#videoListResponse" and stats["viewCount"].isdigit()
    channels = httpx.get(
        f"{demo_api_url}/youtube/v3/channels", params={"part": "statistics", "id": "UC1"}
    ).json()
    assert channels["items"][0]["statistics"]["subscriberCount"].isdigit()
    bad = httpx.get(f"{demo_api_url}/youtube/v3/videos", params={"id": "abc"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == 400


def test_posthog_query_and_sheets_values(demo_api_url: str) -> None:
    """PostHog's query API returns rows of [day, count]; Sheets returns string rows."""
    body = {"query": {"kind": "HogQLQuery", "query": "select 1"}, "date_from": "-7d"}
    answer = httpx.post(f"{demo_api_url}/posthog/api/projects/1/query/", json=body).json()
    assert len(answer["results"]) == 7 and answer["columns"] == ["day", "count()"]
    sheet = httpx.get(f"{demo_api_url}/sheets/v4/spreadsheets/s1/values/Sheet1!A1:C40").json()
    assert sheet["majorDimension"] == "ROWS" and sheet["values"][0] == ["Date", "Revenue", "Region"]


def test_counters_grow_over_time() -> None:
    """Counters never go down, so polls accumulate a believable history."""
    start = datetime(2025, 1, 1, tzinfo=UTC)
    values = [counter("x/y:stars", start + timedelta(hours=h)) for h in range(0, 24 * 30, 7)]
    assert values == sorted(values) and values[-1] > values[0]
