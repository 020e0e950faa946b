"""GitHub REST API shapes (https://docs.github.com/rest): repository, statistics."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from demo_api.evolving import counter, daily, week_starts

NOT_FOUND = {
    "message": "Not Found",
    "documentation_url": "https://docs.github.com/rest/repos/repos#get-a-repository",
    "status": "404",
}


def repository(owner: str, repo: str, now: datetime) -> dict[str, Any]:
    """``GET /repos/{owner}/{repo}``: the fields the real API returns, values evolving."""
    name = f"{owner}/{repo}"
    stars = counter(f"{name}:stars", now, base=500, per_day=20)
    forks = counter(f"{name}:forks", now, base=80, per_day=2)
    issues = 10 + counter(f"{name}:issues", now, base=10, per_day=1) % 90
    watchers = counter(f"{name}:watchers", now, base=40, per_day=0.5)
    repo_id = int.from_bytes(name.encode()[:6].ljust(6, b"\0"), "big") % 900_000_000
    api = f"https://api.github.com/repos/{name}"
    return {
        "id": repo_id,
        "node_id": f"R_kgDO{repo_id:08d}",
        "name": repo,
        "full_name": name,
        "private": False,
        "owner": {
            "login": owner,
            "id": repo_id // 7,
            "type": "Organization",
            "url": f"https://api.github.com/users/{owner}",
            "html_url": f"https://github.com/{owner}",
            "site_admin": False,
        },
        "html_url": f"https://github.com/{name}",
        "description": f"Demo repository {name}",
        "fork": False,
        "url": api,
        "created_at": "2019-04-02T09:15:44Z",
        "updated_at": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "pushed_at": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "homepage": None,
        "size": 48213,
        "stargazers_count": stars,
        "watchers_count": stars,
        "language": "Python",
        "has_issues": True,
        "forks_count": forks,
        "archived": False,
        "disabled": False,
        "open_issues_count": issues,
        "license": {"key": "apache-2.0", "name": "Apache License 2.0", "spdx_id": "Apache-2.0"},
        "topics": ["metrics", "demo"],
        "visibility": "public",
        "forks": forks,
        "open_issues": issues,
        "watchers": stars,
        "default_branch": "main",
        "network_count": forks,
        "subscribers_count": watchers,
    }


def code_frequency(owner: str, repo: str, now: datetime) -> list[list[int]]:
    """``GET /repos/{owner}/{repo}/stats/code_frequency``: [week, additions, -deletions]."""
    name = f"{owner}/{repo}"
    return [
        [int(week.timestamp()), daily(f"{name}:add", week, 400), -daily(f"{name}:del", week, 200)]
        for week in week_starts(now, 52)
    ]


def commit_activity(owner: str, repo: str, now: datetime) -> list[dict[str, Any]]:
    """``GET /repos/{owner}/{repo}/stats/commit_activity``: last 52 weeks, per day."""
    name = f"{owner}/{repo}"
    out = []
    for week in week_starts(now, 52):
        days = [daily(f"{name}:commits:{d}", week, 6) for d in range(7)]
        out.append({"days": days, "total": sum(days), "week": int(week.timestamp())})
    return out


def now_utc() -> datetime:
    return datetime.now(UTC)


def participation(owner: str, repo: str, now: datetime) -> dict[str, list[int]]:
    """``GET /repos/{owner}/{repo}/stats/participation``: weekly commit counts, oldest
    first, for everyone and for the owner."""
    name = f"{owner}/{repo}"
    weeks = week_starts(now, 52)
    everyone = [sum(daily(f"{name}:commits:{d}", week, 6) for d in range(7)) for week in weeks]
    return {"all": everyone, "owner": [count // 3 for count in everyone]}
