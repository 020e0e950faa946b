"""Building provider requests: parameters, base URLs, and where credentials go."""

from __future__ import annotations

from pydantic import SecretStr

from agents.fetch_client import request_for
from streams.settings import ProviderTokens, ProviderUrls, Settings
from templates import get_template


def test_request_fills_and_quotes_parameters() -> None:
    """Parameters are URL-quoted into the path, so one cannot walk to another endpoint."""
    settings = Settings(provider_urls=ProviderUrls(github="http://demo/github"))
    template = get_template("github-repo-stars")
    request = request_for(settings, template, template.polling, {"OWNER": "octo", "REPO": "../x?y"})
    assert str(request.url) == "http://demo/github/repos/octo/..%2Fx%3Fy"
    assert "Authorization" not in request.headers


def test_token_goes_only_into_the_authorization_header() -> None:
    """A configured token is sent as a bearer token and nowhere in the URL."""
    settings = Settings(provider_tokens=ProviderTokens(github=SecretStr("ghp_secret")))
    template = get_template("github-repo-stars")
    request = request_for(settings, template, template.polling, {"OWNER": "a", "REPO": "b"})
    assert request.headers["Authorization"] == "Bearer ghp_secret"
    assert "ghp_secret" not in str(request.url)
    assert "ghp_secret" not in repr(settings)
