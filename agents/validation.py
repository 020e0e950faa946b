"""Validation of proposed transformer code, before anything is saved.

Static checks first (it parses, defines ``transform`` with two parameters, imports only
allowed modules), then a run in the sandbox on a real sample, then the pydantic models on
the output. A failure raises :class:`InvalidCodeError` with a message that is fed back to
the generator as is, so it says exactly what to fix.
"""

from __future__ import annotations

import ast
import math
from typing import Any

from agents.services import Services
from agents.transforming import TransformError, points_from
from schema.models import ChartConfig, DataPoint, MetricTemplate

ALLOWED_IMPORTS = frozenset(
    {
        "json",
        "math",
        "re",
        "datetime",
        "time",
        "statistics",
        "collections",
        "itertools",
        "functools",
        "decimal",
    }
)


class InvalidCodeError(ValueError):
    """A proposal failed validation; the message is fed back to the generator."""


def static_check(code: str) -> None:
    """The code parses, defines ``transform(a, b)`` and imports only allowed modules."""
    try:
        tree = ast.parse(code)
    except SyntaxError as exc:
        raise InvalidCodeError(f"syntax error: {exc.msg} (line {exc.lineno})") from exc
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        for name in names:
            if name.split(".")[0] not in ALLOWED_IMPORTS:
                raise InvalidCodeError(
                    f"import of {name!r} is not allowed; allowed: {', '.join(sorted(ALLOWED_IMPORTS))}"
                )
    functions = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "transform"]
    if not functions:
        raise InvalidCodeError("the code defines no top-level transform()")
    if len(functions[0].args.args) != 2:
        raise InvalidCodeError("transform must take exactly two parameters")


def lookup(payload: Any, path: str) -> Any:
    """Follow a dotted path (list indexes allowed) through a JSON payload."""
    value = payload
    for part in path.split("."):
        if (
            isinstance(value, list)
            and part.lstrip("-").isdigit()
            and -len(value) <= int(part) < len(value)
        ):
            value = value[int(part)]
        elif isinstance(value, dict):
            value = value.get(part)
        else:
            return None
    return value


def expected_value(template: MetricTemplate, sample: Any) -> float | None:
    """The value the template's hints point at in the sample (the last row's, for a
    payload of rows), or None when the sample holds none."""
    hints = template.hints
    if hints.rows_path is not None:
        rows = sample if hints.rows_path == "" else lookup(sample, hints.rows_path)
        if not isinstance(rows, list) or len(rows) <= hints.skip_rows:
            return None
        sample = rows[-1]
    raw = lookup(sample, hints.value_path)
    if isinstance(raw, bool) or raw is None:
        return None
    try:
        value = float(str(raw).replace(",", ""))
    except ValueError:
        return None
    return value if math.isfinite(value) else None


async def validate_metric_code(
    services: Services, template: MetricTemplate, code: str, sample: Any, config: dict[str, Any]
) -> list[DataPoint]:
    """Prove a MetricTransformer on a real sample; InvalidCodeError says what is wrong."""
    static_check(code)
    [result] = await services.sandbox.run(code, "transform", [(sample, config)])
    try:
        points = points_from(result)
    except TransformError as exc:
        raise InvalidCodeError(str(exc)) from exc
    expected = expected_value(template, sample)
    if expected is not None:
        if not points:
            raise InvalidCodeError("returned no points, but the sample holds a value")
        if not any(math.isclose(p.value, expected, rel_tol=1e-9) for p in points):
            raise InvalidCodeError(
                f"the value at {template.hints.value_path} is {expected},"
                f" but no point has it (values: {[p.value for p in points[:5]]})"
            )
    return points


async def validate_chart_code(
    services: Services, code: str, series: list[dict[str, Any]], preferences: dict[str, Any]
) -> ChartConfig:
    """Prove a ChartTransformer on the metric's real series."""
    static_check(code)
    [result] = await services.sandbox.run(code, "transform", [(series, preferences)])
    if result.error is not None:
        raise InvalidCodeError(f"{result.error.kind}: {result.error.message}")
    try:
        return ChartConfig.model_validate(result.value)
    except ValueError as exc:
        raise InvalidCodeError(f"not a valid ChartConfig: {exc}") from exc
