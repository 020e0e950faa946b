"""Transform stage: raw payloads become points, by the template's MetricTransformer.

Payloads are grouped by template and organisation, and each group runs in ONE sandbox
container (start-up is paid once per group). A container never mixes organisations: the
code is the template's, but a channel inside one container (the pid counter, a process
shared by a batch's inputs under gVisor) must never reach another tenant; the sandbox
enforces it too (``tenants``). Every result is validated as a list of
``DataPoint`` before it goes anywhere; a failure is recorded on that metric and
dead-lettered, and the other payloads of the batch go on.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import structlog
from pydantic import TypeAdapter, ValidationError

from agents.hints import ColumnsError, hinted_values
from agents.pipeline import Incoming, Send, Stage, dead_letter
from agents.services import Services
from sandbox.protocol import SandboxResult
from schema import catalog, jobs, lifecycle
from schema.db import Conn
from schema.models import DataPoint, MetricTransformer
from streams import metrics
from streams.messages import CodegenRequest, PointsBatch, RawPayload
from streams.topics import TOPICS
from templates import get_template

log = structlog.get_logger(__name__)

POINTS = TypeAdapter(list[DataPoint])
MAX_POINTS_PER_PAYLOAD = 100_000


class TransformError(ValueError):
    """A transformer's output for one payload is unusable."""


