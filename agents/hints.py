"""What a template's extraction hints point at in a payload, read by the worker itself.

The transformer that turns a payload into points is code (generated offline from the
hints, or by a model) and runs in the sandbox; this module is the independent reading of
the same hints that checks it cannot pass silence: validation refuses code that returns
nothing where the sample holds values, and refuses hints whose paths find nothing
(:func:`unresolved`); the transform stage fails a payload that holds values but yields no
points (:func:`hinted_values`). It only walks parsed JSON: no code from the payload runs.
"""

from __future__ import annotations

import math
from typing import Any, Final

from schema.models import ROW_KEY, ExtractionHints


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()
"""A path that does not exist (as opposed to one that holds ``null``)."""


def resolve(payload: Any, path: str) -> Any:
    """Follow a dotted path (list indexes allowed, negative from the end); MISSING when a
    step does not exist. ``""`` is the payload itself."""
    if path == "":
        return payload
    value = payload
    for part in path.split("."):
        if isinstance(value, list):
            if not part.lstrip("-").isdigit() or not -len(value) <= int(part) < len(value):
                return MISSING
            value = value[int(part)]
        elif isinstance(value, dict):
            if part not in value:
                return MISSING
            value = value[part]
        else:
            return MISSING
    return value


def absent(payload: Any, path: str) -> bool:
    """Whether ``path`` finds nothing because a key is not there (a typo, a field the API
    does not send), as opposed to an index past the end of a list, which is data the
    answer does not hold this time (``items.0`` of an empty ``items``)."""
    value = payload
    for part in path.split(".") if path else []:
        if isinstance(value, list) and part.lstrip("-").isdigit():
            if not -len(value) <= int(part) < len(value):
                return False
            value = value[int(part)]
        elif isinstance(value, dict) and part in value:
            value = value[part]
        else:
            return True
    return False


def lookup(payload: Any, path: str) -> Any:
    """Like :func:`resolve`, with None for a path that does not exist."""
    value = resolve(payload, path)
    return None if value is MISSING else value


class ColumnsError(ValueError):
    """Parallel arrays of different lengths: which element belongs to which is unknown."""


def rows_of(hints: ExtractionHints, payload: Any) -> list[Any]:
    """The rows the hints read points from, as the offline transformer reads them (before
    ``select``): the payload itself when there is no ``rows_path``."""
    if hints.rows_path is None:
        return [payload]
    found = resolve(payload, hints.rows_path)
    rows: list[Any]
    if hints.rows_kind == "columns":
        if not isinstance(found, dict):
            return []
        columns = {name: items for name, items in found.items() if isinstance(items, list)}
        lengths = {name: len(items) for name, items in columns.items()}
        if len(set(lengths.values())) > 1:
            raise ColumnsError(f"the arrays at {hints.rows_path!r} differ in length: {lengths}")
        count = next(iter(lengths.values()), 0)
        rows = [{name: items[i] for name, items in columns.items()} for i in range(count)]
    elif hints.rows_kind == "mapping":
        if not isinstance(found, dict):
            return []
        rows = [
            {**entry, ROW_KEY: key} if isinstance(entry, dict) else {ROW_KEY: key, "@value": entry}
            for key, entry in found.items()
        ]
    else:
        rows = found if isinstance(found, list) else []
    return rows[hints.skip_rows :]


def selected(hints: ExtractionHints, rows: list[Any]) -> list[Any]:
    """The rows ``select`` keeps (all of them without one)."""
    if hints.select is None:
        return rows
    wanted = hints.select
    return [row for row in rows if _same(lookup(row, wanted.path), wanted.equals)]


def _same(found: Any, wanted: Any) -> bool:
    """Equal and of the same kind: ``1`` matches ``1.0``, but ``True`` matches neither and
    ``"1"`` matches only ``"1"``."""
    if isinstance(found, bool) or isinstance(wanted, bool):
        return found is wanted
    numbers = isinstance(found, int | float) and isinstance(wanted, int | float)
    return bool(found == wanted) and (numbers or type(found) is type(wanted))


def hinted_values(hints: ExtractionHints, payload: Any) -> list[Any]:
    """Every non-null value the value paths find in the selected rows, in order: the data
    a transformer must turn into at least one point. A snapshot's one value is its row
    count, found whatever the rows hold (an empty sheet is a snapshot of 0 rows)."""
    if hints.snapshot:
        return [len(selected(hints, rows_of(hints, payload)))]
    found = []
    for row in selected(hints, rows_of(hints, payload)):
        for path in hints.value_paths().values():
            value = lookup(row, path)
            if value is not None:
                found.append(value)
    return found


def as_number(hints: ExtractionHints, raw: Any) -> float | None:
    """A hinted value as the point's number (``value_map`` first, then numbers and numeric
    strings), or None when it is not one."""
    if isinstance(raw, str) and raw in hints.value_map:
        return hints.value_map[raw]
    if isinstance(raw, bool) or raw is None:
        return None
    try:
        value = float(str(raw).replace(",", "").strip())
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def unresolved(hints: ExtractionHints, payload: Any) -> list[str]:
    """Each hinted path that finds nothing in ``payload``, in one line each. A path inside
    rows must exist in at least one row (a null value counts as found: a missing key does
    not, :func:`absent`; an index past the end of a list is data not there this time,
    not a typo); with no rows at all, only ``rows_path`` itself can be checked."""
    problems = []
    if hints.rows_path is not None:
        found = resolve(payload, hints.rows_path)
        kind = list if hints.rows_kind == "list" else dict
        if found is MISSING or not isinstance(found, kind):
            what = "nothing" if found is MISSING else f"a {type(found).__name__}"
            return [
                f"rows_path {hints.rows_path!r} finds {what}, not the"
                f" {'list' if kind is list else 'object'} its rows_kind {hints.rows_kind!r} needs"
            ]
    if hints.utc_offset_path is not None and absent(payload, hints.utc_offset_path):
        problems.append(f"utc_offset_path {hints.utc_offset_path!r} finds nothing")
    try:
        rows = rows_of(hints, payload)
    except ColumnsError as exc:
        return [*problems, str(exc)]
    if not rows:
        return problems
    if hints.select is not None:
        if all(absent(row, hints.select.path) for row in rows):
            problems.append(f"select path {hints.select.path!r} finds nothing in any row")
        rows = selected(hints, rows)
        if not rows:
            return [
                *problems,
                f"no row has {hints.select.path} = {hints.select.equals!r}",
            ]
    paths = {f"value path {path!r}": path for path in hints.value_paths().values()}
    paths |= {f"dimension {n!r} path {p!r}": p for n, p in hints.dimension_paths.items()}
    if hints.series_label is not None:
        paths[f"series_label path {hints.series_label!r}"] = hints.series_label
    if hints.timestamp != "fetched_at":
        paths[f"timestamp path {hints.timestamp!r}"] = hints.timestamp
    where = " in any row" if hints.rows_path is not None else ""
    for label, path in paths.items():
        if all(absent(row, path) for row in rows):
            problems.append(f"{label} finds nothing{where}")
    return problems
