"""Domain models: what transformers must return, and the rows the stages work on.

These are the boundary checks of the design: every value a sandboxed transformer returns
is validated here before it is stored or published, and every row read from the database
is validated into one of these before plain code touches it.
"""

from __future__ import annotations

import math
import re
import string
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel
from typing_extensions import TypeAliasType

MAX_FUTURE = timedelta(days=2)
MIN_TIMESTAMP = datetime(1900, 1, 1, tzinfo=UTC)
"""Points before this are refused: what a zero or a garbled time parses to (year 1 is
Python's ``datetime.min``), not data any API serves."""
"""Points stamped further than this in the future are rejected: they are a parsing bug
(milliseconds read as seconds, a swapped day and month), never real measurements."""


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError("must be a finite number (NaN and infinity are rejected)")
    return value


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters (PostgreSQL text and jsonb cannot)")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError("must not contain unpaired surrogates (not valid UTF-8)") from exc
    return value


FiniteFloat = Annotated[float, AfterValidator(_finite)]
Int64 = Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]
"""Integers a jsonb document and the writer's JSON encoder (orjson) both hold."""
StorableText = Annotated[str, AfterValidator(_no_nul)]
DimensionValue = FiniteFloat | Int64 | StorableText | bool | None
"""Checked here, in the transform stage, so that one bad point is an error on its metric
rather than a write batch the database refuses."""
SnapshotValue = TypeAliasType(
    "SnapshotValue",
    "FiniteFloat | Int64 | StorableText | bool"
    " | list[SnapshotValue] | dict[StorableText, SnapshotValue] | None",
)
"""A dimension's value may also be a JSON list or object (the whole of a snapshot: a
sheet's rows), checked the same way all the way down."""


class PollFrequency(StrEnum):
    """Polling tiers; ``manual`` metrics are fetched only on a refresh command."""

    FREQUENT = "frequent"
    HOURLY = "hourly"
    DAILY = "daily"
    WEEKLY = "weekly"
    MANUAL = "manual"

    @property
    def interval(self) -> timedelta | None:
        return _INTERVALS[self]

    def first_poll_after(self, metric_id: UUID, now: datetime) -> datetime | None:
        """The first scheduled poll of a new metric: a fixed, per-metric offset into the
        period (from the id's hash), so metrics created together do not all fall due
        together; from then on each keeps its own grid."""
        interval = self.interval
        if interval is None:
            return None
        fraction = (metric_id.int % 10_007) / 10_007
        return now + interval * fraction


_INTERVALS: dict[PollFrequency, timedelta | None] = {
    PollFrequency.FREQUENT: timedelta(minutes=15),
    PollFrequency.HOURLY: timedelta(hours=1),
    PollFrequency.DAILY: timedelta(days=1),
    PollFrequency.WEEKLY: timedelta(weeks=1),
    PollFrequency.MANUAL: None,
}


class DataPoint(BaseModel):
    """One time-series point, as a MetricTransformer returns it.

    ``value`` is a JSON number, strictly: a boolean or a numeric string is the
    transformer's mistake (``true`` would become 1.0 and ``"12"`` 12.0 silently), so it is
    refused with the field named. ``dimensions`` may be ``null``, as in the design's
    examples (stored as no dimensions)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timestamp: AwareDatetime
    value: Annotated[float, Field(strict=True, allow_inf_nan=False)]
    dimensions: dict[StorableText, SnapshotValue] = Field(default_factory=dict)

    @field_validator("dimensions", mode="before")
    @classmethod
    def _null_is_none(cls, value: object) -> object:
        return {} if value is None else value

    @field_validator("timestamp")
    @classmethod
    def _in_range(cls, value: datetime) -> datetime:
        if value > datetime.now(UTC) + MAX_FUTURE:
            raise ValueError(f"timestamp {value.isoformat()} is too far in the future")
        if value < MIN_TIMESTAMP:
            raise ValueError(f"timestamp {value.isoformat()} is before {MIN_TIMESTAMP.year}")
        return value.astimezone(UTC)


TransformerLanguage = Literal["python", "typescript"]
"""What a transformer is written in (TypeScript runs as the JavaScript tsc emits)."""

ChartType = Literal["line", "bar", "area", "pie", "radar", "radial", "kpi"]
Aggregation = Literal["sum", "avg", "min", "max", "last", "count", "none"]
"""A chart's aggregation per bucket; ``none`` draws the raw points themselves."""
MAX_RAW_POINTS = 5000
"""A raw (``none``) chart draws at most this many points: the range's newest."""
Granularity = Literal["hourly", "daily", "weekly", "monthly"]
"""A chart's buckets: the rollups, and calendar months read from the daily one."""
MAX_RANGE_DAYS = 3660
"""The longest finite range a chart has (ten years)."""


