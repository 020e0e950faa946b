"""Metrics, transformers and dashboard metrics: the rows the stages read and update.

Every query that serves a tenant takes the organisation id and filters by it. So does
every stage loading a row named by an internal record that also names its organisation
(``refuse_foreign=True``): a row of another organisation is then a ``ForeignIdError``
(the record is refused and dead-lettered), not a row and not a silent None. Only records
that name no organisation (the scheduler's claims, a ``poll-due`` tick) go by id alone.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from psycopg.types.json import Jsonb

from schema.db import Conn
from schema.exceptions import ForeignIdError, NotFoundError
from schema.models import (
    ChartTransformer,
    Connection,
    DashboardMetric,
    Metric,
    MetricTransformer,
)
from schema.token_encryption import VERSION, Keyring, TokenKeyError

# --- metrics -----------------------------------------------------------------------------

INSERT_METRIC = """
INSERT INTO metrics (id, organization_id, template_id, params, poll_frequency, next_poll_at,
                     connection_id, created_at)
VALUES (%(id)s, %(organization_id)s, %(template_id)s, %(params)s, %(poll_frequency)s,
        %(next_poll_at)s, %(connection_id)s, coalesce(%(created_at)s, now()))
ON CONFLICT (id) DO NOTHING
"""


async def insert_metric(conn: Conn, metric: Metric) -> bool:
    """Insert a metric; False if that id exists already (a re-delivered command)."""
    cur = await conn.execute(
        INSERT_METRIC,
        {
            "id": metric.id,
            "organization_id": metric.organization_id,
            "template_id": metric.template_id,
            "params": Jsonb(metric.params),
            "poll_frequency": metric.poll_frequency.value,
            "next_poll_at": metric.next_poll_at,
            "connection_id": metric.connection_id,
            "created_at": metric.created_at,
        },
    )
    return cur.rowcount == 1


METRIC_COLUMNS = """id, organization_id, template_id, params, poll_frequency, next_poll_at,
    connection_id, last_fetched_at, last_error, failure_count, status, created_at"""


def foreign_id(kind: str, row_id: UUID, owner: str, named: str) -> ForeignIdError:
    """The one-line refusal of a record naming ``named`` with ``owner``'s row."""
    return ForeignIdError(
        f"{kind} {row_id} belongs to organisation {owner!r}, not to {named!r} as the record says"
    )


async def _row_by_id(
    conn: Conn,
    table: str,
    query: str,
    row_id: UUID,
    organization_id: str | None,
    owner: str = "organization_id",
    refuse_foreign: bool = False,
) -> dict[str, object] | None:
    """The row ``query`` (ending in ``WHERE … = %(id)s``) finds for ``row_id``; with an
    ``organization_id``, only if that organisation owns it: the one place lookups add their
    filter. With ``refuse_foreign`` too (the id and the organisation come from one internal
    record), a row of ``table`` with that id of another organisation raises
    ForeignIdError; a row that does not exist at all is still None."""
    if organization_id is not None:
        query += f" AND {owner} = %(org)s"
    cur = await conn.execute(query, {"id": row_id, "org": organization_id})
    row = await cur.fetchone()
    if row is None and refuse_foreign and organization_id is not None:
        cur = await conn.execute(f"SELECT organization_id FROM {table} WHERE id = %s", (row_id,))
        other = await cur.fetchone()
        if other is not None:
            kind = table.removesuffix("s").replace("_", " ")
            raise foreign_id(kind, row_id, str(other["organization_id"]), organization_id)
    return row


async def get_metric(
    conn: Conn,
    metric_id: UUID,
    organization_id: str | None = None,
    *,
    refuse_foreign: bool = False,
) -> Metric | None:
    """A metric by id; with ``organization_id``, only if that organisation owns it (and
    with ``refuse_foreign``, ForeignIdError if another organisation does)."""
    row = await _row_by_id(
        conn,
        "metrics",
        f"SELECT {METRIC_COLUMNS} FROM metrics WHERE id = %(id)s",
        metric_id,
        organization_id,
        refuse_foreign=refuse_foreign,
    )
    return Metric.model_validate(row) if row else None


