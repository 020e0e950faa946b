"""An import file's lines become one create_metric per metric, with ids that do not
change between runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from metricloom.imports import read_import_file


def test_the_same_metric_gets_the_same_command_whatever_the_order_or_tier(
    tmp_path: Path,
) -> None:
    path = tmp_path / "m.jsonl"
    path.write_text(
        '{"template_id": "github-repo-stars", "params": {"OWNER": "a", "REPO": "b"}}\n'
        "\n"
        '{"params": {"REPO": "b", "OWNER": "a"}, "template_id": "github-repo-stars",'
        ' "poll_frequency": "daily"}\n'
        '{"template_id": "github-repo-stars", "params": {"OWNER": "a", "REPO": "c"}}\n'
    )
    first = read_import_file(path, "acme")
    assert [c.params["REPO"] for c in first] == ["b", "c"]
    again = read_import_file(path, "acme")
    assert [c.command_id for c in again] == [c.command_id for c in first]
    assert [c.resolved_metric_id() for c in again] == [c.resolved_metric_id() for c in first]
    other = read_import_file(path, "beta")
    assert {c.command_id for c in other}.isdisjoint(c.command_id for c in first)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("not json\n", "m.jsonl:1: Invalid JSON"),
        ('{"template_id": "t"}\n{"template_id": "t", "params": {"A": 1}}\n', "m.jsonl:2: params.A"),
        ("\n\n", "holds no metric"),
        ('{"template_id": "t", "poll_frequency": "yearly"}\n', "m.jsonl:1: poll_frequency"),
    ],
)
def test_a_bad_file_is_one_error_naming_the_line(tmp_path: Path, text: str, error: str) -> None:
    path = tmp_path / "m.jsonl"
    path.write_text(text)
    with pytest.raises(ValueError, match=error):
        read_import_file(path, "acme")


def test_a_file_that_is_not_text_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    path.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ValueError, match="cannot read"):
        read_import_file(path, "acme")
