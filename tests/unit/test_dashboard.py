"""The dashboard's pure parts: its checked-in OpenAPI document, its session cookies."""

from __future__ import annotations

import json
import time

from pydantic import SecretStr

from dashboard.__main__ import OPENAPI, openapi_document
from dashboard.sessions import SessionStore


def test_checked_in_openapi_document_is_the_generated_one() -> None:
    """dashboard/openapi.json is what the app generates (`python -m dashboard openapi`)."""
    assert OPENAPI.read_text() == openapi_document()


def test_openapi_document_covers_the_read_api() -> None:
    """Every read the issue asks for is a documented path."""
    paths = set(json.loads(openapi_document())["paths"])
    assert {
        "/api/login",
        "/api/templates",
        "/api/orgs/{org}/metrics",
        "/api/orgs/{org}/metrics/{metric_id}",
        "/api/orgs/{org}/dashboards",
        "/api/orgs/{org}/dashboards/{dashboard_id}",
        "/api/orgs/{org}/transformers",
        "/api/orgs/{org}/dead-letters",
        "/api/orgs/{org}/alerts",
        "/api/orgs/{org}/backfill",
        "/api/orgs/{org}/commands",
        "/api/orgs/{org}/events",
    } <= paths


def test_a_session_cookie_is_signed_and_expires() -> None:
    """The cookie names a session only with its signature intact and within its age; a
    cookie signed by another secret names nothing."""
    store = SessionStore("secret", ttl_s=60)
    session, cookie = store.create("acme org", SecretStr("pw!secret"))
    assert store.get(cookie) is session
    forged = ("B" if cookie[0] == "A" else "A") + cookie[1:]  # another session id
    assert store.get(forged) is None
    assert SessionStore("other", ttl_s=60).get(cookie) is None
    session.expires_at = time.time() - 1
    assert store.get(cookie) is None
    assert "pw!secret" not in cookie and "acme org" not in cookie  # neither could be random
