"""PostHog query API shape (``POST /api/projects/{id}/query/`` with a HogQLQuery):
one row per day, ``[day, count]``, as a daily-events query answers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from demo_api.evolving import daily


def query(project_id: str, body: dict[str, Any], now: datetime) -> dict[str, Any]:
    query_doc = body.get("query") or {}
    hogql = str(query_doc.get("query", ""))
    days = 30
    date_from = str(body.get("date_from") or query_doc.get("date_from") or "")
    if date_from.startswith("-") and date_from.endswith("d") and date_from[1:-1].isdigit():
        days = max(1, min(365, int(date_from[1:-1])))
    today = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    date_to = str(body.get("date_to") or "")
    if len(date_from) == 10 and len(date_to) == 10:  # an explicit window of ISO dates
        first = datetime.fromisoformat(date_from).replace(tzinfo=UTC)
        last = min(today, datetime.fromisoformat(date_to).replace(tzinfo=UTC))
        days = max(0, (last - first).days + 1)
        today = last
    rows = [
        [
            (today - timedelta(days=n)).strftime("%Y-%m-%d"),
            daily(f"ph:{project_id}:events", today - timedelta(days=n), 800),
        ]
        for n in range(days - 1, -1, -1)
    ]
    return {
        "cache_key": f"cache_{project_id}_{days}",
        "columns": ["day", "count()"],
        "types": [["day", "Date"], ["count()", "UInt64"]],
        "hogql": hogql,
        "is_cached": False,
        "last_refresh": now.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "limit": 100,
        "offset": 0,
        "hasMore": False,
        "results": rows,
        "timezone": "UTC",
    }
