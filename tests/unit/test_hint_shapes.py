"""The shapes real APIs answer in, each declared by hints: the offline generator's code
(run in-process here; the sandbox runs it in production and in the integration tests) on
real-shaped samples, and the worker's own reading of the hints that validation and the
transform stage use so that nothing passes silence."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest

from agents.generators.offline import metric_code_for
from agents.hints import hinted_values, unresolved
from agents.transforming import TransformError, silent_failure
from demo_api import coingecko, open_meteo
from schema.models import DataPoint, ExtractionHints, MetricTemplate
from streams.messages import RawPayload
from templates import load_templates

NOW = datetime(2026, 11, 28, 9, 30, tzinfo=UTC)
CONFIG = {"fetched_at": NOW.isoformat()}


def _template(
    hints: dict[str, Any], template_id: str = "shape-test", **fields: Any
) -> MetricTemplate:
    return MetricTemplate.model_validate(
        {
            "id": template_id,
            "name": "shape",
            "description": "a shape",
            "provider": "github",
            "params": [],
            "polling": {"path": "/x"},
            "hints": hints,
            **fields,
        }
    )


def _run(template: MetricTemplate, payload: Any) -> list[DataPoint]:
    namespace: dict[str, Any] = {}
    exec(compile(metric_code_for(template), template.id, "exec"), namespace)
    return [DataPoint.model_validate(p) for p in namespace["transform"](payload, CONFIG)]


def test_unix_milliseconds_are_read_as_declared() -> None:
    """CoinGecko's ``[ms, price]`` pairs: ``unix_ms`` gives the right instant (read as
    seconds they would be the year 56216, which is how the old generator crashed)."""
    template = load_templates()["coingecko-coin-price"]
    payload = coingecko.market_chart("bitcoin", "usd", 1, NOW)
    points = _run(template, payload)
    assert len(points) == len(payload["prices"]) == 289
    assert points[-1].timestamp == datetime.fromtimestamp(payload["prices"][-1][0] / 1000, UTC)
    assert points[-1].value == payload["prices"][-1][1]
    assert NOW - timedelta(days=1, minutes=5) <= points[0].timestamp <= NOW


def test_unix_seconds_stay_seconds() -> None:
    """``unix`` (seconds) is unchanged: GitHub's weekly statistics."""
    template = _template(
        {"rows_path": "", "value_path": "total", "timestamp": "week", "timestamp_format": "unix"}
    )
    points = _run(template, [{"week": 1764460800, "total": 7}])
    assert points[0].timestamp == datetime(2025, 11, 30, tzinfo=UTC)


def test_parallel_arrays_with_naive_times_and_an_offset_in_the_answer() -> None:
    """Open-Meteo: ``hourly.time`` beside ``hourly.temperature_2m``, local times without a
    zone and ``utc_offset_seconds`` beside them; two series, each a labelled dimension."""
    template = load_templates()["open-meteo-temperature"]
    payload = open_meteo.forecast(52.52, 13.41, ["temperature_2m", "precipitation"], 1, 1, NOW)
    assert payload["utc_offset_seconds"] == 3600
    points = _run(template, payload)
    hourly = payload["hourly"]
    assert len(points) == len(hourly["time"]) == 48
    first = points[0]
    local_midnight = datetime.fromisoformat(hourly["time"][0]).replace(tzinfo=UTC) - timedelta(
        hours=1
    )
    assert first.timestamp == local_midnight  # 00:00 at +01:00 is 23:00 UTC
    assert first.value == hourly["temperature_2m"][0]
    assert first.dimensions == {
        "temperature": hourly["temperature_2m"][0],
        "precipitation": hourly["precipitation"][0],
    }


def test_parallel_arrays_skip_null_values_and_refuse_unequal_lengths() -> None:
    """A null temperature is no point (and no data); arrays of different lengths cannot be
    paired, so the transformer says so instead of guessing."""
    template = load_templates()["open-meteo-temperature"]
    payload: dict[str, Any] = {
        "utc_offset_seconds": 0,
        "hourly": {
            "time": ["2026-11-28T00:00", "2026-11-28T01:00"],
            "temperature_2m": [None, 3.5],
            "precipitation": [0.0, None],
        },
    }
    points = _run(template, payload)
    assert [(p.value, p.dimensions["precipitation"]) for p in points] == [(3.5, None)]
    payload["hourly"]["precipitation"] = [0.0]
    with pytest.raises(ValueError, match="differ in length"):
        _run(template, payload)
    assert unresolved(template.hints, payload) == [
        "the arrays at 'hourly' differ in length:"
        " {'time': 2, 'temperature_2m': 2, 'precipitation': 1}"
    ]