async def latest_dimensions(
    conn: Conn, metric_id: UUID, organization_id: str, limit: int = 50
) -> list[dict[str, Any]]:
    """The dimensions of a metric's latest points, newest first (only if the organisation
    owns the metric): what a chart could draw as series."""
    cur = await conn.execute(
        "SELECT p.dimensions FROM metric_data_points p JOIN metrics m ON m.id = p.metric_id"
        " WHERE p.metric_id = %s AND m.organization_id = %s ORDER BY p.ts DESC LIMIT %s",
        (metric_id, organization_id, limit),
    )
    rows = await cur.fetchall()
    return [row["dimensions"] if isinstance(row["dimensions"], dict) else {} for row in rows]


async def metric_owners(conn: Conn, metric_ids: Iterable[UUID]) -> dict[UUID, str]:
    """The organisation of each of these metrics that exists."""
    cur = await conn.execute(
        "SELECT id, organization_id FROM metrics WHERE id = ANY(%s)", (list(set(metric_ids)),)
    )
    return {UUID(str(row["id"])): str(row["organization_id"]) for row in await cur.fetchall()}


CLAIM_DUE = """
WITH due AS (
    SELECT id, next_poll_at, poll_frequency, failure_state
    FROM metrics
    WHERE status = 'active' AND poll_frequency <> 'manual' AND next_poll_at <= %(now)s
    ORDER BY next_poll_at
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
), step AS (
    SELECT id, next_poll_at, failure_state,
           CASE poll_frequency
               WHEN 'frequent' THEN interval '15 minutes'
               WHEN 'hourly' THEN interval '1 hour'
               WHEN 'daily' THEN interval '1 day'
               ELSE interval '7 days'
           END AS every
    FROM due
)
UPDATE metrics AS m
SET next_poll_at = step.next_poll_at + step.every * (
        floor(extract(epoch FROM (%(now)s - step.next_poll_at)) / extract(epoch FROM step.every))
        + 1)
FROM step
WHERE m.id = step.id
RETURNING m.id, step.next_poll_at AS due_at, step.failure_state = 'retrying' AS retrying
"""
"""Claims due metrics for this worker and moves each to its next period.

``FOR UPDATE SKIP LOCKED`` lets any number of workers run this at once: a row another
worker is claiming is skipped, not waited for, so each due metric is claimed once per
period. The next poll time is computed from the *due* time, not from now, so polls stay
on the period's grid however late this run is; periods missed entirely (a worker that was
down) are skipped, not replayed one by one."""


async def claim_due_metrics(conn: Conn, now: datetime, limit: int) -> list[tuple[UUID, datetime]]:
    """The due metrics to poll now. A metric whose transform is being retried (failure
    state ``retrying``) keeps its place on the grid but is not polled on schedule: its
    retries (0, 1 h, 6 h after the first failure) are its polls until it succeeds or its
    template's transformer is regenerated (which polls it again), so a frequent metric's
    scheduled polls neither count as failures nor spend the provider's quota meanwhile."""
    cur = await conn.execute(CLAIM_DUE, {"now": now, "limit": limit})
    return [
        (row["id"], row["due_at"])  # type: ignore[misc]
        for row in await cur.fetchall()
        if not row["retrying"]
    ]


async def record_fetch_success(conn: Conn, metric_id: UUID, fetched_at: datetime) -> None:
    await conn.execute(
        "UPDATE metrics SET last_fetched_at = %s WHERE id = %s",
        (fetched_at, metric_id),
    )


