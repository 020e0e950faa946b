"""Metric templates: one JSON file per template in this package, the source of truth.

A template says where a metric's data lives (provider, endpoint, parameters), how often to
poll it, and the extraction hints the offline transformer generator uses. They are loaded
and validated once at start; a file that does not validate stops the process with the
file's name and the error, rather than a template silently missing.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources

from pydantic import ValidationError

from schema.exceptions import MetricloomError
from schema.models import MetricTemplate


class TemplateError(MetricloomError):
    """A template file is malformed or a template id is unknown."""


@lru_cache(maxsize=1)
def load_templates() -> dict[str, MetricTemplate]:
    """Every template shipped in this package, by id."""
    templates: dict[str, MetricTemplate] = {}
    for entry in sorted(resources.files(__name__).iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".json"):
            continue
        try:
            template = MetricTemplate.model_validate(json.loads(entry.read_text()))
        except (ValueError, ValidationError) as exc:
            raise TemplateError(f"template file {entry.name} is invalid: {exc}") from exc
        if entry.name != f"{template.id}.json":
            raise TemplateError(f"template file {entry.name} declares id {template.id!r}")
        templates[template.id] = template
    return templates


def get_template(template_id: str) -> MetricTemplate:
    templates = load_templates()
    try:
        return templates[template_id]
    except KeyError:
        known = ", ".join(sorted(templates))
        raise TemplateError(f"unknown template {template_id!r}; known: {known}") from None
