"""An import file's lines become one create_metric per metric, with ids that do not
change between runs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from metricloom.imports import read_import_file
from streams.messages import CommandBase, CreateDashboardMetric, CreateMetric


def metrics_of(commands: list[CommandBase]) -> list[CreateMetric]:
    assert all(isinstance(c, CreateMetric) for c in commands)
    return [c for c in commands if isinstance(c, CreateMetric)]


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
    first = metrics_of(read_import_file(path, "acme"))
    assert [c.params["REPO"] for c in first] == ["b", "c"]
    again = metrics_of(read_import_file(path, "acme"))
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


def test_a_csv_with_dashboards_places_each_metric_once(tmp_path: Path) -> None:
    """CSV: params.NAME columns are the parameters, empty cells are left out, a dashboard
    column adds the chart's command after its metric's, with ids stable across runs."""
    path = tmp_path / "m.csv"
    path.write_text(
        "template_id,params.OWNER,params.REPO,poll_frequency,dashboard_id,chart_type\n"
        "github-repo-stars,a,b,daily,main,bar\n"
        "github-repo-forks,a,b,,,\n"
        "github-repo-stars,a,b,daily,main,bar\n"
    )
    commands = read_import_file(path, "acme")
    assert [type(c) for c in commands] == [CreateMetric, CreateDashboardMetric, CreateMetric]
    stars, chart, forks = commands
    assert isinstance(stars, CreateMetric) and isinstance(chart, CreateDashboardMetric)
    assert isinstance(forks, CreateMetric)
    assert stars.params == {"OWNER": "a", "REPO": "b"} and stars.poll_frequency == "daily"
    assert forks.poll_frequency is None
    assert chart.metric_id == stars.resolved_metric_id() and chart.chart_type == "bar"
    assert chart.dashboard_metric_id == chart.command_id
    assert [c.command_id for c in read_import_file(path, "acme")] == [
        c.command_id for c in commands
    ]


def test_a_csv_with_an_unknown_column_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text("template_id,repo\ngithub-repo-stars,b\n")
    with pytest.raises(ValueError, match=r"unknown column\(s\) \['repo'\]"):
        read_import_file(path, "acme")


def test_each_line_may_name_its_organisation(tmp_path: Path) -> None:
    """The design's import names the organisation per line; --org is for lines that name
    none, and a line with neither, or with no valid id, is refused naming the line."""
    path = tmp_path / "m.csv"
    path.write_text(
        "organization_id,template_id,params.OWNER,params.REPO,dashboard_id,date_range_days\n"
        "beta,github-repo-stars,a,b,main,all\n"
        ",github-repo-stars,a,b,,\n"
    )
    beta, chart, default = read_import_file(path, "acme")
    assert (beta.organization_id, chart.organization_id) == ("beta", "beta")
    assert isinstance(chart, CreateDashboardMetric) and chart.date_range_days is None  # all
    assert default.organization_id == "acme"
    with pytest.raises(
        ValueError, match=re.escape("m.csv:3: no organisation: give organization_id or --org")
    ):
        read_import_file(path, None)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"organization_id": "Acme Corp", "template_id": "t"}\n')
    with pytest.raises(ValueError, match=re.escape("bad.jsonl:1: organization_id")):
        read_import_file(bad, "acme")