async def record_transform_outcome(
    conn: Conn,
    ok: list[UUID],
    failed: list[tuple[UUID, UUID | None, str]],
    gaps: tuple[float, ...],
    now: datetime,
) -> list[tuple[UUID, int]]:
    """Points came out for ``ok`` (their failure state clears); ``failed`` (metric, poll,
    error) failed again: each is scheduled for its next retry gap from ``now`` (the
    caller's clock, so the schedule can be tested at its real gaps), or, with its gaps
    used up, for none (it waits for a new transformer version, whose refresh polls it). A
    failure counts once per poll, however often its payload is delivered. Returns the
    metrics whose failure counted now, each with its failed attempts in a row."""
    if ok:
        await conn.execute(
            "UPDATE metrics SET failure_count = 0, failure_state = 'ok', next_retry_at = NULL,"
            " last_error = NULL, last_failed_poll = NULL WHERE id = ANY(%s)"
            " AND (failure_count > 0 OR last_error IS NOT NULL OR failure_state <> 'ok')",
            (ok,),
        )
    counted: list[tuple[UUID, int]] = []
    for metric_id, poll_id, error in failed:
        cur = await conn.execute(
            "UPDATE metrics SET last_error = %(error)s, last_error_at = %(now)s,"
            " failure_count = failure_count + 1, failure_state = 'retrying',"
            " last_failed_poll = %(poll)s"
            " WHERE id = %(id)s AND (%(poll)s::uuid IS NULL"
            "     OR last_failed_poll IS DISTINCT FROM %(poll)s::uuid)"
            " RETURNING failure_count",
            {"error": f"transform: {error}"[:4000], "id": metric_id, "poll": poll_id, "now": now},
        )
        row = await cur.fetchone()
        if row is None:  # this poll's failure was counted already
            continue
        failures = int(str(row["failure_count"]))
        counted.append((metric_id, failures))
        retry_at = now + timedelta(seconds=gaps[failures - 1]) if failures <= len(gaps) else None
        await conn.execute(
            "UPDATE metrics SET next_retry_at = %s WHERE id = %s", (retry_at, metric_id)
        )
    return counted


CLAIM_RETRIES = """
WITH due AS (
    SELECT id, next_retry_at FROM metrics
    WHERE failure_state = 'retrying' AND next_retry_at <= %(now)s AND status = 'active'
    ORDER BY next_retry_at
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
UPDATE metrics AS m SET next_retry_at = NULL
FROM due WHERE m.id = due.id
RETURNING m.id, due.next_retry_at AS due_at
"""
"""Claims the metrics whose retry gap has passed, once each (next_retry_at is cleared);
the retry's due time is the gap's end, so a claim repeated after a crash is the same poll."""


async def claim_retries(conn: Conn, now: datetime, limit: int) -> list[tuple[UUID, datetime]]:
    cur = await conn.execute(CLAIM_RETRIES, {"now": now, "limit": limit})
    return [(row["id"], row["due_at"]) for row in await cur.fetchall()]  # type: ignore[misc]


async def record_backfill(conn: Conn, progress: dict[str, Any]) -> None:
    """Keep the backfill's last progress on the metric (``metrics.backfill``) of the
    organisation the progress names."""
    await conn.execute(
        "UPDATE metrics SET backfill = %s WHERE id = %s AND organization_id = %s",
        (Jsonb(progress), progress["metric_id"], progress["organization_id"]),
    )


async def record_metric_error(conn: Conn, metric_id: UUID, stage: str, error: str) -> None:
    """Keep the metric's last error current (what a user sees on the metric). Only
    transform failures count towards regeneration; this counts nothing."""
    await conn.execute(
        "UPDATE metrics SET last_error = %s, last_error_at = now() WHERE id = %s",
        (f"{stage}: {error}"[:4000], metric_id),
    )


# --- integration connections -------------------------------------------------------------


async def insert_connection(conn: Conn, connection: Connection, keyring: Keyring | None) -> None:
    """Store a connection; its token only sealed for its row (:mod:`schema.token_encryption`),
    so a connection with a token needs the keyring."""
    sealed = None
    if connection.token is not None:
        if keyring is None:
            raise TokenKeyError(
                "METRICLOOM_TOKEN_KEYS is not set: tokens are stored only encrypted"
            )
        sealed = keyring.seal(
            connection.token.get_secret_value(), connection.organization_id, connection.id
        )
    await conn.execute(
        "INSERT INTO integration_connections (id, organization_id, provider, auth, token,"
        " nango_connection_id, nango_provider_config_key) VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (
            connection.id,
            connection.organization_id,
            connection.provider,
            connection.auth,
            sealed,
            connection.nango_connection_id,
            connection.nango_provider_config_key,
        ),
    )


