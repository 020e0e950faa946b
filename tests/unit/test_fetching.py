"""Building provider requests: parameters, base URLs, and where credentials go."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from agents.fetch_client import FetchError, request_for
from streams.settings import Settings
from templates import get_template


def test_request_fills_and_quotes_parameters() -> None:
    """Parameters are URL-quoted into the path, so one cannot walk to another endpoint
    (a sheet range's space, ``!``, ``:`` and ``'`` stay inside their segment)."""
    settings = Settings(provider_urls={"sheets": "http://demo/sheets/v4"})
    template = get_template("sheets-column")
    params = {
        "SPREADSHEET_ID": "1BxiMVs0XRA5nFMdKvBdBZjgmUUqptlbs74OgvE2upms",
        "RANGE": "'Q1 x'!A1:C4",
    }
    request = request_for(settings, template, template.polling, params)
    assert str(request.url) == (
        "http://demo/sheets/v4/spreadsheets/1BxiMVs0XRA5nFMdKvBdBZjgmUUqptlbs74OgvE2upms"
        "/values/%27Q1%20x%27%21A1%3AC4"
    )
    assert "Authorization" not in request.headers


@pytest.mark.parametrize(
    ("template_id", "params", "why"),
    [
        (
            "github-repo-stars",
            {"OWNER": "octo", "REPO": "../x?y"},
            r"parameter REPO='\.\./x\?y' does not match \^\[A-Za-z0-9_\.-\]\{1,100\}\$",
        ),
        ("youtube-video-views", {"VIDEO_ID": "dQw4w9WgXcQ,x"}, "parameter VIDEO_ID="),
        ("posthog-events", {"PROJECT_ID": "1/../2"}, "parameter PROJECT_ID="),
        ("posthog-events", {"PROJECT_ID": "1", "FROM": "x/../y"}, "parameter FROM="),
    ],
)
def test_a_parameter_its_pattern_refuses_is_refused(
    template_id: str, params: dict[str, str], why: str
) -> None:
    """At fetch time too (a metric stored before its template had the pattern): no
    request is built, and the error names the parameter and the pattern."""
    template = get_template(template_id)
    with pytest.raises(FetchError, match=why):
        request_for(Settings(), template, template.polling, params)


@pytest.mark.parametrize(
    ("params", "why"),
    [
        ({"OWNER": "..", "REPO": "user"}, "OWNER may not be '..'"),
        ({"OWNER": "octo", "REPO": "."}, "REPO may not be '.'"),
        ({"OWNER": "octo", "REPO": "a\nb"}, "REPO may not hold control characters"),
    ],
)
def test_a_parameter_that_would_leave_the_path_is_refused(params: dict[str, str], why: str) -> None:
    """``OWNER=..``, ``REPO=user`` would be ``/repos/../user`` = ``/user`` (the token's own
    account) once the URL is normalised: refused before any request."""
    settings = Settings(provider_urls={"github": "http://demo/github"})
    template = get_template("github-repo-stars")
    with pytest.raises(FetchError, match=why):
        request_for(settings, template, template.polling, params)


def test_the_default_token_is_only_for_the_organisations_named() -> None:
    """A metric without a connection gets the deployment's token only if its organisation
    is listed; any other organisation's is told it needs a connection."""
    settings = Settings(
        provider_tokens={"github": SecretStr("ghp_secret")},
        default_token_organizations=frozenset({"acme"}),
    )
    template = get_template("github-repo-stars")
    params = {"OWNER": "a", "REPO": "b"}
    with pytest.raises(FetchError, match="organisation 'beta' needs a connection for github"):
        request_for(settings, template, template.polling, params, None, "beta")
    with pytest.raises(FetchError, match="needs a connection"):
        request_for(settings, template, template.polling, params)
    listed = request_for(settings, template, template.polling, params, None, "acme")
    assert listed.headers["Authorization"] == "Bearer ghp_secret"


def test_token_goes_only_into_the_authorization_header() -> None:
    """A configured token is sent as a bearer token and nowhere in the URL."""
    settings = Settings(
        provider_tokens={"github": SecretStr("ghp_secret")},
        default_token_organizations=frozenset({"acme"}),
    )
    template = get_template("github-repo-stars")
    request = request_for(
        settings, template, template.polling, {"OWNER": "a", "REPO": "b"}, None, "acme"
    )
    assert request.headers["Authorization"] == "Bearer ghp_secret"
    assert "ghp_secret" not in str(request.url)
    assert "ghp_secret" not in repr(settings)
