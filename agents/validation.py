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

from agents.hints import as_number, hinted_values, unresolved
from agents.services import Services
from agents.transforming import TransformError, points_from
from sandbox.protocol import Language
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


def hint_problems(template: MetricTemplate, sample: Any) -> str | None:
    """Why the template's hints do not fit the sample, in one line (None if they do): a
    path that finds nothing there (a typo in ``value_path`` or ``rows_path``, a field the
    API does not send) would make every transformer store nothing, forever."""
    problems = unresolved(template.hints, sample)
    if not problems:
        return None
    return (
        f"template {template.id!r}: its hints do not fit the sample ({'; '.join(problems)});"
        " the template's hints need fixing, not the code"
    )


def expected_values(template: MetricTemplate, sample: Any) -> tuple[int, float | None]:
    """How many values the hints find in the sample, and the last one as a number (None
    when none of them is one)."""
    values = hinted_values(template.hints, sample)
    numbers = [n for n in (as_number(template.hints, v) for v in values) if n is not None]
    return len(values), numbers[-1] if numbers else None


def _holds(point: DataPoint, value: float) -> bool:
    """Whether a point carries ``value``: as its value, or as a labelled series (a numeric
    dimension) when the hints name several."""
    numbers = [point.value] + [
        v
        for v in point.dimensions.values()
        if isinstance(v, int | float) and not isinstance(v, bool)
    ]
    return any(math.isclose(n, value, rel_tol=1e-9) for n in numbers)


async def compile_typescript(services: Services, code: str, signature: str) -> str:
    """The JavaScript ``tsc`` emits for ``code`` (strict mode, checked against the design's
    interfaces and ``signature``: ``MetricTransform`` or ``ChartTransform``), compiled in
    the sandbox. A type error is an InvalidCodeError naming each diagnostic's line."""
    [result] = await services.sandbox.run(code, signature, [()], language="typescript")
    if result.error is not None:
        raise InvalidCodeError(f"the TypeScript compiler failed: {result.error.message}")
    value = result.value if isinstance(result.value, dict) else {}
    diagnostics = [str(d) for d in value.get("diagnostics") or []]
    if diagnostics:
        shown = "; ".join(diagnostics[:10])
        raise InvalidCodeError(f"TypeScript type check failed ({len(diagnostics)}): {shown}")
    javascript = value.get("javascript")
    if not isinstance(javascript, str) or not javascript:
        raise InvalidCodeError("the TypeScript compiler emitted nothing")
    return javascript


async def runnable(
    services: Services, code: str, language: Language, signature: str
) -> tuple[str, Language]:
    """What the sandbox runs for ``code``: Python after the static check, or TypeScript's
    compiled JavaScript."""
    if language == "typescript":
        return await compile_typescript(services, code, signature), "javascript"
    if language == "python":
        static_check(code)
    return code, language


async def validate_metric_code(
    services: Services,
    template: MetricTemplate,
    code: str,
    sample: Any,
    config: dict[str, Any],
    language: Language,
) -> list[DataPoint]:
    """:func:`validate_metric_proposal`'s points."""
    points, _ = await validate_metric_proposal(services, template, code, sample, config, language)
    return points


async def validate_metric_proposal(
    services: Services,
    template: MetricTemplate,
    code: str,
    sample: Any,
    config: dict[str, Any],
    language: Language,
) -> tuple[list[DataPoint], str | None]:
    """Prove a MetricTransformer on a real sample; InvalidCodeError says what is wrong.

    Nothing passes silence: the hints must fit the sample (every hinted path finds
    something), a sample that holds any value must give at least one point, and the last
    value the hints find must be one of the points' values. TypeScript is type-checked
    and compiled first (:func:`compile_typescript`). Returns the points, and the compiled
    JavaScript for TypeScript (None for Python)."""
    if language == "python":
        static_check(code)  # before the hints: what the code says first
    unfit = hint_problems(template, sample)
    if unfit is not None:
        raise InvalidCodeError(unfit)
    run, run_language = await runnable(services, code, language, "MetricTransform")
    [result] = await services.sandbox.run(run, "transform", [(sample, config)], None, run_language)
    try:
        points = points_from(result)
    except TransformError as exc:
        raise InvalidCodeError(str(exc)) from exc
    count, last = expected_values(template, sample)
    paths = template.hints.values_described()
    if count and not points:
        raise InvalidCodeError(
            f"returned no points, but the sample holds {count} value(s) at {paths}"
        )
    if last is not None and not any(_holds(p, last) for p in points):
        raise InvalidCodeError(
            f"the last value at {paths} is {last}, but no point has it"
            f" (values: {[p.value for p in points[:5]]})"
        )
    return points, (run if language == "typescript" else None)


async def validate_chart_code(
    services: Services,
    code: str,
    series: list[dict[str, Any]],
    preferences: dict[str, Any],
    language: Language,
) -> tuple[ChartConfig, str | None]:
    """Prove a ChartTransformer on the metric's real series (TypeScript type-checked
    against ``ChartTransform`` and compiled first). Returns the config, and the compiled
    JavaScript for TypeScript (None for Python)."""
    run, run_language = await runnable(services, code, language, "ChartTransform")
    [result] = await services.sandbox.run(
        run, "transform", [(series, preferences)], None, run_language
    )
    if result.error is not None:
        raise InvalidCodeError(f"{result.error.kind}: {result.error.message}")
    try:
        config = ChartConfig.model_validate(result.value)
    except ValueError as exc:
        raise InvalidCodeError(f"not a valid ChartConfig: {exc}") from exc
    wanted = preferences.get("chart_type")
    if wanted is not None and config.chart_type != wanted:  # the stored settings must hold
        raise InvalidCodeError(
            f"draws a {config.chart_type} chart; preferences.chart_type asks for {wanted}"
        )
    drawable, asked = drawable_series(series, preferences)
    drawn = set(config.data_keys)
    missing = sorted((drawable & asked) - drawn)
    unasked = sorted((drawable - asked) & drawn)
    if missing or unasked:
        raise InvalidCodeError(
            f"draws series {sorted(set(config.data_keys) - {'value'})};"
            f" preferences.series_dimensions asks for {sorted(asked)}"
        )
    return config, (run if language == "typescript" else None)


def drawable_series(
    series: list[dict[str, Any]], preferences: dict[str, Any]
) -> tuple[set[str], set[str]]:
    """The dimensions a chart could draw as series (a number, not a boolean, in every
    point of the sample: what a change request may name too) and
    those its preferences ask for: what is asked and drawable must be drawn, what is
    drawable and not asked must not."""
    rows = [row.get("dimensions") or {} for row in series]
    names: set[str] = set().union(*(row.keys() for row in rows)) if rows else set()
    drawable = {n for n in names if all(is_number(row.get(n)) for row in rows)}
    return drawable, set(preferences.get("series_dimensions") or [])


def is_number(value: object) -> bool:
    """What a chart draws as a series: a JSON number (a boolean is not one)."""
    return isinstance(value, int | float) and not isinstance(value, bool)