async def replace_token(
    conn: Conn, connection_id: UUID, organization_id: str, token: str, keyring: Keyring | None
) -> Connection:
    """Give an organisation's token connection a new token, sealed with the current key; the
    next fetch uses it (the fetch path reads the connection each time). NotFoundError if
    the organisation has no such connection or it holds no token of its own (Nango keeps
    its credentials; ``auth: none`` has none)."""
    found = await get_connection(conn, connection_id, organization_id)
    if found is None:
        raise NotFoundError(f"organisation {organization_id!r} has no connection {connection_id}")
    if found.auth != "token":
        where = "in Nango, not here" if found.auth == "nango" else "nowhere: its auth is none"
        raise NotFoundError(
            f"connection {connection_id} has no token here: its credentials are {where}"
        )
    if keyring is None:
        raise TokenKeyError("METRICLOOM_TOKEN_KEYS is not set: tokens are stored only encrypted")
    await conn.execute(
        "UPDATE integration_connections SET token = %s WHERE id = %s AND organization_id = %s",
        (keyring.seal(token, organization_id, connection_id), connection_id, organization_id),
    )
    return found


async def get_connection(
    conn: Conn,
    connection_id: UUID,
    organization_id: str | None = None,
    keyring: Keyring | None = None,
) -> Connection | None:
    """A connection by id; with ``organization_id``, only if that organisation owns it.
    Its token is opened only when a ``keyring`` is given (the fetch path); without one the
    connection comes back without its token, enough to check what it is for."""
    row = await _row_by_id(
        conn,
        "integration_connections",
        "SELECT id, organization_id, provider, auth, token, nango_connection_id,"
        " nango_provider_config_key FROM integration_connections WHERE id = %(id)s",
        connection_id,
        organization_id,
    )
    if row is None:
        return None
    stored = row.pop("token")
    if stored is not None and keyring is not None:
        row["token"] = keyring.open(str(stored), str(row["organization_id"]), connection_id)
    elif stored is not None and keyring is None:
        row["token"] = None
    return Connection.model_validate(row)


async def reseal_tokens(conn: Conn, keyring: Keyring) -> dict[str, int]:
    """Seal every stored token with the keyring's current key (``metricloom tokens
    rotate``): tokens sealed with an older key of the ring are opened and sealed again, and
    tokens stored before encryption (plain text) are sealed. Rows are locked while
    re-sealed, so a concurrent rotate waits instead of interleaving."""
    cur = await conn.execute(
        "SELECT id, organization_id, token FROM integration_connections"
        " WHERE token IS NOT NULL ORDER BY id FOR UPDATE"
    )
    counts = {"resealed": 0, "encrypted": 0, "current": 0}
    for row in await cur.fetchall():
        stored, org = str(row["token"]), str(row["organization_id"])
        connection_id = UUID(str(row["id"]))
        if keyring.sealed_with_current(stored):
            counts["current"] += 1
            continue
        try:
            token = keyring.open(stored, org, connection_id)
            counts["resealed"] += 1
        except TokenKeyError:
            if stored.startswith(VERSION + ":"):
                raise
            token = stored  # stored before tokens were encrypted
            counts["encrypted"] += 1
        await conn.execute(
            "UPDATE integration_connections SET token = %s WHERE id = %s",
            (keyring.seal(token, org, connection_id), connection_id),
        )
    return counts


# --- rate budgets ----------------------------------------------------------------------

