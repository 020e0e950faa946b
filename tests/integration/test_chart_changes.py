"""A chart changed in plain words, through the real worker, Kafka and TimescaleDB: the
request becomes settings the stored row, the code's preferences and the drawn config all
follow; what cannot be done is refused in one line and changes nothing; a request that
changes nothing makes no new version."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from schema import reads
from schema.models import DataPoint
from schema.points import MetricPoints, write_points
from streams.messages import ChangeChart
from tests.conftest import WorkerProcess
from tests.integration.conftest import Kafka
from tests.integration.test_management import answer, charted_metric, logged

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ORG = "acme"


async def chart_row(db_conn: Any, chart_id: uuid.UUID) -> dict[str, Any]:
    cur = await db_conn.execute(
        "SELECT chart_type, aggregation, date_range_days, preferences, version"
        " FROM chart_transformers WHERE dashboard_metric_id = %s",
        (chart_id,),
    )
    row: dict[str, Any] = await cur.fetchone()
    return row


async def drawn_with(
    kafka: Kafka, chart_id: uuid.UUID, field: str, value: Any, version: int = 1
) -> Any:
    """The chart's first config on its organisation's topic whose ``field`` is ``value``,
    drawn by ``version`` or a later one (an earlier config may have drawn the same)."""
    _, drawn = await kafka.wait_for(
        "chart-configs",
        lambda v: (
            v["dashboard_metric_id"] == str(chart_id)
            and v["config"][field] == value
            and v["transformer_version"] >= version
        ),
        120,
        ORG,
    )
    return drawn


async def change(kafka: Kafka, chart_id: uuid.UUID, words: str) -> dict[str, Any]:
    return await answer(
        kafka, ChangeChart(organization_id=ORG, dashboard_metric_id=chart_id, request=words)
    )


async def test_weekly_averages_as_bars_changes_type_aggregation_buckets_and_range(
    worker: WorkerProcess, kafka: Kafka, db_conn: Any
) -> None:
    """The README's example, with a range: the drawn config is a bar chart of weekly
    averages, and the row's columns and preferences say the same."""
    _, chart_id = await charted_metric(kafka, ORG, "change-bars")
    assert (await chart_row(db_conn, chart_id))["chart_type"] == "line"

    result = await change(kafka, chart_id, "weekly averages as bars over the last 90 days")
    assert result["status"] == "accepted", result
    drawn = await drawn_with(kafka, chart_id, "chartType", "bar")
    assert drawn["config"]["description"] == "avg per week"
    row = await chart_row(db_conn, chart_id)
    assert (row["chart_type"], row["aggregation"], row["date_range_days"]) == ("bar", "avg", 90)
    assert row["version"] == 2
    prefs = row["preferences"]
    assert (prefs["chart_type"], prefs["aggregation"], prefs["date_range_days"]) == (
        "bar",
        "avg",
        90,
    )
    assert prefs["granularity"] == "weekly"

    restyled = await change(kafka, chart_id, 'stacked, and call it "Weekly stars"')
    assert restyled["status"] == "accepted", restyled
    drawn = await drawn_with(kafka, chart_id, "title", "Weekly stars")
    assert drawn["config"]["stacked"] is True and drawn["config"]["chartType"] == "bar"
    row = await chart_row(db_conn, chart_id)
    assert row["version"] == 3 and row["preferences"]["stacked"] is True
    assert row["preferences"]["granularity"] == "weekly"  # what it did not name is kept

    counters = prometheus_counters(worker)  # the worker's endpoint counted what it did
    for name in (
        "metricloom_polls_total",
        "metricloom_points_written_total",
        "metricloom_chart_configs_published_total",
    ):
        assert counters.get(name, 0) > 0, (name, counters)


def prometheus_counters(worker: WorkerProcess) -> dict[str, float]:
    """Each counter of the worker's Prometheus endpoint, summed over its labels (the
    address is the one its ``worker.ready`` line names)."""
    [ready] = [line for line in worker.output().splitlines() if '"worker.ready"' in line]
    health = json.loads(ready[ready.index("{") :])["health"]
    text = httpx.get(health.replace("/healthz", "/metrics"), timeout=10).text
    sums: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("metricloom_") and "_total" in line:
            name, value = line.rsplit(" ", 1)
            base = name.split("{", 1)[0]
            sums[base] = sums.get(base, 0.0) + float(value)
    return sums