def _all_time(value: object) -> object:
    return None if value == "all" else value


RangeDays = Annotated[int, Field(ge=1, le=MAX_RANGE_DAYS)]
DateRange = Annotated[
    RangeDays | None,
    BeforeValidator(_all_time, json_schema_input_type=RangeDays | Literal["all"] | None),
]
"""A chart's range: days back from now, or None for all time (the design's dateRange
``"all"``, which is accepted for it): every point the metric has, without a bound."""
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
"""No point is older (``DataPoint`` refuses it): where an all-time range starts."""


def range_start(days: int | None, now: datetime) -> datetime:
    """Where a chart's range starts."""
    return EARLIEST if days is None else now - timedelta(days=days)


MAX_HOURLY_DAYS = 92
"""Hourly buckets draw at most this many days (2,208 points); longer ranges take days."""
_COLOR = re.compile(r"^var\(--chart-([1-9]|1[0-2])\)$")


def _unset(value: object) -> bool:
    return value is None


class SeriesStyle(BaseModel):
    """How one data key is shown: the design's ``chartConfig`` entry."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    label: str = Field(min_length=1, max_length=200)
    color: str | None = None


class ChartConfig(BaseModel):
    """A chart as the dashboard renders it (camelCase on the wire, like the front end).

    The design's optional display fields (``chartConfig``, ``xAxisLabel``, ``yAxisLabel``,
    ``showLegend``, ``showTooltip``, ``stacked``) are accepted and, when unset, left out of
    the JSON rather than sent as ``null`` (its interface declares them optional)."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, alias_generator=to_camel, populate_by_name=True
    )

    chart_type: ChartType
    title: str = Field(min_length=1, max_length=200)
    description: str = Field("", max_length=1000)
    x_axis_key: str = Field(min_length=1)
    data_keys: list[str] = Field(min_length=1)
    chart_data: list[dict[str, DimensionValue]]
    colors: dict[str, str] = Field(default_factory=dict)
    chart_config: dict[str, SeriesStyle] | None = Field(None, exclude_if=_unset)
    x_axis_label: str | None = Field(None, max_length=200, exclude_if=_unset)
    y_axis_label: str | None = Field(None, max_length=200, exclude_if=_unset)
    show_legend: bool | None = Field(None, exclude_if=_unset)
    show_tooltip: bool | None = Field(None, exclude_if=_unset)
    stacked: bool | None = Field(None, exclude_if=_unset)

    @model_validator(mode="after")
    def _keys_in_every_row(self) -> ChartConfig:
        wanted = {self.x_axis_key, *self.data_keys}
        for number, row in enumerate(self.chart_data):
            missing = wanted - row.keys()
            if missing:
                raise ValueError(f"chartData[{number}] lacks {sorted(missing)}")
        styled = {key: style.color for key, style in (self.chart_config or {}).items()}
        for key, color in {**self.colors, **styled}.items():
            if color is not None and not _COLOR.match(color):
                raise ValueError(f"colour for {key!r} must be var(--chart-1) … var(--chart-12)")
        return self