TAKE_BUDGET = """
UPDATE rate_budgets
SET remaining = remaining - 1, updated_at = now()
WHERE key = %(key)s AND (remaining > 0 OR reset_at <= %(now)s)
RETURNING remaining
"""
"""Take one request from a budget, atomically across workers. A budget whose window has
passed, or that is not known yet, lets requests through (the next answer's headers set the
numbers)."""

SPENT_UNTIL = """
SELECT reset_at FROM rate_budgets
WHERE key = %(key)s AND remaining <= 0 AND reset_at > %(now)s
"""
"""After a missed take, and in a statement of its own (it must see the takes other workers
committed meanwhile): is the budget really spent? The row may also be one another worker
inserted, full, after the take missed it; asking only for its ``reset_at`` once deferred a
poll to the top of the hour with the budget full."""


async def take_budget(conn: Conn, key: str, now: datetime) -> datetime | None:
    """Reserve one request; None if allowed, else the time the budget resets."""
    cur = await conn.execute(TAKE_BUDGET, {"key": key, "now": now})
    if await cur.fetchone() is not None:
        return None
    cur = await conn.execute(SPENT_UNTIL, {"key": key, "now": now})
    row = await cur.fetchone()
    return row["reset_at"] if row else None  # type: ignore[return-value]


async def record_budget(conn: Conn, key: str, remaining: int, reset_at: datetime) -> None:
    """What the provider said is left, and when it resets."""
    await conn.execute(
        "INSERT INTO rate_budgets (key, remaining, reset_at) VALUES (%s, %s, %s)"
        " ON CONFLICT (key) DO UPDATE SET remaining = EXCLUDED.remaining,"
        " reset_at = EXCLUDED.reset_at, updated_at = now()",
        (key, remaining, reset_at),
    )


# --- metric transformers -----------------------------------------------------------------

TRANSFORMER_COLUMNS = """template_id, polling_endpoint, historical_endpoint, code, historical_code,
    version, status, generator, input_example, output_example, failure_count,
    historical_pending, updated_at, language, compiled_code, historical_compiled_code"""


async def get_metric_transformer(conn: Conn, template_id: str) -> MetricTransformer | None:
    cur = await conn.execute(
        f"SELECT {TRANSFORMER_COLUMNS} FROM metric_transformers WHERE template_id = %s",
        (template_id,),
    )
    row = await cur.fetchone()
    return MetricTransformer.model_validate(row) if row else None


async def insert_metric_transformer(conn: Conn, transformer: MetricTransformer) -> bool:
    """Save a template's first transformer; False if another worker saved one first."""
    historical = transformer.historical_endpoint
    cur = await conn.execute(
        "INSERT INTO metric_transformers (template_id, polling_endpoint, historical_endpoint,"
        " code, historical_code, version, status, generator, input_example, output_example,"
        " historical_pending, language, compiled_code, historical_compiled_code)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (template_id) DO NOTHING",
        (
            transformer.template_id,
            Jsonb(transformer.polling_endpoint.model_dump()),
            Jsonb(historical.model_dump()) if historical else None,
            transformer.code,
            transformer.historical_code,
            transformer.version,
            transformer.status,
            transformer.generator,
            Jsonb(transformer.input_example),
            Jsonb(transformer.output_example),
            transformer.historical_pending,
            transformer.language,
            transformer.compiled_code,
            transformer.historical_compiled_code,
        ),
    )
    return cur.rowcount == 1


# --- dashboard metrics and chart transformers --------------------------------------------


async def set_chart_title(
    conn: Conn, dashboard_metric_id: UUID, organization_id: str, title: str
) -> None:
    """Give an organisation's chart a new title (a change request named one)."""
    await conn.execute(
        "UPDATE dashboard_metrics SET title = %s WHERE id = %s AND organization_id = %s",
        (title, dashboard_metric_id, organization_id),
    )


async def insert_dashboard_metric(conn: Conn, dm: DashboardMetric) -> bool:
    requested = {
        "chart_type": dm.chart_type,
        "date_range_days": dm.date_range_days,
        "aggregation": dm.aggregation,
    }
    cur = await conn.execute(
        "INSERT INTO dashboard_metrics (id, organization_id, dashboard_id, metric_id, title,"
        " preferences) VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO NOTHING",
        (dm.id, dm.organization_id, dm.dashboard_id, dm.metric_id, dm.title, Jsonb(requested)),
    )
    return cur.rowcount == 1


