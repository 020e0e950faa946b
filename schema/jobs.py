"""Generation jobs: a transformer that is owed has an owner and a deadline.

A job is opened when a generation is asked for (a template's first metric, a heal, an
operator's ``transformer regenerate``), moved to a later time when the codegen stage
cannot finish now (the provider asked to come back, the sample fetch failed), and closed
when the transformer is saved or given up. The scheduler sends the request of every job
that is due again, each time counting an attempt; past the bound it gives up with an
alert. So no transformer stays "being generated" or "regenerating" for ever, whatever
happened to the request in flight.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from psycopg.types.json import Jsonb

from schema.db import Conn

IN_FLIGHT = timedelta(minutes=30)
"""How long a sent request may take before it is sent again."""


def metric_target(template_id: str, historical: bool = False) -> str:
    return f"{'historical' if historical else 'metric'}:{template_id}"


async def open_job(conn: Conn, target: str, request: dict[str, Any], now: datetime) -> bool:
    """A generation is owed (its request is being sent now); False if one is open already."""
    cur = await conn.execute(
        "INSERT INTO generation_jobs (target, request, due_at) VALUES (%s, %s, %s)"
        " ON CONFLICT (target) DO NOTHING",
        (target, Jsonb(request), now + IN_FLIGHT),
    )
    return cur.rowcount == 1


async def reopen(conn: Conn, target: str, request: dict[str, Any], now: datetime) -> None:
    """A generation asked for afresh (an operator's regenerate): its attempts start over."""
    await conn.execute(
        "INSERT INTO generation_jobs (target, request, due_at) VALUES (%s, %s, %s)"
        " ON CONFLICT (target) DO UPDATE SET request = EXCLUDED.request, attempts = 1,"
        " due_at = EXCLUDED.due_at, last_error = NULL, updated_at = now()",
        (target, Jsonb(request), now + IN_FLIGHT),
    )


async def postpone(
    conn: Conn, target: str, request: dict[str, Any], at: datetime, error: str
) -> None:
    """Not finished now: send the request again at ``at`` (the job is opened if needed)."""
    await conn.execute(
        "INSERT INTO generation_jobs (target, request, due_at, last_error) VALUES (%s, %s, %s, %s)"
        " ON CONFLICT (target) DO UPDATE SET due_at = EXCLUDED.due_at,"
        " last_error = EXCLUDED.last_error, updated_at = now()",
        (target, Jsonb(request), at, error[:4000]),
    )


async def attempts(conn: Conn, target: str) -> int:
    """Requests sent so far for an open job (0 when none is open)."""
    cur = await conn.execute("SELECT attempts FROM generation_jobs WHERE target = %s", (target,))
    row = await cur.fetchone()
    return int(str(row["attempts"])) if row else 0


async def close(conn: Conn, target: str) -> None:
    await conn.execute("DELETE FROM generation_jobs WHERE target = %s", (target,))


@dataclass(frozen=True)
class DueJob:
    target: str
    request: dict[str, Any]
    attempts: int
    last_error: str | None


CLAIM_DUE_JOBS = """
WITH due AS (
    SELECT target FROM generation_jobs WHERE due_at <= %(now)s
    ORDER BY due_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED
)
UPDATE generation_jobs AS j
SET attempts = j.attempts + 1, due_at = %(now)s + %(in_flight)s, updated_at = now()
FROM due WHERE j.target = due.target
RETURNING j.target, j.request, j.attempts, j.last_error
"""
"""The due jobs, each counted as one more attempt and given a new deadline."""


async def claim_due(conn: Conn, now: datetime, limit: int) -> list[DueJob]:
    cur = await conn.execute(CLAIM_DUE_JOBS, {"now": now, "limit": limit, "in_flight": IN_FLIGHT})
    return [
        DueJob(
            str(row["target"]),
            dict(row["request"]),  # type: ignore[call-overload]
            int(str(row["attempts"])),
            str(row["last_error"]) if row["last_error"] else None,
        )
        for row in await cur.fetchall()
    ]


def retry_delay(attempts: int) -> timedelta:
    """30 s, 2 min, 8 min, 32 min, then hourly."""
    return timedelta(seconds=min(30 * 4 ** max(0, attempts - 1), 3600))