@pytest.mark.parametrize(
    ("offset", "expected"),
    [
        ("+05:30", timedelta(hours=5, minutes=30)),
        ("UTC", timedelta(0)),
        (-18000, timedelta(hours=-5)),
    ],
)
def test_naive_iso_takes_the_offset_the_answer_gives(offset: object, expected: timedelta) -> None:
    """``+HH:MM``, ``UTC`` or seconds; a time that has its own zone keeps it."""
    template = _template(
        {
            "rows_path": "rows",
            "value_path": "v",
            "timestamp": "t",
            "utc_offset_path": "meta.offset",
        }
    )
    payload = {
        "meta": {"offset": offset},
        "rows": [{"t": "2026-11-28T12:00:00", "v": 1}, {"t": "2026-11-28T12:00:00Z", "v": 2}],
    }
    naive, zoned = _run(template, payload)
    assert naive.timestamp == datetime(2026, 11, 28, 12, tzinfo=UTC) - expected
    assert zoned.timestamp == datetime(2026, 11, 28, 12, tzinfo=UTC)


def test_a_row_selected_by_its_key_not_its_index() -> None:
    """CoinGecko's exchange rates: the ``usd`` entry of a mapping, not the first (btc)."""
    template = load_templates()["coingecko-bitcoin-usd"]
    payload = coingecko.exchange_rates(NOW)
    [point] = _run(template, payload)
    assert point.value == payload["rates"]["usd"]["value"] != payload["rates"]["btc"]["value"]
    assert point.dimensions == {"unit": "$"}
    assert point.timestamp == NOW


def test_rows_selected_by_a_field_of_a_list() -> None:
    """``select`` on a list: the row whose ``currency`` is ``usd``, wherever it is."""
    template = _template(
        {
            "rows_path": "data",
            "select": {"path": "currency", "equals": "usd"},
            "value_path": "rate",
        }
    )
    payload = {"data": [{"currency": "eur", "rate": 0.9}, {"currency": "usd", "rate": 1.0}]}
    assert [p.value for p in _run(template, payload)] == [1.0]


def test_several_series_labelled_by_row_keys_make_one_point() -> None:
    """``/simple/price``: one entry per coin, all at the poll's time: one point (points are
    unique per metric and time) whose dimensions are each coin's price, labelled."""
    template = load_templates()["coingecko-prices-usd"]
    payload = coingecko.simple_price(["bitcoin", "ethereum"], ["usd"], NOW)
    [point] = _run(template, payload)
    assert point.value == payload["bitcoin"]["usd"]
    assert point.dimensions == {
        "bitcoin": payload["bitcoin"]["usd"],
        "ethereum": payload["ethereum"]["usd"],
    }


def test_series_labelled_by_a_field_over_time() -> None:
    """Rows of several series over time (a long table): one point per time, each series
    a labelled dimension."""
    template = _template(
        {
            "rows_path": "",
            "value_path": "count",
            "series_label": "browser",
            "timestamp": "day",
            "timestamp_format": "date",
        }
    )
    payload = [
        {"day": "2026-11-27", "browser": "firefox", "count": 3},
        {"day": "2026-11-27", "browser": "chrome", "count": 5},
        {"day": "2026-11-28", "browser": "firefox", "count": 4},
    ]
    points = _run(template, payload)
    assert [(p.timestamp.day, p.value, p.dimensions) for p in points] == [
        (27, 3.0, {"firefox": 3.0, "chrome": 5.0}),
        (28, 4.0, {"firefox": 4.0}),
    ]


def test_value_map_turns_strings_into_numbers_and_refuses_unknown_ones() -> None:
    """A status page's ``"operational"``/``"degraded"``: mapped; a string the map does not
    know is an error naming it, never a silently skipped point."""
    template = _template(
        {
            "rows_path": "components",
            "value_path": "status",
            "value_map": {"operational": 1, "degraded_performance": 0.5, "major_outage": 0},
            "dimension_paths": {"name": "name"},
        }
    )
    payload = {
        "components": [
            {"name": "API", "status": "operational"},
            {"name": "Webhooks", "status": "degraded_performance"},
        ]
    }
    assert [p.value for p in _run(template, payload)] == [1.0, 0.5]
    payload["components"].append({"name": "Git", "status": "under_maintenance"})
    with pytest.raises(ValueError, match="'under_maintenance' at status is not in value_map"):
        _run(template, payload)


@pytest.mark.parametrize(
    ("hints", "payload", "problem"),
    [
        (
            {"value_path": "stargazer_count"},
            {"stargazers_count": 3},
            "value path 'stargazer_count' finds nothing",
        ),
        (
            {"rows_path": "result", "value_path": "1"},
            {"results": [[1, 2]]},
            "rows_path 'result' finds nothing",
        ),
        (
            {"rows_path": "results", "value_path": "count"},
            {"results": [{"n": 1}]},
            "value path 'count' finds nothing in any row",
        ),
        (
            {"value_path": "a", "dimension_paths": {"forks": "fork_count"}},
            {"a": 1},
            "dimension 'forks' path 'fork_count' finds nothing",
        ),
        (
            {"rows_path": "r", "value_path": "v", "timestamp": "when"},
            {"r": [{"v": 1, "at": "2026-01-01"}]},
            "timestamp path 'when' finds nothing in any row",
        ),
        (
            {
                "rows_path": "r",
                "rows_kind": "mapping",
                "value_path": "value",
                "select": {"path": "@key", "equals": "usd"},
            },
            {"r": {"eur": {"value": 1}}},
            "no row has @key = 'usd'",
        ),
        (
            {"rows_path": "r", "rows_kind": "columns", "value_path": "v"},
            {"r": [1, 2]},
            "rows_path 'r' finds a list, not the object its rows_kind 'columns' needs",
        ),
    ],
)
def test_a_hinted_path_that_finds_nothing_is_named(
    hints: dict[str, Any], payload: Any, problem: str
) -> None:
    """Each typo or absent field of the issue's cases, in one line."""
    problems = unresolved(ExtractionHints.model_validate(hints), payload)
    assert any(problem in line for line in problems), problems