CHARTS_FOR_METRICS = """
SELECT d.id, d.organization_id, d.dashboard_id, d.metric_id, d.title,
       c.chart_type, c.date_range_days, c.aggregation, c.code, c.version, c.generator,
       c.preferences, c.user_prompt, c.language, c.compiled_code
FROM dashboard_metrics d
JOIN chart_transformers c ON c.dashboard_metric_id = d.id
WHERE (d.metric_id, d.organization_id) IN (SELECT * FROM unnest(%s::uuid[], %s::text[]))
ORDER BY d.id
"""


async def charts_for_metrics(
    conn: Conn, updated: list[tuple[UUID, str]]
) -> list[tuple[DashboardMetric, ChartTransformer]]:
    """Every dashboard metric showing one of these (metric, organisation) pairs, with its
    chart transformer; ForeignIdError if a metric belongs to another organisation than the
    one named with it."""
    owners = await metric_owners(conn, [metric_id for metric_id, _ in updated])
    for metric_id, org in updated:
        if owners.get(metric_id, org) != org:
            raise foreign_id("metric", metric_id, owners[metric_id], org)
    cur = await conn.execute(
        CHARTS_FOR_METRICS, ([m for m, _ in updated], [org for _, org in updated])
    )
    out = []
    for row in await cur.fetchall():
        dm = DashboardMetric.model_validate(row)
        ct = ChartTransformer.model_validate({**row, "dashboard_metric_id": row["id"]})
        out.append((dm, ct))
    return out


async def record_graph_config(
    conn: Conn, dashboard_metric_id: UUID, config: dict[str, Any]
) -> None:
    """Keep the last published chart on the dashboard metric, for readers without Kafka."""
    await conn.execute(
        "UPDATE dashboard_metrics SET graph_config = %s, graph_config_at = now() WHERE id = %s",
        (Jsonb(config), dashboard_metric_id),
    )


# --- generation and healing ----------------------------------------------------------


async def promote_metric_transformer(conn: Conn, transformer: MetricTransformer) -> int:
    """Make ``transformer`` the template's current code as the next version (the trigger
    keeps the previous one in history); failures reset, the transformer's and its metrics'
    (a metric held after its last retry is polled on schedule again; a heal also refreshes
    it at once). Returns the new version."""
    cur = await conn.execute(
        "UPDATE metric_transformers SET code = %s, historical_code = %s, generator = %s,"
        " input_example = %s, output_example = %s, version = version + 1, status = 'active',"
        " failure_count = 0, last_error = NULL, language = %s, compiled_code = %s,"
        " historical_compiled_code = %s WHERE template_id = %s RETURNING version",
        (
            transformer.code,
            transformer.historical_code,
            transformer.generator,
            Jsonb(transformer.input_example),
            Jsonb(transformer.output_example),
            transformer.language,
            transformer.compiled_code,
            transformer.historical_compiled_code,
            transformer.template_id,
        ),
    )
    row = await cur.fetchone()
    if row is None:
        raise NotFoundError(f"template {transformer.template_id!r} has no transformer")
    await conn.execute(  # the new code starts its metrics' retry schedule over
        "UPDATE metrics SET failure_count = 0, failure_state = 'ok', next_retry_at = NULL,"
        " last_failed_poll = NULL WHERE template_id = %s AND failure_state = 'retrying'",
        (transformer.template_id,),
    )
    return int(str(row["version"]))


async def set_transformer_status(
    conn: Conn, template_id: str, status: str, error: str | None = None
) -> None:
    await conn.execute(
        "UPDATE metric_transformers SET status = %s, last_error = coalesce(%s, last_error)"
        " WHERE template_id = %s",
        (status, error, template_id),
    )


