"""Change requests in plain words become chart settings, or a one-line refusal."""

from __future__ import annotations

import re

import pytest

from agents.chart_requests import ChartChange, ChartRequestError, read_change, settings_of
from schema.models import ChartSettings, ChartTransformer, DashboardMetric
from templates import get_template

LINE = ChartSettings(chart_type="line", date_range_days=30, aggregation="last")


@pytest.mark.parametrize(
    ("request_text", "expected"),
    [
        # the README's own example: bars, averages, weekly buckets
        ("weekly averages as bars", ChartChange("bar", "avg", None, "weekly")),
        ("show it as a bar chart please", ChartChange(chart_type="bar")),
        ("make it an area of the totals", ChartChange("area", "sum")),
        # "last" of a range is the range, not the aggregation
        ("last 7 days", ChartChange(date_range_days=7)),
        ("the past 3 months, daily totals", ChartChange(None, "sum", 90, "daily")),
        ("last year by week", ChartChange(None, None, 365, "weekly")),
        ("the latest value as a kpi", ChartChange("kpi", "last")),
        ("change the line chart into a pie", ChartChange(chart_type="pie")),
        ("per hour over the last week", ChartChange(None, None, 7, "hourly")),
        ("nicer colours please", ChartChange()),
        ("monthly totals over the last year", ChartChange(None, "sum", 365, "monthly")),
        ("the raw points of all time", ChartChange(None, "none", "all")),
        ("everything, unaggregated", ChartChange(None, "none", "all")),
        ("stacked bars", ChartChange(chart_type="bar", stacked=True)),
        ("side by side, not stacked", ChartChange(stacked=False)),
        # a title in quotes is taken whole: its words are not read as settings
        ('call it "Last stars, daily"', ChartChange(title="Last stars, daily")),
        (
            "weekly, titled 'Team velocity'",
            ChartChange(granularity="weekly", title="Team velocity"),
        ),
    ],
)
def test_requests_are_read_into_changes(request_text: str, expected: ChartChange) -> None:
    assert read_change(request_text) == expected


@pytest.mark.parametrize(
    ("request_text", "message"),
    [
        ("a bar and a line", "names several chart types (bar, line): name one"),
        ("averages and totals", "names several aggregations (avg, sum): name one"),
        ("last 7 days and past 2 weeks", "names 2 date ranges"),
        ("last 20 years", "a chart's range is 1 to 3660 days or all time, not 7300"),
    ],
)
def test_contradictions_and_unbuilt_buckets_are_refused(request_text: str, message: str) -> None:
    with pytest.raises(ChartRequestError, match=re.escape(message)):
        read_change(request_text)


def test_a_change_keeps_what_it_does_not_name() -> None:
    changed = read_change("as bars").applied_to(LINE)
    assert changed == ChartSettings(chart_type="bar", date_range_days=30, aggregation="last")
    assert not read_change("prettier").understood
    assert read_change("prettier").applied_to(LINE) == LINE


def test_hourly_buckets_over_a_long_range_are_refused_in_one_line() -> None:
    year = ChartSettings(chart_type="line", date_range_days=365, aggregation="avg")
    with pytest.raises(ChartRequestError) as refused:
        read_change("hourly").applied_to(year)
    assert str(refused.value) == (
        "hourly buckets draw at most 92 days, not 365: ask for daily or weekly, or a shorter range"
    )
    assert read_change("hourly, last 30 days").applied_to(year).granularity == "hourly"


def test_settings_keep_asked_for_buckets_in_the_transformer_preferences() -> None:
    """A chart's buckets, once asked for, live in its transformer row's preferences; an
    unknown value there (a hand-edited row) reads as 'chosen by range'."""
    from uuid import uuid4

    dm = DashboardMetric(
        id=uuid4(),
        organization_id="acme",
        dashboard_id="main",
        metric_id=uuid4(),
        title="Stars",
        chart_type="bar",
        date_range_days=90,
        aggregation="avg",
    )

    def chart(preferences: dict[str, object]) -> ChartTransformer:
        return ChartTransformer(
            dashboard_metric_id=dm.id,
            organization_id="acme",
            code="",
            chart_type="bar",
            date_range_days=90,
            aggregation="avg",
            preferences=preferences,
            generator="offline-v1",
        )

    assert settings_of(dm, None).granularity is None
    assert settings_of(dm, chart({"granularity": "weekly"})).granularity == "weekly"
    assert settings_of(dm, chart({"granularity": "fortnightly"})).granularity is None


