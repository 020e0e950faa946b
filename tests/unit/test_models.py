"""The pydantic boundary checks on what transformers return."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest
from pydantic import ValidationError

from schema.models import ChartConfig, DataPoint


def test_datapoint_rejects_nan_and_infinity() -> None:
    """NaN and infinity never reach the database."""
    for bad in (float("nan"), float("inf"), float("-inf")):
        with pytest.raises(ValidationError, match="finite"):
            DataPoint(timestamp=datetime.now(UTC), value=bad)


def test_datapoint_rejects_far_future_and_naive_timestamps() -> None:
    """A timestamp days ahead is a parsing bug; one without a zone is ambiguous."""
    with pytest.raises(ValidationError, match="future"):
        DataPoint(timestamp=datetime.now(UTC) + timedelta(days=30), value=1)
    with pytest.raises(ValidationError):
        DataPoint(timestamp=datetime(2025, 1, 1), value=1)


def test_datapoint_rejects_dimensions_the_database_cannot_store() -> None:
    """NUL characters (in values or names) and numbers no float holds fail here, on the
    point's metric, instead of failing the writer's whole batch later; an integer beyond
    64 bits is kept as a float; booleans stay booleans."""
    now = datetime.now(UTC)
    for bad in ({"huge": 10**400}, {"text": "a\x00b"}, {"a\x00b": 1}):
        with pytest.raises(ValidationError):
            DataPoint(timestamp=now, value=1, dimensions=bad)
    point = DataPoint(
        timestamp=now, value=1, dimensions={"n": 2**63 - 1, "big": 2**64, "flag": True, "r": "x"}
    )
    assert point.dimensions == {"n": 2**63 - 1, "big": float(2**64), "flag": True, "r": "x"}
    assert type(point.dimensions["big"]) is float and type(point.dimensions["flag"]) is bool
    orjson.dumps(point.dimensions)  # what the writer sends


@pytest.mark.parametrize("value", [True, False, "12", "1.5"])
def test_datapoint_value_is_a_number_not_a_bool_or_a_string(value: object) -> None:
    """``true`` would be stored as 1.0 and ``"12"`` as 12.0 without a word."""
    with pytest.raises(ValidationError, match="value"):
        DataPoint.model_validate({"timestamp": "2026-01-01T00:00:00Z", "value": value})


def test_datapoint_takes_integers_and_null_dimensions() -> None:
    """The design's examples send ``dimensions: null``; JSON integers are numbers."""
    point = DataPoint.model_validate_json(
        '{"timestamp": "2026-01-01T00:00:00Z", "value": 3, "dimensions": null}'
    )
    assert point.value == 3.0 and point.dimensions == {}


@pytest.mark.parametrize("stamp", ["0001-01-01T00:00:00Z", "1899-12-31T23:59:59Z"])
def test_datapoint_rejects_timestamps_before_1900(stamp: str) -> None:
    """Year 1 is what a zero or garbled time parses to, not data."""
    with pytest.raises(ValidationError, match="before 1900"):
        DataPoint.model_validate({"timestamp": stamp, "value": 1})


def test_datapoint_normalises_to_utc() -> None:
    """Offsets are kept as instants, stored in UTC."""
    point = DataPoint.model_validate({"timestamp": "2025-01-01T02:00:00+02:00", "value": 3.5})
    assert point.timestamp == datetime(2025, 1, 1, tzinfo=UTC)
    assert point.value == 3.5


def _chart(**overrides: object) -> dict[str, object]:
    doc: dict[str, object] = {
        "chartType": "line",
        "title": "Stars",
        "xAxisKey": "date",
        "dataKeys": ["value"],
        "chartData": [{"date": "2025-01-01", "value": 1}],
        "colors": {"value": "var(--chart-1)"},
    }
    doc.update(overrides)
    return doc


def test_chart_config_requires_keys_in_every_row() -> None:
    """Every chartData row carries the x axis key and every data key."""
    ChartConfig.model_validate(_chart())
    with pytest.raises(ValidationError, match=r"chartData\[1\] lacks \['value'\]"):
        ChartConfig.model_validate(_chart(chartData=[{"date": "a", "value": 1}, {"date": "b"}]))


def test_chart_config_colours_are_the_theme_variables() -> None:
    """Colours are var(--chart-1) … var(--chart-12), nothing else."""
    ChartConfig.model_validate(_chart(colors={"value": "var(--chart-12)"}))
    for bad in ("#ff0000", "var(--chart-13)", "var(--chart-0)"):
        with pytest.raises(ValidationError, match="colour"):
            ChartConfig.model_validate(_chart(colors={"value": bad}))


def test_chart_config_rejects_unknown_chart_type_and_empty_title() -> None:
    """Only the seven chart types; a title is required."""
    with pytest.raises(ValidationError):
        ChartConfig.model_validate(_chart(chartType="donut"))
    with pytest.raises(ValidationError):
        ChartConfig.model_validate(_chart(title=""))


def test_first_polls_spread_across_the_period() -> None:
    """New metrics' first scheduled polls fall at stable, per-metric offsets that cover
    the period, so a burst of creations does not become a burst of polls."""
    import uuid

    from schema.models import PollFrequency

    now = datetime(2026, 1, 1, tzinfo=UTC)
    ids = [uuid.UUID(int=n * 7919 + 12345) for n in range(1000)]
    offsets = [(PollFrequency.HOURLY.first_poll_after(i, now) - now).total_seconds() for i in ids]  # type: ignore[operator]
    assert all(0 <= o < 3600 for o in offsets)
    assert len({int(o // 360) for o in offsets}) == 10  # every tenth of the hour is used
    assert PollFrequency.HOURLY.first_poll_after(
        ids[0], now
    ) == PollFrequency.HOURLY.first_poll_after(ids[0], now)
    assert PollFrequency.MANUAL.first_poll_after(ids[0], now) is None


def test_chart_config_takes_the_design_display_fields() -> None:
    """The design's optional fields validate, and unset ones stay off the wire."""
    full = ChartConfig.model_validate(
        _chart(
            chartConfig={"value": {"label": "Stars", "color": "var(--chart-2)"}},
            xAxisLabel="Day",
            yAxisLabel="Stars",
            showLegend=False,
            showTooltip=True,
            stacked=True,
        )
    )
    wire = orjson.loads(full.model_dump_json(by_alias=True))
    assert wire["chartConfig"] == {"value": {"label": "Stars", "color": "var(--chart-2)"}}
    assert (wire["xAxisLabel"], wire["showLegend"], wire["stacked"]) == ("Day", False, True)
    bare = orjson.loads(ChartConfig.model_validate(_chart()).model_dump_json(by_alias=True))
    assert not {"chartConfig", "xAxisLabel", "showLegend", "stacked"} & bare.keys()
    with pytest.raises(ValidationError, match="colour"):
        ChartConfig.model_validate(_chart(chartConfig={"value": {"label": "x", "color": "red"}}))
