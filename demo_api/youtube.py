"""YouTube Data API v3 shapes (https://developers.google.com/youtube/v3/docs):
``videos.list`` and ``channels.list`` with ``part=statistics``. Counts are strings, as
the real API sends them."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from demo_api.evolving import counter


def _etag(value: str) -> str:
    return hashlib.sha1(value.encode()).hexdigest()[:27]  # noqa: S324 - an etag, not security


def videos(ids: list[str], now: datetime) -> dict[str, Any]:
    items = [
        {
            "kind": "youtube#video",
            "etag": _etag(f"{video}{now:%Y%m%d%H%M}"),
            "id": video,
            "statistics": {
                "viewCount": str(counter(f"yt:{video}:views", now, base=10_000, per_day=900)),
                "likeCount": str(counter(f"yt:{video}:likes", now, base=400, per_day=30)),
                "favoriteCount": "0",
                "commentCount": str(counter(f"yt:{video}:comments", now, base=40, per_day=3)),
            },
        }
        for video in ids
    ]
    return _list("youtube#videoListResponse", items, now)


def channels(ids: list[str], now: datetime) -> dict[str, Any]:
    items = [
        {
            "kind": "youtube#channel",
            "etag": _etag(f"{channel}{now:%Y%m%d%H%M}"),
            "id": channel,
            "statistics": {
                "viewCount": str(
                    counter(f"yt:{channel}:channel-views", now, base=500_000, per_day=5000)
                ),
                "subscriberCount": str(counter(f"yt:{channel}:subs", now, base=20_000, per_day=40)),
                "hiddenSubscriberCount": False,
                "videoCount": str(counter(f"yt:{channel}:videos", now, base=100, per_day=0.2)),
            },
        }
        for channel in ids
    ]
    return _list("youtube#channelListResponse", items, now)


def _list(kind: str, items: list[dict[str, Any]], now: datetime) -> dict[str, Any]:
    return {
        "kind": kind,
        "etag": _etag(f"{kind}{now:%Y%m%d%H%M}"),
        "items": items,
        "pageInfo": {"totalResults": len(items), "resultsPerPage": len(items)},
    }