def points_records(raw: RawPayload, version: int, points: list[DataPoint]) -> list[PointsBatch]:
    """The ``points`` records for one payload's points: one, or as many parts as it takes
    to keep each under the topic's record size. A snapshot (replaced whole on every poll)
    cannot be split: too large is a TransformError on its metric."""
    template = get_template(raw.template_id)
    limit = TOPICS["points"].max_bytes - 4096  # room for the envelope

    def batch(part: list[DataPoint], number: int, parts: int) -> PointsBatch:
        return PointsBatch(
            poll_id=raw.poll_id,
            part=number,
            parts=parts,
            metric_id=raw.metric_id,
            organization_id=raw.organization_id,
            template_id=raw.template_id,
            transformer_version=version,
            fetched_at=raw.fetched_at,
            replace=not raw.historical and not template.is_time_series,
            historical=raw.historical,
            chunk=raw.chunk,
            chunks=raw.chunks,
            points=part,
        )

    whole = batch(points, 1, 1)
    size = len(whole.to_bytes())
    if size <= limit:
        return [whole]
    if whole.replace:
        raise TransformError(
            f"the snapshot is {size} bytes, over the {limit}-byte record limit; it cannot be"
            " split (it replaces the series whole)"
        )
    parts = -(-size // limit) + 1
    while True:
        step = -(-len(points) // parts)
        records = [
            batch(points[i : i + step], n, -(-len(points) // step))
            for n, i in enumerate(range(0, len(points), step), start=1)
        ]
        if all(len(r.to_bytes()) <= limit for r in records):
            return records
        parts *= 2


def endpoint_config(
    template_id: str, endpoint: str, params: dict[str, str], fetched_at: datetime
) -> dict[str, Any]:
    """What a MetricTransformer is told about the call besides the body: no secrets."""
    return {
        "template_id": template_id,
        "endpoint": endpoint,
        "params": params,
        "fetched_at": fetched_at.isoformat(),
    }


def points_from(result: SandboxResult) -> list[DataPoint]:
    """Validate one sandbox result as points; TransformError says what is wrong."""
    if result.error is not None:
        raise TransformError(f"{result.error.kind}: {result.error.message}")
    if not isinstance(result.value, list):
        raise TransformError(f"transform returned {type(result.value).__name__}, not a list")
    if len(result.value) > MAX_POINTS_PER_PAYLOAD:
        raise TransformError(
            f"transform returned {len(result.value)} points (cap {MAX_POINTS_PER_PAYLOAD})"
        )
    try:
        return POINTS.validate_python(result.value)
    except ValidationError as exc:
        raise TransformError(f"output is not a list of DataPoint: {exc}") from exc


def silent_failure(raw: RawPayload) -> None:
    """Raise TransformError when a payload that holds data gave no points: the values its
    template's hints find (its historical hints, for history) are data a transformer that
    returns nothing would lose without a word. A payload that holds none (an empty list,
    only nulls) may give no points."""
    template = get_template(raw.template_id)
    if raw.historical and template.historical is not None:
        template = template.for_history()
    try:
        values = hinted_values(template.hints, raw.payload)
    except ColumnsError as exc:
        raise TransformError(f"no points, and {exc}") from exc
    if values:
        paths = template.hints.values_described()
        raise TransformError(
            f"the transformer returned no points, but the payload holds {len(values)}"
            f" value(s) at {paths} (first: {str(values[0])[:60]!r})"
        )


GroupKey = tuple[str, str, bool]


def transform_groups(
    batch: list[tuple[Incoming, RawPayload]],
) -> dict[GroupKey, list[tuple[Incoming, RawPayload]]]:
    """One sandbox batch per (template, organisation, historical): history may have its
    own code, and organisations never share a container."""
    groups: dict[GroupKey, list[tuple[Incoming, RawPayload]]] = defaultdict(list)
    for item in batch:
        raw = item[1]
        groups[(raw.template_id, raw.organization_id, raw.historical)].append(item)
    return groups


class TransformStage(Stage[RawPayload]):
    name = "transform"

    def decode(self, message: Incoming) -> RawPayload:
        return RawPayload.model_validate_json(message.body())

    async def handle(
        self, services: Services, batch: list[tuple[Incoming, RawPayload]]
    ) -> list[Send]:
        sends: list[Send] = []
        for (template_id, _, historical), items in transform_groups(batch).items():
            sends += await self._run_group(services, template_id, historical, items)
        return sends

    async def _run_group(
        self,
        services: Services,
        template_id: str,
        historical: bool,
        items: list[tuple[Incoming, RawPayload]],
    ) -> list[Send]:
        async with services.db.transaction() as conn:
            transformer = await catalog.get_metric_transformer(conn, template_id)
            params = {}
            kept = []
            for message, raw in items:
                metric = await catalog.get_metric(
                    conn, raw.metric_id, raw.organization_id, refuse_foreign=True
                )
                if metric is None and (
                    await lifecycle.removed(conn, "metric", raw.metric_id) == raw.organization_id
                ):
                    log.info("transform.skipped", metric_id=str(raw.metric_id), status="deleted")
                    metrics.SKIPPED.labels(stage=self.name, reason="deleted").inc()
                    continue
                kept.append((message, raw))
                params[raw.metric_id] = metric.params if metric else {}
        items = kept
        if not items:
            return []
        if transformer is None or transformer.status == "failed":
            state = "no transformer yet" if transformer is None else "a failed transformer"
            error = f"template {template_id!r} has {state}"
            return await self._fail_all(services, items, error)
        inputs = [
            (
                raw.payload,
                endpoint_config(
                    raw.template_id, raw.endpoint, params[raw.metric_id], raw.fetched_at
                ),
            )
            for _, raw in items
        ]
        code, language = transformer.runnable(historical)
        tenants = [raw.organization_id for _, raw in items]
        results = await services.sandbox.run(code, "transform", inputs, tenants, language)
        return await self._collect(services, transformer, items, results)

    async def _collect(
        self,
        services: Services,
        transformer: MetricTransformer,
        items: list[tuple[Incoming, RawPayload]],
        results: list[SandboxResult],
    ) -> list[Send]:
        sends: list[Send] = []
        failures: list[tuple[Incoming, RawPayload, str]] = []
        for (message, raw), result in zip(items, results, strict=True):
            try:
                points = points_from(result)
                if not points:
                    silent_failure(raw)
            except TransformError as exc:
                failures.append((message, raw, str(exc)))
                continue
            limit = get_template(raw.template_id).historical_data_limit_days
            if raw.historical and limit is not None:  # history only as far back as declared
                oldest = raw.fetched_at - timedelta(days=limit)
                points = [p for p in points if p.timestamp >= oldest]
            try:
                records = points_records(raw, transformer.version, points)
            except TransformError as exc:
                failures.append((message, raw, str(exc)))
                continue
            sends += [Send("points", str(raw.metric_id), record) for record in records]
        ok = [raw.metric_id for _, raw in items if all(f[1] is not raw for f in failures)]
        for message, raw, error in failures:
            log.warning("transform.failed", metric_id=str(raw.metric_id), error=error[:300])
            metrics.TRANSFORM_FAILURES.labels(template=raw.template_id).inc()
            sends.append(dead_letter(self.name, message, error, raw.metric_id, raw.organization_id))
        async with services.db.transaction() as conn:
            sends += await record_outcome(
                conn,
                transformer,
                ok,
                [(raw, error) for _, raw, error in failures],
                services.settings.healing.retry_gaps_s,
                datetime.now(UTC),
            )
        return sends

    async def _fail_all(
        self, services: Services, items: list[tuple[Incoming, RawPayload]], error: str
    ) -> list[Send]:
        sends = []
        async with services.db.transaction() as conn:
            for message, raw in items:
                await catalog.record_metric_error(conn, raw.metric_id, self.name, error)
                sends.append(
                    dead_letter(self.name, message, error, raw.metric_id, raw.organization_id)
                )
        return sends


async def record_outcome(
    conn: Conn,
    transformer: MetricTransformer,
    ok: list[UUID],
    failures: list[tuple[RawPayload, str]],
    gaps: tuple[float, ...],
    now: datetime,
) -> list[Send]:
    """The design's failure schedule, at ``now`` (a clock the caller owns): a transform
    failure is retried at once, then after each of ``gaps`` (0, 1 h, 6 h); while it
    retries its scheduled polls are held (``catalog.claim_due_metrics``). The
    transformer's own ``failure_count`` is the trigger: once it passes the gaps (the
    third failed retry), regeneration is asked for, once (the status moves to
    ``regenerating`` until the codegen stage decides). Fetch failures and deferrals never
    come here. Returns the codegen request, if one is owed."""
    counted = await catalog.record_transform_outcome(
        conn, ok, [(raw.metric_id, raw.poll_id, error) for raw, error in failures], gaps, now
    )
    if not failures:
        await catalog.clear_transformer_failures(conn, transformer.template_id, transformer.version)
        return []
    if not counted:  # a redelivered payload's failure was counted the first time
        return []
    metric_id, attempts = max(counted, key=lambda item: item[1])
    errors = [error for _, error in failures]
    count, status = await catalog.count_transformer_failure(
        conn, transformer.template_id, transformer.version, errors[-1], attempts
    )
    if count <= len(gaps) or status != "active":
        return []
    await catalog.set_transformer_status(conn, transformer.template_id, "regenerating")
    log.warning("transform.heal", template_id=transformer.template_id, failures=count)
    owners = {raw.metric_id: raw.organization_id for raw, _ in failures}
    request = CodegenRequest(
        kind="metric",
        reason="heal",
        template_id=transformer.template_id,
        metric_id=metric_id,
        organization_id=owners[metric_id],
        errors=errors[-3:],
        version=transformer.version,
    )
    await jobs.open_job(
        conn, jobs.metric_target(transformer.template_id), request.model_dump(mode="json"), now
    )
    return [Send("codegen-requests", transformer.template_id, request)]