def test_stacked_is_kept_until_unstacked() -> None:
    stacked = read_change("stacked").applied_to(LINE)
    assert stacked.stacked is True
    assert read_change("as bars").applied_to(stacked).stacked is True
    assert read_change("unstacked").applied_to(stacked).stacked is False


STARS = ["forks", "open_issues", "watchers"]  # github-repo-stars' dimension names


@pytest.mark.parametrize(
    ("request_text", "expected"),
    [
        ("with forks", ChartChange(series_add=("forks",))),
        ("add open issues and watchers", ChartChange(series_add=("open_issues", "watchers"))),
        ("without watchers", ChartChange(series_drop=("watchers",))),
        (
            "show forks but hide open-issues and watchers",
            ChartChange(series_add=("forks",), series_drop=("open_issues", "watchers")),
        ),
        ("only forks, as bars", ChartChange(chart_type="bar", series_only=("forks",))),
        ("the value only", ChartChange(series_only=())),
        ("no series, weekly", ChartChange(granularity="weekly", series_only=())),
        ("do not show forks", ChartChange(series_drop=("forks",))),
        ("don't show watchers", ChartChange(series_drop=("watchers",))),
        ("stop showing forks and open issues", ChartChange(series_drop=("forks", "open_issues"))),
        (
            "never display watchers, as bars",
            ChartChange(chart_type="bar", series_drop=("watchers",)),
        ),
        ("forks only", ChartChange(series_only=("forks",))),
        ("forks and watchers only", ChartChange(series_only=("forks", "watchers"))),
        ("forks alone, as bars", ChartChange(chart_type="bar", series_only=("forks",))),
        ("value only with forks", ChartChange(series_only=("forks",))),
        ("just the value and watchers", ChartChange(series_only=("watchers",))),
    ],
)
def test_series_are_read_by_the_metrics_dimension_names(
    request_text: str, expected: ChartChange
) -> None:
    assert read_change(request_text, STARS) == expected
    assert expected.understood


def test_series_change_from_the_templates_own_until_the_chart_has_its_own() -> None:
    """A chart that never chose draws the template's chart dimensions; a change adds to or
    takes from those, and what it chose is kept by later changes that do not name series."""
    added = read_change("with forks", STARS).applied_to(LINE, ["watchers"])
    assert added.series == ("watchers", "forks")
    dropped = read_change("without watchers", STARS).applied_to(added, ["watchers"])
    assert dropped.series == ("forks",)
    assert read_change("as bars", STARS).applied_to(dropped, ["watchers"]).series == ("forks",)
    assert read_change("value only", STARS).applied_to(dropped).series == ()
    assert read_change("as bars", STARS).applied_to(LINE, ["watchers"]).series is None


def test_a_name_the_metric_lacks_is_no_series() -> None:
    """Only the metric's own dimensions are series: other words are read as before, and
    a request of nothing else is not understood."""
    assert read_change("with stars and forks", ["watchers"]) == ChartChange()
    assert not read_change("with stars", ["watchers"]).understood


def test_a_templates_series_names_leave_out_the_value_itself() -> None:
    """Open-Meteo's first labelled series (temperature) is each point's value: it is drawn
    as ``value``, so it is no series name; the second (precipitation) is."""
    assert get_template("open-meteo-temperature").dimension_names() == ["precipitation"]
    assert get_template("github-repo-stars").dimension_names() == STARS
    assert read_change("with temperature", ["precipitation"]) == ChartChange()