def test_a_null_value_is_found_but_is_no_data() -> None:
    """A present key whose value is null resolves (no typo), and is not data."""
    hints = ExtractionHints(value_path="a")
    assert unresolved(hints, {"a": None}) == []
    assert hinted_values(hints, {"a": None}) == []
    assert hinted_values(hints, {"a": 0}) == [0]


def test_a_payload_with_data_and_no_points_is_a_transform_failure() -> None:
    """At run time: the payload holds values at the hinted path, so an empty output is an
    error on the metric; an empty answer may give no points."""
    raw = RawPayload(
        metric_id=uuid4(),
        organization_id="acme",
        template_id="github-repo-stars",
        fetched_at=NOW,
        endpoint="/repos/a/b",
        payload={"stargazers_count": 12},
    )
    with pytest.raises(TransformError, match=r"returned no points, but the payload holds 1 value"):
        silent_failure(raw)
    silent_failure(raw.model_copy(update={"payload": {"message": "Not Found"}}))


def test_hints_need_one_value_source() -> None:
    """``value_path`` or ``series``, not both or neither; ``series_label`` needs rows."""
    with pytest.raises(ValueError, match="either value_path or series"):
        ExtractionHints.model_validate({})
    with pytest.raises(ValueError, match="either value_path or series"):
        ExtractionHints.model_validate({"value_path": "a", "series": {"b": "b"}})
    with pytest.raises(ValueError, match="series_label labels rows"):
        ExtractionHints.model_validate({"value_path": "a", "series_label": "k"})


def test_an_empty_list_is_absent_data_not_a_typo() -> None:
    """YouTube answers ``items: []`` for a video that is gone: ``items.0.…`` finds nothing
    because there is no data this time, which is not a wrong path (and gives no points)."""
    hints = ExtractionHints(value_path="items.0.statistics.viewCount")
    assert unresolved(hints, {"items": []}) == []
    assert hinted_values(hints, {"items": []}) == []
    assert unresolved(hints, {"item": []}) == [
        "value path 'items.0.statistics.viewCount' finds nothing"
    ]


def test_a_snapshot_is_one_point_of_all_its_rows() -> None:
    """The design's snapshot: one point at the poll's time, value = the rows kept, the
    rows themselves in its ``rows`` dimension; an empty sheet is a point of 0 (data, not
    silence); a sheet without any date column fits."""
    template = _template(
        {"rows_path": "values", "skip_rows": 1, "snapshot": True}, is_time_series=False
    )
    sheet = {"values": [["Name", "Team"], ["Ada", "core"], ["Lin", "ops"], ["Kim", None]]}
    [point] = _run(template, sheet)
    assert point.timestamp == NOW and point.value == 3.0
    assert point.dimensions == {"rows": [["Ada", "core"], ["Lin", "ops"], ["Kim", None]]}
    assert hinted_values(template.hints, sheet) == [3]
    [empty] = _run(template, {"values": [["Name", "Team"]]})
    assert empty.value == 0.0 and empty.dimensions == {"rows": []}
    assert unresolved(template.hints, {"rows": []}) == [
        "rows_path 'values' finds nothing, not the list its rows_kind 'list' needs"
    ]


def test_a_snapshot_takes_no_paths_and_is_no_time_series() -> None:
    with pytest.raises(ValueError, match="a snapshot needs rows_path"):
        ExtractionHints.model_validate({"snapshot": True})
    with pytest.raises(ValueError, match=r"drop \['value_path', 'timestamp'\]"):
        ExtractionHints.model_validate(
            {"snapshot": True, "rows_path": "v", "value_path": "0", "timestamp": "1"}
        )
    with pytest.raises(ValueError, match="a snapshot template is replaced on every poll"):
        _template({"rows_path": "values", "snapshot": True})  # is_time_series defaults true


def test_snapshot_rows_are_checked_like_any_dimension_all_the_way_down() -> None:
    """Lists and objects are stored as they are; a NUL or a NaN inside them is refused
    here, not by the database in the writer's batch."""
    rows = [["a", 1, None, True], {"k": {"deep": [2.5]}}]
    point = DataPoint(timestamp=NOW, value=2, dimensions={"rows": rows})
    assert point.dimensions == {"rows": rows}
    for bad, why in (
        ([["a\x00"]], "NUL"),
        ([{"k": float("nan")}], "finite"),
        ([{"a\x00": 1}], "NUL"),
    ):
        with pytest.raises(ValueError, match=why):
            DataPoint(timestamp=NOW, value=2, dimensions={"rows": bad})
