"""Metric templates: one JSON file per template, the source of truth.

A template says where a metric's data lives (a declared provider, an endpoint, parameters),
how often to poll it, and the extraction hints the offline transformer generator uses.
The shipped ones are this package's files; an operator adds more in
``METRICLOOM_TEMPLATES_DIR`` (with any new provider in ``METRICLOOM_PROVIDERS_DIR``), no
code needed. They are loaded and validated once at start, each against the declared
providers; a file that does not validate stops the process with the file's name and the
error, rather than a template silently missing.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from importlib import resources
from pathlib import Path
from types import MappingProxyType

from providers import ProviderError, load_providers, read_declarations
from schema.exceptions import MetricloomError
from schema.models import MetricTemplate
from streams.settings import get_settings


class TemplateError(MetricloomError):
    """A template file is malformed or a template id is unknown."""


@lru_cache(maxsize=8)
def load_templates(
    directory: Path | None = None, providers_dir: Path | None = None
) -> Mapping[str, MetricTemplate]:
    """The shipped templates and those in ``directory``, by id, each validated against
    the shipped providers and those in ``providers_dir``."""
    context = {"providers": load_providers(providers_dir)}
    sources = [("templates", resources.files(__name__)), (str(directory), directory)]
    try:
        found = read_declarations(
            sources,
            lambda data: MetricTemplate.model_validate(data, context=context),
            lambda template: template.id,
            "template",
        )
    except ProviderError as exc:
        raise TemplateError(str(exc)) from exc
    return MappingProxyType(found)


def configured_templates() -> Mapping[str, MetricTemplate]:
    """The templates of this process (its settings' directories)."""
    settings = get_settings()
    return load_templates(settings.templates_dir, settings.providers_dir)


def get_template(template_id: str) -> MetricTemplate:
    templates = configured_templates()
    try:
        return templates[template_id]
    except KeyError:
        known = ", ".join(sorted(templates))
        raise TemplateError(f"unknown template {template_id!r}; known: {known}") from None