async def count_transformer_failure(
    conn: Conn, template_id: str, version: int, error: str, attempts: int
) -> tuple[int, str]:
    """The transformer's ``failure_count`` (the design's ``failureCount``, the trigger of
    regeneration): its failed attempts in a row, the first failure and each failed retry,
    as far as the furthest of its metrics has gone. Many metrics failing in one round are
    one attempt, not many, so the retry schedule holds however many metrics share the
    template. Only ``version``'s failures count: code replaced while it ran (a heal, a
    rollback) does not count against its successor. Returns (failure_count, status);
    status ``stale`` when the version is no longer current."""
    cur = await conn.execute(
        "UPDATE metric_transformers SET failure_count = greatest(failure_count, %s),"
        " last_error = %s WHERE template_id = %s AND version = %s"
        " RETURNING failure_count, status",
        (attempts, error[:4000], template_id, version),
    )
    row = await cur.fetchone()
    return (int(str(row["failure_count"])), str(row["status"])) if row else (0, "stale")


async def clear_transformer_failures(conn: Conn, template_id: str, version: int) -> None:
    """A success of ``version`` ends its run of failures (an older version's does not)."""
    await conn.execute(
        "UPDATE metric_transformers SET failure_count = 0 WHERE template_id = %s"
        " AND version = %s AND failure_count > 0",
        (template_id, version),
    )


async def active_metrics(conn: Conn, template_id: str) -> list[Metric]:
    """Every active metric of a template, every organisation's (the template's transformer
    is theirs together)."""
    cur = await conn.execute(
        f"SELECT {METRIC_COLUMNS} FROM metrics WHERE template_id = %s AND status = 'active'"
        " ORDER BY id",
        (template_id,),
    )
    return [Metric.model_validate(row) for row in await cur.fetchall()]


async def unpolled_metrics_of_template(conn: Conn, template_id: str) -> list[Metric]:
    """Active metrics of a template never fetched: those waiting for its transformer."""
    cur = await conn.execute(
        f"SELECT {METRIC_COLUMNS} FROM metrics WHERE template_id = %s AND status = 'active'"
        " AND last_fetched_at IS NULL ORDER BY id",
        (template_id,),
    )
    return [Metric.model_validate(row) for row in await cur.fetchall()]


async def metrics_awaiting_backfill(conn: Conn, template_id: str) -> list[Metric]:
    """Active metrics of a template whose history was never stored."""
    cur = await conn.execute(
        f"SELECT {METRIC_COLUMNS} FROM metrics WHERE template_id = %s AND status = 'active'"
        " AND (backfill IS NULL OR backfill->>'state' <> 'written') ORDER BY id",
        (template_id,),
    )
    return [Metric.model_validate(row) for row in await cur.fetchall()]


async def set_historical_code(
    conn: Conn, template_id: str, code: str | None, compiled: str | None = None
) -> None:
    """The historical transformer a first generation left pending is written (with its
    JavaScript when it is TypeScript)."""
    await conn.execute(
        "UPDATE metric_transformers SET historical_code = %s, historical_compiled_code = %s,"
        " historical_pending = false WHERE template_id = %s",
        (code, compiled, template_id),
    )


async def get_metric_transformer_version(
    conn: Conn, template_id: str, version: int
) -> MetricTransformer | None:
    """A version of a template's transformer, current or from history."""
    current = await get_metric_transformer(conn, template_id)
    if current is None:
        return None
    if current.version == version:
        return current
    cur = await conn.execute(
        "SELECT code, historical_code, generator, input_example, output_example, language,"
        " compiled_code, historical_compiled_code"
        " FROM metric_transformer_versions WHERE template_id = %s AND version = %s",
        (template_id, version),
    )
    row = await cur.fetchone()
    if row is None:
        return None
    return current.model_copy(update={**row, "version": version})