class Pagination(BaseModel):
    """How an endpoint pages, so the fetch stage reads every page into one payload.

    ``link``: follow ``Link: <…>; rel="next"`` (GitHub). ``page_token``: send the body's
    ``token_path`` value as the ``token_param`` query parameter (YouTube's
    ``nextPageToken``). ``has_more``: while ``has_more_path`` is true, send the count read
    so far as the ``offset_param`` query parameter. The items at ``items_path`` (``""``:
    the body is the list) are concatenated; an empty page ends it; more than ``max_pages``
    pages is an error, never a silent truncation."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["link", "page_token", "has_more"]
    items_path: str = ""
    token_path: str = "nextPageToken"  # noqa: S105 - a JSON path, not a secret
    token_param: str = "pageToken"  # noqa: S105 - a parameter name, not a secret
    has_more_path: str = "hasMore"
    offset_param: str = "offset"
    max_pages: int = Field(20, ge=1, le=1000)


PROVIDER_NAME = r"^[a-z][a-z0-9_]{0,63}$"
"""A provider's name: lower-case letters, digits and ``_``, so that its base URL and token
settings are plain environment variables (``METRICLOOM_PROVIDER_URLS__OPEN_METEO``)."""
_HEADER_NAME = r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,100}$"
_RESERVED_HEADERS = frozenset(
    {"authorization", "host", "content-length", "content-type", "cookie", "transfer-encoding"}
)
"""Headers a provider file may not set: credentials and framing are metricloom's own."""


