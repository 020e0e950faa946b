"""Pagination over real HTTP against the demo API: Link headers, page tokens, has-more
flags, empty pages, and the page cap."""

from __future__ import annotations

import httpx
import pytest

from agents.fetch_client import FetchError, fetch_payload
from agents.services import Services
from schema.models import Pagination

pytestmark = pytest.mark.integration


async def test_link_headers_are_followed_to_the_last_page(
    services: Services, demo_api_url: str
) -> None:
    """250 stargazers at 100 a page: three pages, every item once, in order."""
    request = httpx.Request(
        "GET", f"{demo_api_url}/github/repos/o/stars-250/stargazers?per_page=100"
    )
    stars = await fetch_payload(services.http, request, pagination=Pagination(kind="link"))
    assert len(stars) == 250
    assert [s["user"]["login"] for s in stars] == [f"user{n}" for n in range(250)]


async def test_an_empty_first_page_is_an_empty_payload(
    services: Services, demo_api_url: str
) -> None:
    """A repository without stars: one empty page, no error."""
    request = httpx.Request("GET", f"{demo_api_url}/github/repos/o/stars-0/stargazers")
    assert await fetch_payload(services.http, request, pagination=Pagination(kind="link")) == []


async def test_page_tokens_are_followed(services: Services, demo_api_url: str) -> None:
    """120 playlist items at 50 a page: the items merged under ``items``, the rest of the
    first page's body kept."""
    request = httpx.Request(
        "GET", f"{demo_api_url}/youtube/v3/playlistItems?playlistId=PL-120&maxResults=50"
    )
    body = await fetch_payload(
        services.http, request, pagination=Pagination(kind="page_token", items_path="items")
    )
    assert len(body["items"]) == 120
    assert body["pageInfo"]["totalResults"] == 120
    assert [i["snippet"]["position"] for i in body["items"]] == list(range(120))


async def test_has_more_flags_are_followed_with_offsets(
    services: Services, demo_api_url: str
) -> None:
    """A PostHog query answered 7 rows at a time: all 30 days, via offset."""
    request = httpx.Request(
        "POST",
        f"{demo_api_url}/posthog/api/projects/1/query/?limit=7",
        json={"query": {"kind": "HogQLQuery", "query": "select 1"}, "date_from": "-30d"},
    )
    body = await fetch_payload(
        services.http, request, pagination=Pagination(kind="has_more", items_path="results")
    )
    days = [row[0] for row in body["results"]]
    assert len(days) == 30 and days == sorted(days) and len(set(days)) == 30


async def test_too_many_pages_is_an_error_not_a_truncation(
    services: Services, demo_api_url: str
) -> None:
    """250 stars at 10 a page with a 5-page cap: a clear error, not 50 stars."""
    request = httpx.Request(
        "GET", f"{demo_api_url}/github/repos/o/stars-250/stargazers?per_page=10"
    )
    with pytest.raises(FetchError, match="more than 5 pages"):
        await fetch_payload(services.http, request, pagination=Pagination(kind="link", max_pages=5))
