"""Where the fetcher may go: template parameter patterns."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from metricloom.cli import DEMO
from schema.models import DEFAULT_PARAM_PATTERN, MetricTemplate
from templates import get_template, load_templates
from tests.conftest import DEMO_PARAMS


def _template(**changes: Any) -> MetricTemplate:
    doc = get_template("github-repo-stars").model_dump() | changes
    return MetricTemplate.model_validate(doc)


def test_every_shipped_parameter_has_its_own_pattern_and_the_demo_values_match() -> None:
    """No shipped template falls back to the default pattern; the values the tests and
    `make up`'s demo seed use pass, and a slash or a query does not."""
    for template in load_templates().values():
        for param in template.params:
            assert param.pattern != DEFAULT_PARAM_PATTERN, (template.id, param.name)
        assert template.param_refusals({p: DEMO_PARAMS[p] for p in template.param_names}) == []
        assert template.param_refusals({p: "a/b?c" for p in template.param_names})
    for template_id, params, *_ in DEMO:
        assert get_template(template_id).param_refusals(params) == []


def test_a_bare_name_gets_the_default_pattern_and_a_bad_pattern_stops_the_load() -> None:
    template = _template(params=["OWNER", "REPO"])
    assert [p.pattern for p in template.params] == [DEFAULT_PARAM_PATTERN] * 2
    assert template.param_refusals({"OWNER": "a b", "REPO": "ok"}) == [
        f"parameter OWNER='a b' does not match {DEFAULT_PARAM_PATTERN}"
    ]
    with pytest.raises(ValidationError, match="is not a regular expression"):
        _template(params=[{"name": "OWNER", "pattern": "(["}, "REPO"])
    with pytest.raises(ValidationError, match=r"uses undeclared parameter\(s\) \['REPO'\]"):
        _template(params=["OWNER"])
    with pytest.raises(ValidationError, match="backfill window"):
        _template(params=["OWNER", "REPO", "FROM"])


def test_patterns_match_in_full() -> None:
    """``re.fullmatch``: a trailing newline is not let through by ``$``."""
    template = get_template("github-repo-stars")
    assert template.param_refusals({"OWNER": "octocat\n", "REPO": "x"})
    assert template.param_refusals({"OWNER": "octocat", "REPO": "x"}) == []
