"""Providers are data: files declare them, templates and connections name them, and the
fetch stage sends each one's credentials and headers the way its file says."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import pytest
from pydantic import SecretStr, ValidationError

from agents.fetch_client import FetchError, request_for, reset_at_from, scope_of
from providers import ProviderError, check_settings, load_providers
from schema.models import Connection, MetricTemplate, RateLimitHeaders
from streams.settings import Settings
from templates import TemplateError, get_template, load_templates

WEATHER: dict[str, Any] = {
    "name": "weather_api",
    "base_url": "https://api.weather.example/v1",
    "auth": {"style": "query", "name": "apikey"},
    "headers": {"X-Client": "metricloom"},
    "rate_limit": {
        "remaining": "RateLimit-Remaining",
        "reset": "RateLimit-Reset",
        "reset_format": "seconds",
    },
    "pagination": {"kind": "page_token", "token_path": "next", "token_param": "cursor"},
}
TEMPLATE: dict[str, Any] = {
    "id": "weather-temperature",
    "name": "Temperature",
    "description": "Hourly temperature at a place.",
    "provider": "weather_api",
    "params": [{"name": "PLACE", "pattern": "^[a-z]{1,20}$"}],
    "polling": {"path": "/forecast/{PLACE}", "pagination": {"items_path": "hours"}},
    "hints": {"value_path": "temperature", "rows_path": "hours", "timestamp": "time"},
}


def write(directory: Path, name: str, document: dict[str, object]) -> Path:
    directory.mkdir(exist_ok=True)
    (directory / f"{name}.json").write_text(json.dumps(document))
    return directory


def test_the_shipped_providers_are_files() -> None:
    """github, youtube, posthog and sheets (and Open-Meteo and CoinGecko) load from
    providers/, with their real APIs."""
    registry = load_providers()
    assert sorted(registry) == ["coingecko", "github", "open_meteo", "posthog", "sheets", "youtube"]
    assert registry["github"].base_url == "https://api.github.com"
    assert {registry[p].auth.style for p in ("github", "youtube", "posthog", "sheets")} == {
        "bearer"
    }


def test_github_requests_carry_its_headers_from_its_file() -> None:
    """The GitHub media type and API version come from github.json, as before."""
    template = get_template("github-repo-stars")
    request = request_for(Settings(), template, template.polling, {"OWNER": "a", "REPO": "b"})
    assert request.headers["Accept"] == "application/vnd.github+json"
    assert request.headers["X-GitHub-Api-Version"] == "2022-11-28"
    assert str(request.url) == "https://api.github.com/repos/a/b"
    youtube = get_template("youtube-video-views")
    other = request_for(Settings(), youtube, youtube.polling, {"VIDEO_ID": "dQw4w9WgXcQ"})
    assert other.headers["Accept"] == "application/json"
    assert "X-GitHub-Api-Version" not in other.headers


def test_a_new_provider_and_template_load_from_directories(tmp_path: Path) -> None:
    """A provider file and a template file, no code: the template names the provider and
    gets its pagination defaults under its own block."""
    providers_dir = write(tmp_path / "providers", "weather_api", WEATHER)
    templates_dir = write(tmp_path / "templates", "weather-temperature", TEMPLATE)
    templates = load_templates(templates_dir, providers_dir)
    template = templates["weather-temperature"]
    assert "github-repo-stars" in templates  # the shipped ones stay
    pagination = template.polling.pagination
    assert pagination is not None
    assert (pagination.kind, pagination.token_path, pagination.token_param) == (
        "page_token",
        "next",
        "cursor",
    )
    assert pagination.items_path == "hours"


def test_a_template_naming_an_undeclared_provider_is_refused(tmp_path: Path) -> None:
    """The error names the file and lists the providers that are declared."""
    templates_dir = write(tmp_path / "templates", "weather-temperature", TEMPLATE)
    with pytest.raises(TemplateError, match=r"weather-temperature\.json is invalid") as caught:
        load_templates(templates_dir, None)
    assert "unknown provider 'weather_api'; known: coingecko, github, open_meteo, posthog" in str(
        caught.value
    )


def test_a_provider_declared_twice_is_refused(tmp_path: Path) -> None:
    """A directory redeclaring a shipped provider: which one applies would be an accident."""
    directory = write(tmp_path / "p", "github", WEATHER | {"name": "github"})
    with pytest.raises(ProviderError, match="provider 'github' is declared twice"):
        load_providers(directory)


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"name": "Weather-API"}, "String should match pattern"),
        ({"auth": {"style": "cookie"}}, "does not match any of the expected tags"),
        ({"auth": {"style": "header"}}, "name"),
        ({"headers": {"Authorization": "Bearer x"}}, "metricloom's to set"),
        ({"headers": {"X-A": "a\r\nInjected: 1"}}, "control character"),
        ({"base_url": "ftp://x"}, "String should match pattern"),
        ({"surprise": 1}, "Extra inputs are not permitted"),
    ],
)
def test_a_provider_file_that_does_not_validate_is_refused(
    tmp_path: Path, change: dict[str, object], why: str
) -> None:
    """One line naming the file and what is wrong; nothing half-loaded."""
    name = str(change.get("name", "weather_api"))
    directory = write(tmp_path / "p", name, WEATHER | change)
    with pytest.raises(ProviderError, match=f"{name}.json is invalid") as caught:
        load_providers(directory)
    assert why in str(caught.value)


def test_query_auth_puts_the_token_in_its_parameter_only(tmp_path: Path) -> None:
    """``auth: query`` sends the token as the named parameter; no Authorization header."""
    providers_dir = write(tmp_path / "providers", "weather_api", WEATHER)
    template = load_templates(
        write(tmp_path / "t", "weather-temperature", TEMPLATE), providers_dir
    )["weather-temperature"]
    settings = Settings(
        providers_dir=providers_dir,
        provider_tokens={"weather_api": SecretStr("k3y")},
        default_token_organizations=frozenset({"acme"}),
    )
    request = request_for(settings, template, template.polling, {"PLACE": "oslo"}, None, "acme")
    assert request.url.params["apikey"] == "k3y"
    assert "Authorization" not in request.headers
    assert request.headers["X-Client"] == "metricloom"
    assert scope_of(settings, template, None) == "https://api.weather.example/v1"


@pytest.mark.parametrize(
    ("auth", "header", "value"),
    [
        ({"style": "header", "name": "X-API-Key"}, "X-API-Key", "k3y"),
        ({"style": "bearer"}, "Authorization", "Bearer k3y"),
    ],
)
def test_header_styles_put_the_token_in_their_header(
    tmp_path: Path, auth: dict[str, str], header: str, value: str
) -> None:
    """A connection's token goes where the provider's file says, and nowhere in the URL."""
    providers_dir = write(tmp_path / "providers", "weather_api", WEATHER | {"auth": auth})
    template = load_templates(
        write(tmp_path / "t", "weather-temperature", TEMPLATE), providers_dir
    )["weather-temperature"]
    connection = Connection(
        id=uuid4(),
        organization_id="acme",
        provider="weather_api",
        auth="token",
        token=SecretStr("k3y"),
    )
    settings = Settings(providers_dir=providers_dir)
    request = request_for(settings, template, template.polling, {"PLACE": "oslo"}, connection)
    assert request.headers[header] == value
    assert "k3y" not in str(request.url)


def test_a_provider_without_auth_refuses_a_token(tmp_path: Path) -> None:
    """A token for a provider that takes none is an error, at start (settings) and at fetch
    (a connection), never silently dropped."""
    providers_dir = write(
        tmp_path / "providers", "weather_api", WEATHER | {"auth": {"style": "none"}}
    )
    template = load_templates(
        write(tmp_path / "t", "weather-temperature", TEMPLATE), providers_dir
    )["weather-temperature"]
    with pytest.raises(ProviderError, match="takes no credentials"):
        check_settings(
            Settings(providers_dir=providers_dir, provider_tokens={"weather_api": SecretStr("x")})
        )
    connection = Connection(
        id=uuid4(),
        organization_id="acme",
        provider="weather_api",
        auth="token",
        token=SecretStr("k"),
    )
    settings = Settings(providers_dir=providers_dir)
    with pytest.raises(FetchError, match="takes no credentials"):
        request_for(settings, template, template.polling, {"PLACE": "oslo"}, connection)
    plain = request_for(settings, template, template.polling, {"PLACE": "oslo"})
    assert "Authorization" not in plain.headers


def test_settings_take_any_declared_providers_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``METRICLOOM_PROVIDER_URLS__<NAME>`` is a mapping: any declared provider's, and a
    name no file declares stops the start with the known ones listed."""
    providers_dir = write(tmp_path / "providers", "weather_api", WEATHER)
    monkeypatch.setenv("METRICLOOM_PROVIDERS_DIR", str(providers_dir))
    monkeypatch.setenv("METRICLOOM_PROVIDER_URLS__WEATHER_API", "http://demo-api/weather")
    settings = Settings()
    assert settings.provider_urls == {"weather_api": "http://demo-api/weather"}
    assert "weather_api" in check_settings(settings)
    monkeypatch.setenv("METRICLOOM_PROVIDER_URLS__GITUB", "http://typo")
    with pytest.raises(ProviderError, match="METRICLOOM_PROVIDER_URLS__GITUB names no declared"):
        check_settings(Settings())


