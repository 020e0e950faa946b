"""Providers: the APIs metricloom polls, one JSON file each, declared like templates.

A provider file (``providers/<name>.json``, validated as :class:`schema.models.Provider`)
says where the API is, how a token is sent (bearer, a named header, a named query
parameter, or none), which headers every request carries, where the rate-limit headers
are and how the API usually pages. The shipped files are this package's; an operator adds
more in ``METRICLOOM_PROVIDERS_DIR`` without touching the code. They are loaded and
validated once; a file that does not validate stops the process with the file's name,
rather than a provider silently missing. A name declared twice (a shipped one again in the
directory) is an error too: which of the two applies would otherwise depend on the order
the files are read in.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from functools import lru_cache
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from types import MappingProxyType
from typing import TypeVar

from pydantic import ValidationError

from schema.exceptions import MetricloomError
from schema.models import Provider
from streams.settings import Settings, get_settings

T = TypeVar("T")


class ProviderError(MetricloomError):
    """A provider file is malformed, a provider name is unknown, or a setting names one
    that is not declared."""


def read_declarations(
    sources: Iterable[tuple[str, Traversable | Path | None]],
    validate: Callable[[object], T],
    name_of: Callable[[T], str],
    kind: str,
) -> dict[str, T]:
    """Every ``*.json`` file of each source directory (in file-name order), validated with
    ``validate``; a file must be named after what it declares, and no name may be declared
    twice. Errors name the source and the file. Shared by providers and templates."""
    found: dict[str, T] = {}
    for where, directory in sources:
        if directory is None:
            continue
        if not directory.is_dir():
            raise ProviderError(f"{kind} directory {where} is not a directory")
        for entry in sorted(directory.iterdir(), key=lambda e: e.name):
            if not entry.name.endswith(".json"):
                continue
            try:
                item = validate(json.loads(entry.read_text()))
            except (ValueError, ValidationError) as exc:
                raise ProviderError(f"{kind} file {where}/{entry.name} is invalid: {exc}") from exc
            name = name_of(item)
            if entry.name != f"{name}.json":
                raise ProviderError(f"{kind} file {where}/{entry.name} declares {name!r}")
            if name in found:
                raise ProviderError(f"{kind} {name!r} is declared twice ({where}/{entry.name})")
            found[name] = item
    return found


@lru_cache(maxsize=8)
def load_providers(directory: Path | None = None) -> Mapping[str, Provider]:
    """The shipped providers and those in ``directory`` (``METRICLOOM_PROVIDERS_DIR``), by
    name; read once per directory."""
    sources = [("providers", resources.files(__name__)), (str(directory), directory)]
    found = read_declarations(sources, Provider.model_validate, lambda p: p.name, "provider")
    return MappingProxyType(found)


def configured_providers() -> Mapping[str, Provider]:
    """The providers of this process (its settings' directory)."""
    return load_providers(get_settings().providers_dir)


def get_provider(name: str, registry: Mapping[str, Provider]) -> Provider:
    """A provider by name; ProviderError lists the known ones."""
    try:
        return registry[name]
    except KeyError:
        known = ", ".join(sorted(registry))
        raise ProviderError(f"unknown provider {name!r}; known: {known}") from None


def base_url(settings: Settings, provider: Provider) -> str:
    """Where a provider's requests go: the setting's override, else the file's URL."""
    return settings.provider_urls.get(provider.name, provider.base_url).rstrip("/")


def check_settings(settings: Settings) -> Mapping[str, Provider]:
    """The settings' providers, after checking that every URL and token setting names a
    declared provider and that no token is set for a provider that takes none; a typo in
    ``METRICLOOM_PROVIDER_URLS__GITHUB`` would otherwise send requests to the real API."""
    registry = load_providers(settings.providers_dir)
    known = ", ".join(sorted(registry))
    for setting, names in (
        ("METRICLOOM_PROVIDER_URLS", settings.provider_urls),
        ("METRICLOOM_PROVIDER_TOKENS", settings.provider_tokens),
    ):
        for name in sorted(names):
            if name not in registry:
                raise ProviderError(
                    f"{setting}__{name.upper()} names no declared provider; known: {known}"
                )
    for name in sorted(settings.provider_tokens):
        if registry[name].auth.style == "none":
            raise ProviderError(
                f"METRICLOOM_PROVIDER_TOKENS__{name.upper()} is set, but provider {name!r}"
                " takes no credentials (its file says auth none)"
            )
    return registry