async def test_what_cannot_be_done_is_refused_and_a_no_op_makes_no_version(
    worker: WorkerProcess, kafka: Kafka, db_conn: Any
) -> None:
    """Without a model: words nothing understands, two chart types, hourly buckets over a
    year and a range past ten years are each one line, rejected; the chart stays at version 1. A
    request for what the chart already is is accepted and writes no version 2."""
    _, chart_id = await charted_metric(kafka, ORG, "change-refused")
    refusals = {
        "nicer colours please": "nothing in 'nicer colours please' can be done without a model:"
        " name a chart type (area, bar, kpi, line, pie, radar, radial), an aggregation"
        " (average, total, max, min, count, latest, raw), a range ('last 30 days', 'past"
        " year', 'all time') or buckets (hourly, daily, weekly, monthly), stacked, series by"
        " a dimension's name ('with forks', 'without watchers', 'value only'), or a title in"
        " quotes",
        "a bar and a line": "'a bar and a line' names several chart types (bar, line): name one",
        "hourly for the last year": "hourly buckets draw at most 92 days, not 365:"
        " ask for daily or weekly, or a shorter range",
        "the last 20 years": "a chart's range is 1 to 3660 days or all time, not 7300",
    }
    for words, error in refusals.items():
        result = await change(kafka, chart_id, words)
        assert (result["status"], result["error"]) == ("rejected", error)
    assert (await chart_row(db_conn, chart_id))["version"] == 1

    same = await change(kafka, chart_id, "keep it a line of the latest values")
    assert same["status"] == "accepted", same
    await logged(worker, "codegen.chart_unchanged", chart_id)
    assert (await chart_row(db_conn, chart_id))["version"] == 1


async def test_raw_points_over_all_time(worker: WorkerProcess, kafka: Kafka, db_conn: Any) -> None:
    """The design's ``aggregation: none`` and ``dateRange: all``: the chart draws the
    points themselves (labelled to the minute), with no bound on the range (stored as
    null, not as a longest number of days)."""
    _, chart_id = await charted_metric(kafka, ORG, "change-raw")
    result = await change(kafka, chart_id, "raw points over all time, as bars")
    assert result["status"] == "accepted", result
    drawn = await drawn_with(kafka, chart_id, "chartType", "bar")
    assert drawn["config"]["description"] == "every point"
    assert all(len(row["date"]) == 16 for row in drawn["config"]["chartData"])  # to the minute
    row = await chart_row(db_conn, chart_id)
    assert (row["aggregation"], row["date_range_days"]) == ("none", None)
    assert row["preferences"]["date_range_days"] is None

    # a later change that names no range keeps all time (not the range it was added with)
    result = await change(kafka, chart_id, "as lines")
    assert result["status"] == "accepted", result
    await kafka.wait_for(  # a line of every point: after this change, not the first chart
        "chart-configs",
        lambda v: (
            v["dashboard_metric_id"] == str(chart_id)
            and (v["config"]["chartType"], v["config"]["description"]) == ("line", "every point")
        ),
        120,
        ORG,
    )
    row = await chart_row(db_conn, chart_id)
    assert (row["chart_type"], row["date_range_days"], row["version"]) == ("line", None, 3)
    [listed] = [c for c in await reads.charts(db_conn, ORG) if c.id == chart_id]
    assert listed.date_range_days is None  # what `metricloom dashboard list` shows as all


async def test_series_are_picked_by_the_metrics_dimension_names(
    worker: WorkerProcess, kafka: Kafka, db_conn: Any
) -> None:
    """Stars carry forks, open issues and watchers as dimensions: "with forks and watchers"
    draws them beside the value, "without watchers" takes one away, and the row's
    preferences say what is drawn."""
    _, chart_id = await charted_metric(kafka, ORG, "change-series")
    result = await change(kafka, chart_id, "with forks and watchers")
    assert result["status"] == "accepted", result
    await drawn_with(kafka, chart_id, "dataKeys", ["value", "forks", "watchers"])
    assert (await chart_row(db_conn, chart_id))["preferences"]["series_dimensions"] == [
        "forks",
        "watchers",
    ]
    result = await change(kafka, chart_id, "without watchers, as bars")
    assert result["status"] == "accepted", result
    drawn = await drawn_with(kafka, chart_id, "dataKeys", ["value", "forks"])
    assert drawn["config"]["chartType"] == "bar"
    row = await chart_row(db_conn, chart_id)
    assert row["preferences"]["series_dimensions"] == ["forks"] and row["version"] == 3

    result = await change(kafka, chart_id, "stop showing forks")
    assert result["status"] == "accepted", result
    await drawn_with(kafka, chart_id, "dataKeys", ["value"], version=4)
    row = await chart_row(db_conn, chart_id)
    assert row["preferences"]["series_dimensions"] == [] and row["version"] == 4


async def test_a_series_that_is_not_a_number_is_refused(
    worker: WorkerProcess, kafka: Kafka, db_conn: Any
) -> None:
    """The latest point carries watchers as text (as another transformer version could
    write it): "watchers only" is refused in one line naming what can be drawn, and the
    chart is unchanged; "forks only" is taken."""
    metric_id, chart_id = await charted_metric(kafka, ORG, "change-text-series")
    latest = DataPoint(
        timestamp=datetime.now(UTC), value=5.0, dimensions={"forks": 2, "watchers": "n/a"}
    )
    async with db_conn.transaction():
        await write_points(db_conn, [MetricPoints(metric_id, [latest])])
    refused = await change(kafka, chart_id, "watchers only")
    assert refused["status"] == "rejected"
    assert refused["error"] == (
        "watchers cannot be drawn: a series is a dimension that is a number in each of the"
        " metric's latest points (forks here)"
    )
    assert (await chart_row(db_conn, chart_id))["version"] == 1
    taken = await change(kafka, chart_id, "forks only")
    assert taken["status"] == "accepted", taken
    await drawn_with(kafka, chart_id, "dataKeys", ["value", "forks"], version=2)
