"""Enumerations for options whose values the models give as ``Literal``s: Typer lists an
Enum's values in its help and in the one-line error for a value outside them. Each mirrors
its ``Literal`` (``tests/unit/test_cli_errors.py`` checks they stay the same)."""

from __future__ import annotations

from enum import StrEnum


class ChartTypeChoice(StrEnum):
    """``schema.models.ChartType``."""

    LINE = "line"
    BAR = "bar"
    AREA = "area"
    PIE = "pie"
    RADAR = "radar"
    RADIAL = "radial"
    KPI = "kpi"


class AggregationChoice(StrEnum):
    """``streams.messages.CreateDashboardMetric.aggregation``."""

    SUM = "sum"
    AVG = "avg"
    MIN = "min"
    MAX = "max"
    LAST = "last"
    COUNT = "count"
    NONE = "none"
