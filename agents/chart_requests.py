"""Reading a chart change asked for in plain words ("weekly averages as bars, last 90 days").

The command stage reads the request once, before any code is written, and turns what it
understands into new :class:`~schema.models.ChartSettings`: chart type, aggregation, range
and buckets. Those settings are what the chart transformer row stores, what the code is
given as preferences and what its config must draw, so the three cannot disagree. The rest
of the request (colours, labels, anything a model can do in code) goes to the model with it.

A request is refused, not guessed at, when it names two chart types, two aggregations or
two ranges, or (without a model) says nothing this reading understands: a refusal is one
line the person can act on.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal, get_args

from schema.models import (
    MAX_RANGE_DAYS,
    Aggregation,
    ChartSettings,
    ChartTransformer,
    ChartType,
    DashboardMetric,
    Granularity,
)

CHART_WORDS: dict[str, ChartType] = {
    "line": "line",
    "lines": "line",
    "bar": "bar",
    "bars": "bar",
    "column": "bar",
    "columns": "bar",
    "histogram": "bar",
    "area": "area",
    "areas": "area",
    "pie": "pie",
    "pies": "pie",
    "donut": "pie",
    "doughnut": "pie",
    "radar": "radar",
    "spider": "radar",
    "radial": "radial",
    "kpi": "kpi",
}
AGGREGATION_WORDS: dict[str, Aggregation] = {
    "average": "avg",
    "averages": "avg",
    "averaged": "avg",
    "mean": "avg",
    "means": "avg",
    "avg": "avg",
    "total": "sum",
    "totals": "sum",
    "sum": "sum",
    "sums": "sum",
    "summed": "sum",
    "maximum": "max",
    "maximums": "max",
    "max": "max",
    "peak": "max",
    "peaks": "max",
    "highest": "max",
    "minimum": "min",
    "minimums": "min",
    "min": "min",
    "lowest": "min",
    "count": "count",
    "counts": "count",
    "latest": "last",
    "last": "last",
    "current": "last",
    "raw": "none",
    "unaggregated": "none",
    "individual": "none",
}
UNIT_DAYS = {"day": 1, "week": 7, "month": 30, "quarter": 91, "year": 365}

_ALL_TIME = re.compile(r"\b(?:all[ -]time|all (?:the )?(?:data|history|points)|everything)\b")
_RANGE = re.compile(
    r"\b(?:last|past|previous|recent)\s+(?:(\d{1,4})\s+)?(day|week|month|quarter|year)s?\b"
)
_BUCKET = re.compile(
    r"\b(?:per|by|each|every|a)\s+(hour|day|week|month)\b|\b(hourly|daily|weekly|monthly)\b"
)
_WORD = re.compile(r"[a-z]+")
_TITLE = re.compile(
    r"\b(?:title|titled|call it|rename it to|rename to|named)\s*:?\s*[\"“'‘]([^\"”'’]{1,200})[\"”'’]",
    re.IGNORECASE,
)
_NO_SERIES = re.compile(
    r"\b(?:(?:the )?values? only|only (?:the )?values?|just (?:the )?values?|no series"
    r"|without (?:any )?series|no other series)\b"
)
_DROP_WORDS = {"without", "hide", "remove", "drop", "no", "not", "minus", "except", "exclude"}
_ONLY_WORDS = {"only", "just"}
_TRAILING_ONLY = {"only", "alone"}
_NEGATED_VERB = re.compile(
    r"\b(?:do not|don['’]?t|never|stop|no longer)\s+(?:show|display|draw|plot|include)\w*"
)
_CONNECTIVES = {"and", "or", "nor", "the", "a", "an", "series", "also", "both", "of", "as", "well"}
_UNSTACKED = re.compile(r"\b(?:unstacked|not stacked|side by side)\b")
_TARGET = re.compile(r"\b(?:to|into|as)\s+(?:(?:an?|the)\s+)?([a-z]+)")


class ChartRequestError(ValueError):
    """A request that names something contradictory or unsupported (one line)."""


@dataclass(frozen=True)
class ChartChange:
    """What a request asks to change; None where it says nothing."""

    chart_type: ChartType | None = None
    aggregation: Aggregation | None = None
    date_range_days: int | Literal["all"] | None = None
    granularity: Granularity | None = None
    stacked: bool | None = None
    title: str | None = None
    """A new title, given in quotes (the dashboard metric's own, not a setting)."""
    series_only: tuple[str, ...] | None = None
    """Exactly these series ("only forks"; "value only": none)."""
    series_add: tuple[str, ...] = ()
    series_drop: tuple[str, ...] = ()

    @property
    def understood(self) -> bool:
        return any(
            v is not None
            for v in (
                self.chart_type,
                self.aggregation,
                self.date_range_days,
                self.granularity,
                self.stacked,
                self.title,
                self.series_only,
            )
        ) or bool(self.series_add or self.series_drop)

    def applied_to(
        self, settings: ChartSettings, default_series: Sequence[str] = ()
    ) -> ChartSettings:
        """The settings with this change made (series counted from ``default_series``, the
        template's, when the chart never chose its own); ChartRequestError if they cannot
        hold (hourly buckets over a long range)."""
        series = settings.series
        if self.series_only is not None:
            series = self.series_only
        elif self.series_add or self.series_drop:
            drawn = [*(default_series if series is None else series), *self.series_add]
            series = tuple(n for n in dict.fromkeys(drawn) if n not in self.series_drop)
        try:
            return ChartSettings(
                chart_type=self.chart_type or settings.chart_type,
                date_range_days=(
                    settings.date_range_days
                    if self.date_range_days is None
                    else self.date_range_days
                ),
                aggregation=self.aggregation or settings.aggregation,
                granularity=self.granularity or settings.granularity,
                stacked=settings.stacked if self.stacked is None else self.stacked,
                series=series,
            )
        except ValueError as exc:
            errors = getattr(exc, "errors", None)
            message = errors()[0]["msg"] if callable(errors) else str(exc)
            raise ChartRequestError(message.removeprefix("Value error, ")) from exc


def read_change(text: str, dimensions: Collection[str] = ()) -> ChartChange:
    """What ``text`` asks for. A range ("last 30 days", "past year") is read first and taken
    out, so its "last" is not read as the aggregation and its "days" not as the buckets.
    ``dimensions`` are the metric's dimension names: a request naming one picks it as a
    series ("with forks", "without watchers", "only forks"; "value only" draws none), and
    its name is not read as anything else."""
    titled = _TITLE.search(text)
    change = ChartChange(title=titled.group(1).strip() if titled else None)
    lowered = (text[: titled.start()] + " " + text[titled.end() :] if titled else text).lower()
    if _NO_SERIES.search(lowered):
        change = replace(change, series_only=())
        lowered = _NO_SERIES.sub(" ", lowered)
    change, lowered = _read_series(change, lowered, dimensions)
    unstacked = _UNSTACKED.search(lowered)
    if unstacked or re.search(r"\bstacked\b", lowered):
        change = replace(change, stacked=not unstacked)
    ranges = _RANGE.findall(lowered)
    if _ALL_TIME.search(lowered):  # the design's dateRange "all": no bound at all
        ranges.append(("", "all"))
        lowered = _ALL_TIME.sub(" ", lowered)
    if len(ranges) > 1:
        raise ChartRequestError(f"{text!r} names {len(ranges)} date ranges: name one")
    if ranges:
        count, unit = ranges[0]
        days: int | Literal["all"] = "all"
        if unit != "all":
            days = int(count or 1) * UNIT_DAYS[unit]
            if not 1 <= days <= MAX_RANGE_DAYS:
                raise ChartRequestError(
                    f"a chart's range is 1 to {MAX_RANGE_DAYS} days or all time, not {days}"
                )
        change = replace(change, date_range_days=days)
        lowered = _RANGE.sub(" ", lowered)
    buckets = {_bucket(a or b) for a, b in _BUCKET.findall(lowered)}
    change = replace(change, granularity=_one(text, "bucket sizes", buckets))
    lowered = _BUCKET.sub(" ", lowered)
    words = _WORD.findall(lowered)
    chart_types = {CHART_WORDS[w] for w in words if w in CHART_WORDS}
    if len(chart_types) > 1:  # "change the line chart to bars": the one after to/into/as
        targets = {CHART_WORDS[w] for w in _TARGET.findall(lowered) if w in CHART_WORDS}
        chart_types = targets if len(targets) == 1 else chart_types
    aggregations = {AGGREGATION_WORDS[w] for w in words if w in AGGREGATION_WORDS}
    return replace(
        change,
        chart_type=_one(text, "chart types", chart_types),
        aggregation=_one(text, "aggregations", aggregations),
    )


def _read_series(
    change: ChartChange, lowered: str, dimensions: Collection[str]
) -> tuple[ChartChange, str]:
    """The series a request names, and the request with their names taken out. Each name
    is added, unless the last word before it (connectives and other names aside) drops it
    ("without", "hide", "no", "not", "don't show", "stop showing") or keeps only it
    ("only", "just"), or the words after it keep only it ("forks only", "forks alone").
    After "value only", a name added means value and that name ("value only with forks")."""
    if not dimensions:
        return change, lowered
    lowered = _NEGATED_VERB.sub(" without ", lowered)
    names = sorted(dimensions, key=len, reverse=True)  # "open_issues" before "issues"
    spelled = "|".join(
        re.escape(n.lower()).replace("_", "[ _-]").replace(r"\-", "[ _-]") for n in names
    )
    by_spelling = {re.sub(r"[ _-]", "_", n.lower()): n for n in names}
    mention = re.compile(rf"(?<![a-z0-9_-])({spelled})(?![a-z0-9_-])")
    found: dict[str, list[str]] = {"add": [], "drop": [], "only": []}
    mode = "add"
    position = 0
    run: list[str] = []  # the names added since the last word that was not a connective
    for match in mention.finditer(lowered):
        for word in _WORD.findall(lowered[position : match.start()]):
            if word in _CONNECTIVES:
                continue
            run = []
            mode = "drop" if word in _DROP_WORDS else "only" if word in _ONLY_WORDS else "add"
        name = by_spelling[re.sub(r"[ _-]", "_", match.group(1))]
        found[mode].append(name)
        position = match.end()
        run.append(name)
        after = [w for w in _WORD.findall(lowered[position:]) if w not in _CONNECTIVES]
        if mode == "add" and after[:1] and after[0] in _TRAILING_ONLY:  # "forks only"
            found["only"] += run
            found["add"] = [n for n in found["add"] if n not in run]
    if not any(found.values()):
        return change, lowered
    if found["only"] or (change.series_only == () and found["add"]):
        change = replace(change, series_only=tuple(dict.fromkeys(found["only"] + found["add"])))
    else:
        change = replace(
            change,
            series_add=tuple(dict.fromkeys(found["add"])),
            series_drop=tuple(dict.fromkeys(found["drop"])),
        )
    return change, mention.sub(" ", lowered)


def _bucket(word: str) -> str:
    """A bucket word as a granularity's name ("week" and "weekly": "weekly")."""
    return word if word.endswith("ly") else {"day": "daily"}.get(word, f"{word}ly")


def _one(text: str, what: str, found: set[Any]) -> Any:
    """The one value a request names of a kind; refused when it names several."""
    if len(found) > 1:
        names = ", ".join(sorted(str(f) for f in found))
        raise ChartRequestError(f"{text!r} names several {what} ({names}): name one")
    return next(iter(found), None)


def settings_of(dm: DashboardMetric, current: ChartTransformer | None) -> ChartSettings:
    """A chart's settings now: its transformer row's (the dashboard metric as loaded carries
    them), with the buckets a change asked for kept in the row's preferences."""
    preferences = current.preferences if current else {}
    granularity = preferences.get("granularity")
    series = preferences.get("series_dimensions")
    drawn = isinstance(series, list) and all(isinstance(n, str) for n in series)
    return ChartSettings(
        chart_type=dm.chart_type,
        date_range_days=dm.date_range_days,
        aggregation=dm.aggregation,
        granularity=granularity if granularity in get_args(Granularity) else None,
        stacked=preferences.get("stacked") is True,
        series=tuple(series) if drawn else None,  # type: ignore[arg-type]
    )


def understood_words() -> str:
    """What a request may name, for a refusal that tells the person what works."""
    return (
        f"a chart type ({', '.join(sorted(set(CHART_WORDS.values())))}),"
        " an aggregation (average, total, max, min, count, latest, raw),"
        " a range ('last 30 days', 'past year', 'all time') or buckets (hourly, daily,"
        " weekly, monthly), stacked, series by a dimension's name ('with forks', 'without"
        " watchers', 'value only'), or a title in quotes"
    )