class BearerAuth(BaseModel):
    """The token goes as ``Authorization: Bearer <token>`` (GitHub, Google, PostHog)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    style: Literal["bearer"]


class HeaderAuth(BaseModel):
    """The token goes as the value of one named header (``X-API-Key: <token>``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    style: Literal["header"]
    name: str = Field(pattern=_HEADER_NAME)

    @field_validator("name")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        if value.lower() in _RESERVED_HEADERS - {"authorization"}:
            raise ValueError(f"header {value!r} is not a credential header")
        return value


class QueryAuth(BaseModel):
    """The token goes as one named query parameter (``?key=<token>``). Error messages name
    requests without their query, so the token never shows there either."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    style: Literal["query"]
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,100}$")


class NoAuth(BaseModel):
    """Public data: no credentials are ever sent (a connection with a token is refused)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    style: Literal["none"]


ProviderAuth = Annotated[BearerAuth | HeaderAuth | QueryAuth | NoAuth, Field(discriminator="style")]


class RateLimitHeaders(BaseModel):
    """Where a provider says how much of its rate limit is left and when it resets: read
    into the shared rate budget, and to tell a spent limit (``403`` with ``remaining`` 0)
    from a refusal. ``reset_format``: ``unix`` (epoch seconds, GitHub) or ``seconds``
    (seconds from now, the IETF ``RateLimit-Reset`` drafts)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    remaining: str = Field("X-RateLimit-Remaining", pattern=_HEADER_NAME)
    reset: str = Field("X-RateLimit-Reset", pattern=_HEADER_NAME)
    reset_format: Literal["unix", "seconds"] = "unix"


class PaginationDefaults(BaseModel):
    """A provider's usual paging, merged under each template endpoint's ``pagination``
    block (the block's own fields win), so a template of that provider writes only what
    differs (often just ``items_path``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["link", "page_token", "has_more"] | None = None
    token_path: str | None = None
    token_param: str | None = None
    has_more_path: str | None = None
    offset_param: str | None = None
    max_pages: int | None = Field(None, ge=1, le=1000)


class Provider(BaseModel):
    """An API metricloom can poll, declared in ``providers/<name>.json``: where it is, how a
    token is sent, which headers every request carries, where its rate-limit headers are
    and how it pages. Data, not code: adding an API takes a provider file and a template
    file. The base URL is a default; ``METRICLOOM_PROVIDER_URLS__<NAME>`` overrides it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=PROVIDER_NAME)
    description: str = ""
    base_url: str = Field(pattern=r"^https?://[^\s?#]+$")
    auth: ProviderAuth = BearerAuth(style="bearer")
    headers: dict[str, str] = Field(default_factory=dict)
    rate_limit: RateLimitHeaders = RateLimitHeaders()
    pagination: PaginationDefaults = PaginationDefaults()

    @field_validator("headers")
    @classmethod
    def _plain_headers(cls, value: dict[str, str]) -> dict[str, str]:
        for name, text in value.items():
            if re.fullmatch(_HEADER_NAME, name) is None:
                raise ValueError(f"{name!r} is not a header name")
            if name.lower() in _RESERVED_HEADERS:
                raise ValueError(f"header {name!r} is metricloom's to set, not a provider file's")
            if any(ord(c) < 0x20 or ord(c) == 0x7F for c in text):
                raise ValueError(f"header {name!r} holds a control character")
        return value


class Endpoint(BaseModel):
    """An HTTP call a template makes; ``{PARAM}`` placeholders are filled per metric."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str
    method: Literal["GET", "POST"] = "GET"
    query: dict[str, str] = Field(default_factory=dict)
    body: dict[str, Any] | None = None
    pagination: Pagination | None = None


class RowSelect(BaseModel):
    """Keep only the rows whose ``path`` holds ``equals`` (the ``usd`` row, not row 0)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str
    equals: str | int | float | bool


ROW_KEY = "@key"
"""In a ``mapping`` of rows, the path that reads each entry's key (``"usd"``); an entry that
is a plain value, not an object, is read at ``@value``."""


class ExtractionHints(BaseModel):
    """Where a payload's points are, for the offline generator (which writes the code from
    them), the model's prompt, and the validation that proves the code on a sample.

    Paths are dotted (``items.0.statistics.viewCount``; list indexes allowed, ``-1`` for the
    last). Without ``rows_path`` the payload is one point. With it, the payload holds one
    row per point and every other path is relative to a row; ``rows_kind`` says what is at
    ``rows_path`` (``""`` = the payload itself):

    * ``list`` — a list of rows (objects, or lists read by index: ``[[ms, price], …]``);
    * ``columns`` — parallel arrays (``{"time": [...], "temperature_2m": [...]}``): row *i*
      holds the *i*-th element of each array; arrays of different lengths are an error;
    * ``mapping`` — an object whose entries are rows (``{"usd": {...}, "eur": {...}}``),
      each entry's key at ``@key`` (and a plain value at ``@value``).

    ``select`` keeps only the rows whose path holds a value (the ``usd`` entry). The value
    is at ``value_path``. Several series in one answer are labelled dimensions of one point
    per timestamp (points are unique per metric and timestamp): ``series`` names several
    values of a row (label → path; the point's value is the first one's), or
    ``series_label`` is a path in each row whose value labels that row's value (rows of
    one timestamp, ``bitcoin`` and ``ethereum``, become one point; its value is the first
    row's). Draw the other series with the template's ``chart_dimensions``. ``value_map`` turns
    string values into numbers (``{"up": 1, "down": 0}``); a string it does not know is an
    error, never a skipped point. ``timestamp`` is ``fetched_at`` (the poll's time) or a
    path in the row, read as declared by ``timestamp_format`` — never guessed: ``iso``
    (with a zone, or naive with ``utc_offset_path``), ``date`` (``YYYY-MM-DD``), ``unix``
    (seconds) or ``unix_ms`` (milliseconds). ``utc_offset_path`` is a path in the whole
    payload (not the row) to the offset naive times are in: seconds east of UTC
    (Open-Meteo's ``utc_offset_seconds``), ``"+02:00"``, or ``"UTC"``/``"Z"``.

    ``snapshot`` reads the rows as one snapshot, not as points: ONE point stamped with the
    poll's time, whose value is the number of (selected) rows and whose ``rows`` dimension
    holds them all, replaced on every poll (the template is not a time series). It takes
    no value, series, dimension or timestamp path: the snapshot is the whole of it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    value_path: str | None = None
    series: dict[str, str] = Field(default_factory=dict)
    series_label: str | None = None
    rows_path: str | None = None
    rows_kind: Literal["list", "columns", "mapping"] = "list"
    skip_rows: int = Field(0, ge=0)
    select: RowSelect | None = None
    timestamp: str = "fetched_at"
    timestamp_format: Literal["iso", "unix", "unix_ms", "date"] = "iso"
    utc_offset_path: str | None = None
    dimension_paths: dict[str, str] = Field(default_factory=dict)
    value_map: dict[str, FiniteFloat] = Field(default_factory=dict)
    snapshot: bool = False

    @model_validator(mode="after")
    def _one_value_source(self) -> ExtractionHints:
        if self.snapshot:
            return self._a_whole_snapshot()
        if (self.value_path is None) == (not self.series):
            raise ValueError("give either value_path or series (label → path), not both")
        clash = sorted(set(self.series) & set(self.dimension_paths))
        if clash:
            raise ValueError(f"series {clash} are named as dimensions too")
        if self.series_label is not None and (self.rows_path is None or self.series):
            raise ValueError("series_label labels rows: it needs rows_path and value_path")
        if self.rows_path is None and (
            self.rows_kind != "list" or self.select is not None or self.skip_rows
        ):
            raise ValueError("rows_kind, select and skip_rows need rows_path")
        if self.timestamp == "fetched_at" and self.utc_offset_path is not None:
            raise ValueError("utc_offset_path needs a timestamp path")
        return self

    def _a_whole_snapshot(self) -> ExtractionHints:
        if self.rows_path is None:
            raise ValueError("a snapshot needs rows_path: the rows it holds")
        named = [
            name
            for name, given in (
                ("value_path", self.value_path is not None),
                ("series", bool(self.series)),
                ("series_label", self.series_label is not None),
                ("dimension_paths", bool(self.dimension_paths)),
                ("value_map", bool(self.value_map)),
                ("timestamp", self.timestamp != "fetched_at"),
                ("utc_offset_path", self.utc_offset_path is not None),
            )
            if given
        ]
        if named:
            raise ValueError(
                f"a snapshot is one point of all its rows, stamped at the poll: drop {named}"
            )
        return self

    def value_paths(self) -> dict[str | None, str]:
        """Each value's path by its series label (None: the one value of ``value_path``;
        nothing for a snapshot, whose value is its row count)."""
        if self.snapshot:
            return {}
        if self.value_path is not None:
            return {None: self.value_path}
        return {label: path for label, path in self.series.items()}

    def values_described(self) -> str:
        """Where the values are, for an error message."""
        if self.snapshot:
            return f"the rows at {self.rows_path!r}"
        return ", ".join(self.value_paths().values())


DEFAULT_PARAM_PATTERN = r"^[A-Za-z0-9_.:@-]{1,200}$"
"""The pattern of a parameter declared by its name alone: letters, digits and ``_ . : @ -``
(no ``/``, ``?``, ``%``, ``#``, spaces or quotes), at most 200 characters."""

WINDOW_PARAMS = frozenset({"FROM", "TO"})
"""Placeholders metricloom fills itself, with a backfill window's bounds (never a metric's)."""
WINDOW_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}(T[0-9:.]+([+-][0-9]{2}:[0-9]{2}|Z)?)?$"
"""What a window bound is: an ISO date or date-time (``datetime.isoformat()``)."""


def _shown(value: str) -> str:
    """A parameter value in a one-line message: quoted and escaped, cut at 60 characters."""
    return repr(value if len(value) <= 60 else value[:60] + "…")


class TemplateParam(BaseModel):
    """One parameter of a template: its placeholder name and the pattern every value must
    match in full (:func:`re.fullmatch`; the ``^``/``$`` written in the shipped templates
    are for the reader). A value that does not match is refused when the metric is created
    and again before any request; ``.`` and ``..`` are refused whatever the pattern says
    (``agents.fetch_client.unsafe_params``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Z][A-Z0-9_]{0,63}$")
    pattern: str = DEFAULT_PARAM_PATTERN

    @field_validator("name")
    @classmethod
    def _not_a_window(cls, value: str) -> str:
        if value in WINDOW_PARAMS:
            raise ValueError(f"{value} is a backfill window's placeholder, filled by metricloom")
        return value

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"pattern {value!r} is not a regular expression: {exc}") from exc
        return value

    def refusal(self, value: str) -> str | None:
        """Why ``value`` is refused for this parameter, in one line; None if it matches."""
        if re.fullmatch(self.pattern, value) is None:
            return f"parameter {self.name}={_shown(value)} does not match {self.pattern}"
        return None


class MetricTemplate(BaseModel):
    """A kind of metric (``github-repo-stars``): where to fetch it and what it means.

    Declared as JSON files under ``templates/``; the repository is the source of truth.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,63}$")
    name: str
    description: str
    provider: str = Field(pattern=PROVIDER_NAME)
    """A declared provider (``providers/<name>.json``): checked against the registry the
    template is validated with (``context={"providers": ...}``, as the loader does)."""
    params: list[TemplateParam]
    """Each ``{"name": "REPO", "pattern": "^[A-Za-z0-9_.-]{1,100}$"}``. The name and its
    pattern sit together, so no parameter can lack a pattern and no pattern can name a
    parameter that is not there (as a separate name-to-pattern map would allow). A bare
    name (``"REPO"``) still loads, with :data:`DEFAULT_PARAM_PATTERN`; the shipped
    templates all give a pattern fitted to the provider's ids."""
    polling: Endpoint
    historical: Endpoint | None = None
    historical_hints: ExtractionHints | None = None
    is_time_series: bool = True
    default_poll_frequency: PollFrequency = PollFrequency.DAILY
    historical_data_limit_days: int | None = None
    historical_chunk_days: int | None = Field(None, ge=1)
    default_chart_type: ChartType = "line"
    chart_dimensions: list[str] = Field(default_factory=list)
    unit: str = ""
    hints: ExtractionHints
    transformer_language: TransformerLanguage | None = None
    """What this template's transformer is written in; None: the deployment's
    ``METRICLOOM_TRANSFORMER_LANGUAGE``."""

    @model_validator(mode="before")
    @classmethod
    def _declared_provider(cls, data: Any, info: ValidationInfo) -> Any:
        """With a provider registry in the validation context: the provider must be one of
        it, and its pagination defaults go under each endpoint's ``pagination`` block."""
        providers: dict[str, Provider] | None = (info.context or {}).get("providers")
        if providers is None or not isinstance(data, dict):
            return data
        provider = providers.get(data.get("provider"))  # type: ignore[arg-type]
        if provider is None:
            raise ValueError(
                f"unknown provider {data.get('provider')!r}; known: {', '.join(sorted(providers))}"
            )
        defaults = provider.pagination.model_dump(exclude_none=True)
        data = dict(data)
        for key in ("polling", "historical"):
            endpoint = data.get(key)
            if isinstance(endpoint, dict) and isinstance(endpoint.get("pagination"), dict):
                data[key] = {**endpoint, "pagination": defaults | endpoint["pagination"]}
        return data

    @field_validator("params", mode="before")
    @classmethod
    def _bare_names(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"name": item} if isinstance(item, str) else item for item in value]
        return value

    @model_validator(mode="after")
    def _placeholders_declared(self) -> MetricTemplate:
        """Every ``{PLACEHOLDER}`` of an endpoint is a declared parameter (or a window
        bound), so no value reaches a request without a pattern checking it."""
        names = self.param_names
        if len(set(names)) != len(names):
            raise ValueError(f"parameters declared twice: {names}")
        for endpoint in (self.polling, self.historical):
            if endpoint is None:
                continue
            strings = [endpoint.path, *endpoint.query.values(), *_strings(endpoint.body)]
            used = {
                field
                for text in strings
                for _, field, _, _ in string.Formatter().parse(text)
                if field is not None
            }
            undeclared = sorted(used - set(names) - WINDOW_PARAMS)
            if undeclared:
                raise ValueError(f"{endpoint.path} uses undeclared parameter(s) {undeclared}")
        if self.hints.snapshot and (self.is_time_series or self.historical is not None):
            raise ValueError(
                "a snapshot template is replaced on every poll: is_time_series false, and no"
                " historical endpoint"
            )
        return self

    @property
    def param_names(self) -> list[str]:
        return [param.name for param in self.params]

    def param_refusals(self, params: dict[str, str]) -> list[str]:
        """Why each given value is refused by its parameter's pattern (declared parameters,
        and the window bounds metricloom adds for a backfill); missing or undeclared names
        are the caller's to judge."""
        patterns = {param.name: param for param in self.params}
        problems = []
        for name, value in sorted(params.items()):
            param = patterns.get(name)
            if param is None and name in WINDOW_PARAMS:
                param = TemplateParam.model_construct(name=name, pattern=WINDOW_PATTERN)
            refusal = param.refusal(value) if param is not None else None
            if refusal is not None:
                problems.append(refusal)
        return problems

    def dimension_names(self) -> list[str]:
        """The dimensions its points carry by name (a chart may draw them as series):
        its dimension paths', its labelled series' but the first (that one is the point's
        value, drawn as ``value``) and its chart dimensions. Labels read from the answer
        (``series_label``) are known only from the data; whether a name holds numbers is
        known only from the points (the command stage checks before a chart draws it)."""
        hints = self.hints
        names = [*hints.dimension_paths, *list(hints.series)[1:], *self.chart_dimensions]
        return list(dict.fromkeys(names))

    def for_history(self) -> MetricTemplate:
        """This template as seen by its historical endpoint: that endpoint, and the
        historical extraction hints when its answer has another shape."""
        assert self.historical is not None
        return self.model_copy(
            update={"polling": self.historical, "hints": self.historical_hints or self.hints}
        )


def _strings(value: Any) -> list[str]:
    """Every string in a JSON value (an endpoint's body), keys aside."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [text for item in value for text in _strings(item)]
    if isinstance(value, dict):
        return [text for item in value.values() for text in _strings(item)]
    return []


class Metric(BaseModel):
    """One organisation's instance of a template, with its parameters and poll state."""

    id: UUID
    organization_id: str
    template_id: str
    params: dict[str, str]
    poll_frequency: PollFrequency
    next_poll_at: datetime | None
    connection_id: UUID | None = None
    last_fetched_at: datetime | None = None
    last_error: str | None = None
    failure_count: int = 0
    status: Literal["active", "paused", "failed"] = "active"
    created_at: datetime | None = None


class Connection(BaseModel):
    """How an organisation reaches a provider: a direct token, the Nango proxy, or nothing
    (public data). Read by the fetch stage only; ``token`` never leaves it."""

    model_config = ConfigDict(frozen=True)

    id: UUID
    organization_id: str
    provider: str = Field(pattern=PROVIDER_NAME)
    auth: Literal["none", "token", "nango"]
    token: SecretStr | None = None
    nango_connection_id: str | None = None
    nango_provider_config_key: str | None = None

    @field_validator("provider")
    @classmethod
    def _declared(cls, value: str, info: ValidationInfo) -> str:
        """With a provider registry in the validation context (a new connection): one of
        it. A stored row is read without one, so a provider file removed later shows as an
        error on the metrics that use it, not as an unreadable row."""
        providers = (info.context or {}).get("providers")
        if providers is not None and value not in providers:
            raise ValueError(f"unknown provider {value!r}; known: {', '.join(sorted(providers))}")
        return value

    @model_validator(mode="after")
    def _token_where_taken(self, info: ValidationInfo) -> Connection:
        """With a provider registry in the context (a new connection): a token for a
        provider whose ``auth`` is ``none`` is refused when stored, not at its first poll."""
        providers = (info.context or {}).get("providers")
        declared = providers.get(self.provider) if providers is not None else None
        if self.auth == "token" and declared is not None and declared.auth.style == "none":
            raise ValueError(
                f"provider {self.provider!r} takes no credentials (its auth is none):"
                " store the connection without a token"
            )
        return self

    def __repr__(self) -> str:  # never show the token, even by accident
        return f"Connection({self.id}, {self.provider}, {self.auth})"


class MetricTransformer(BaseModel):
    """Code shared by every metric of a template: ``transform(api_response, endpoint_config)``.

    ``historical_code`` is set when the historical endpoint answers in another shape.
    ``language``: ``python``, or ``typescript`` with ``compiled_code`` (and
    ``historical_compiled_code``), the JavaScript tsc emitted: what the sandbox runs."""

    template_id: str
    polling_endpoint: Endpoint
    historical_endpoint: Endpoint | None = None
    code: str
    historical_code: str | None = None
    version: int = 1
    status: Literal["active", "regenerating", "failed"] = "active"
    generator: str
    input_example: Any = None
    output_example: Any = None
    failure_count: int = 0
    historical_pending: bool = False
    updated_at: datetime | None = None
    language: TransformerLanguage = "python"
    compiled_code: str | None = None
    historical_compiled_code: str | None = None

    def runnable(self, historical: bool = False) -> tuple[str, Literal["python", "javascript"]]:
        """The code the sandbox runs (the history's own when it has one), and its language."""
        if historical and self.historical_code:
            if self.language == "typescript":
                return self.historical_compiled_code or "", "javascript"
            return self.historical_code, "python"
        if self.language == "typescript":
            return self.compiled_code or "", "javascript"
        return self.code, "python"


class DashboardMetric(BaseModel):
    """A metric placed on one dashboard, with that chart's own preferences."""

    id: UUID
    organization_id: str
    dashboard_id: str
    metric_id: UUID
    title: str
    chart_type: ChartType
    date_range_days: DateRange
    aggregation: Aggregation = "last"


class ChartSettings(BaseModel):
    """What a chart draws, as its chart transformer row stores it: the type, the range, the
    aggregation per bucket and, when asked for, the buckets (None: chosen by the range).
    A change request in plain words becomes new settings before any code is written, so
    the stored columns, the preferences the code sees and the config it draws agree."""

    model_config = ConfigDict(frozen=True)

    chart_type: ChartType
    date_range_days: DateRange
    aggregation: Aggregation
    granularity: Granularity | None = None
    stacked: bool = False
    series: tuple[Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")], ...] | None = Field(
        None, max_length=12
    )
    """The dimensions drawn as series beside the value (None: the template's
    ``chart_dimensions``)."""

    @model_validator(mode="after")
    def _hourly_within_reach(self) -> ChartSettings:
        days = self.date_range_days
        if self.granularity == "hourly" and (days is None or days > MAX_HOURLY_DAYS):
            raise ValueError(
                f"hourly buckets draw at most {MAX_HOURLY_DAYS} days, not"
                f" {'all time' if days is None else days}: ask for daily or weekly, or a"
                " shorter range"
            )
        return self


class ChartTransformer(BaseModel):
    """Per-dashboard-metric code: ``transform(data_points, preferences) -> ChartConfig``."""

    dashboard_metric_id: UUID
    organization_id: str
    code: str
    chart_type: ChartType
    date_range_days: int | None
    aggregation: str
    preferences: dict[str, Any] = Field(default_factory=dict)
    user_prompt: str | None = None
    version: int = 1
    generator: str
    request_id: UUID | None = None
    language: TransformerLanguage = "python"
    compiled_code: str | None = None
    """TypeScript's compiled JavaScript (what the chart stage runs); None for Python."""

    def runnable(self) -> tuple[str, Literal["python", "javascript"]]:
        """The code the chart stage runs, and its language: TypeScript runs as the
        JavaScript it was compiled to when it was validated, never compiled again."""
        if self.language == "typescript":
            return self.compiled_code or "", "javascript"
        return self.code, "python"