def test_a_connection_names_a_declared_provider() -> None:
    """Validated with the registry (as ``connection add`` does), an unknown provider is
    refused listing the known ones; a stored row is read without it."""
    document = {"id": uuid4(), "organization_id": "acme", "provider": "gitlab", "auth": "none"}
    with pytest.raises(
        ValidationError, match="unknown provider 'gitlab'; known: coingecko, github"
    ):
        Connection.model_validate(document, context={"providers": load_providers()})
    assert Connection.model_validate(document).provider == "gitlab"
    with pytest.raises(ValidationError, match="String should match pattern"):
        Connection.model_validate(document | {"provider": "../x"})


def test_a_token_for_a_provider_that_takes_none_is_refused_when_stored() -> None:
    """Open-Meteo's auth is none: a token connection for it is refused by the registry's
    validation (``connection add``), not left to fail at its first poll; a stored row is
    still read."""
    document = {
        "id": uuid4(),
        "organization_id": "acme",
        "provider": "open_meteo",
        "auth": "token",
        "token": "t0ken",
    }
    with pytest.raises(ValidationError, match="provider 'open_meteo' takes no credentials"):
        Connection.model_validate(document, context={"providers": load_providers()})
    assert Connection.model_validate(document).auth == "token"
    public = document | {"auth": "none", "token": None}
    assert Connection.model_validate(public, context={"providers": load_providers()})


def test_template_model_alone_checks_only_the_names_shape() -> None:
    """Without a registry (a unit test's own template), any well-formed name validates."""
    unpaged = TEMPLATE | {"polling": {"path": "/now/{PLACE}"}}
    assert MetricTemplate.model_validate(unpaged).provider == "weather_api"
    with pytest.raises(ValidationError, match="String should match pattern"):
        MetricTemplate.model_validate(unpaged | {"provider": "Weather API"})


def test_rate_limit_reset_in_seconds_from_now() -> None:
    """A provider whose reset header counts seconds from now, as its file declares."""
    from datetime import UTC, datetime, timedelta

    now = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    headers = httpx.Headers({"RateLimit-Reset": "90", "X-RateLimit-Reset": "1"})
    relative = RateLimitHeaders(
        remaining="RateLimit-Remaining", reset="RateLimit-Reset", reset_format="seconds"
    )
    assert reset_at_from(headers, relative, now) == now + timedelta(seconds=90)
    assert reset_at_from(headers, RateLimitHeaders(), now) == now