async def get_chart(
    conn: Conn,
    dashboard_metric_id: UUID,
    organization_id: str | None = None,
    *,
    refuse_foreign: bool = False,
) -> tuple[DashboardMetric, ChartTransformer | None] | None:
    """A dashboard metric (of that organisation, when given; with ``refuse_foreign``,
    ForeignIdError if another organisation owns it) and its chart transformer."""
    row = await _row_by_id(
        conn,
        "dashboard_metrics",
        "SELECT d.id, d.organization_id, d.dashboard_id, d.metric_id, d.title,"
        " c.chart_type, c.date_range_days, c.aggregation, c.code, c.version, c.generator,"
        " c.preferences, c.user_prompt, c.request_id, c.language, c.compiled_code,"
        " d.preferences AS requested"
        " FROM dashboard_metrics d LEFT JOIN chart_transformers c"
        " ON c.dashboard_metric_id = d.id WHERE d.id = %(id)s",
        dashboard_metric_id,
        organization_id,
        owner="d.organization_id",
        refuse_foreign=refuse_foreign,
    )
    if row is None:
        return None
    requested = dict(row["requested"] or {})  # type: ignore[call-overload]
    chart = {k: v for k, v in row.items() if k != "requested"}
    if row["code"] is None:  # not drawn yet: the settings it was added with
        present = {k: v for k, v in chart.items() if v is not None}
        return DashboardMetric.model_validate({**requested, **present}), None
    dm = DashboardMetric.model_validate(chart)  # its transformer's (a null range: all time)
    return dm, ChartTransformer.model_validate({**row, "dashboard_metric_id": row["id"]})


async def save_chart_transformer(conn: Conn, ct: ChartTransformer) -> int:
    """Insert the first chart transformer, or make ``ct`` the next version (history kept)."""
    cur = await conn.execute(
        "INSERT INTO chart_transformers (dashboard_metric_id, organization_id, code, chart_type,"
        " date_range_days, aggregation, preferences, user_prompt, version, generator, request_id,"
        " language, compiled_code) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, 1, %s, %s, %s, %s)"
        " ON CONFLICT (dashboard_metric_id) DO UPDATE SET code = EXCLUDED.code,"
        " language = EXCLUDED.language, compiled_code = EXCLUDED.compiled_code,"
        " chart_type = EXCLUDED.chart_type, date_range_days = EXCLUDED.date_range_days,"
        " aggregation = EXCLUDED.aggregation, preferences = EXCLUDED.preferences,"
        " user_prompt = EXCLUDED.user_prompt, generator = EXCLUDED.generator,"
        " request_id = EXCLUDED.request_id, version = chart_transformers.version + 1"
        " RETURNING version",
        (
            ct.dashboard_metric_id,
            ct.organization_id,
            ct.code,
            ct.chart_type,
            ct.date_range_days,
            ct.aggregation,
            Jsonb(ct.preferences),
            ct.user_prompt,
            ct.generator,
            ct.request_id,
            ct.language,
            ct.compiled_code,
        ),
    )
    row = await cur.fetchone()
    return int(str(row["version"])) if row else 0


async def get_chart_transformer_version(
    conn: Conn, dashboard_metric_id: UUID, version: int, organization_id: str
) -> ChartTransformer | None:
    """A version of that organisation's chart transformer, current or from history."""
    cur = await conn.execute(
        "SELECT dashboard_metric_id, organization_id, code, chart_type, date_range_days,"
        " aggregation, preferences, user_prompt, version, generator, language, compiled_code"
        " FROM chart_transformers"
        " WHERE dashboard_metric_id = %(id)s AND version = %(v)s AND organization_id = %(org)s"
        " UNION ALL SELECT dashboard_metric_id, organization_id, code, chart_type,"
        " date_range_days, aggregation, preferences, user_prompt, version, generator, language,"
        " compiled_code FROM chart_transformer_versions WHERE dashboard_metric_id = %(id)s AND version = %(v)s"
        " AND organization_id = %(org)s",
        {"id": dashboard_metric_id, "v": version, "org": organization_id},
    )
    row = await cur.fetchone()
    return ChartTransformer.model_validate(row) if row else None
