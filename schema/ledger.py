"""The delivery ledgers: what a redelivered message must not do twice.

Kafka delivers at least once: after a crash, the events of a batch that was not yet
acknowledged come again. Every stage is idempotent on its own (upserts, ids derived from
the command), and two effects that are not naturally idempotent are remembered here:

* **polls** — a poll (``PollDue.poll_id``) fetches from the provider once. The payload is
  kept until its points are written, so a tick delivered again re-emits it instead of
  asking the provider again. The only refetch is of a request that was in flight when
  its worker died (state ``fetching``), which no ledger can tell apart from one never sent.
* **commands** — a command's answer and follow-up records are stored with it, and sent
  again only if their delivery was never confirmed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from psycopg.types.json import Json, Jsonb

from schema.db import Conn

PollState = Literal["new", "refetch", "fetched", "deferred", "done"]


@dataclass(frozen=True)
class PollClaim:
    """What the ledger knows of a poll when its tick arrives.

    ``new``: fetch it. ``refetch``: an earlier attempt died with its request in flight;
    fetch again. ``fetched``: re-emit ``payload``. ``deferred``: the provider asked to
    come back later and that time has not come (the scheduler will send the tick).
    ``done``: its points are stored; nothing to do. (A failed poll is forgotten.)"""

    state: PollState
    attempts: int = 1
    fetched_at: datetime | None = None
    endpoint: str | None = None
    payload: Any = None


CLAIM_POLL = """
INSERT INTO polls (id, due_at, metric_id, reason, state)
VALUES (%(id)s, %(due_at)s, %(metric_id)s, %(reason)s, 'fetching')
ON CONFLICT (id, due_at) DO UPDATE
SET attempts = polls.attempts + 1,
    updated_at = now(),
    -- a deferred poll whose time has come is fetched again by this tick
    state = CASE WHEN polls.state = 'deferred' AND polls.retry_at IS NULL THEN 'fetching'
                 ELSE polls.state END
RETURNING (xmax = 0) AS inserted, state, attempts, fetched_at, endpoint, payload, retry_at
"""
"""Records a tick's arrival. The row's previous state decides what the tick does; a row
that was ``deferred`` and released by the scheduler (``retry_at`` cleared) goes back to
``fetching``."""


async def claim_poll(
    conn: Conn, poll_id: UUID, due_at: datetime, metric_id: UUID, reason: str
) -> PollClaim:
    cur = await conn.execute(
        CLAIM_POLL, {"id": poll_id, "due_at": due_at, "metric_id": metric_id, "reason": reason}
    )
    row = await cur.fetchone()
    assert row is not None
    attempts = int(str(row["attempts"]))
    if row["inserted"]:
        return PollClaim("new")
    state = str(row["state"])
    if state == "fetching":  # released deferral, or an attempt that died mid-request
        return PollClaim("refetch", attempts)
    if state == "fetched":
        return _fetched(row, attempts)
    if state == "deferred":
        return PollClaim("deferred", attempts)
    return PollClaim("done", attempts)


async def record_fetched(
    conn: Conn,
    poll_id: UUID,
    due_at: datetime,
    fetched_at: datetime,
    endpoint: str,
    payload: Any,
) -> PollClaim | None:
    """The provider answered: keep the payload until its points are written. None when
    this answer is the poll's; when another attempt of the same poll recorded its answer
    first (a worker that kept fetching after its partition moved on), that attempt's
    ``fetched`` claim with its payload, or ``done`` once its points are stored: the caller
    sends that, so both attempts emit the same payload and one set of points."""
    cur = await conn.execute(
        "UPDATE polls SET state = 'fetched', fetched_at = %s, endpoint = %s, payload = %s,"
        " retry_at = NULL, error = NULL, updated_at = now()"
        " WHERE id = %s AND due_at = %s AND state IN ('fetching', 'deferred')"
        " RETURNING id",
        (fetched_at, endpoint, Json(payload), poll_id, due_at),
    )
    if await cur.fetchone() is not None:
        return None
    cur = await conn.execute(
        "SELECT state, attempts, fetched_at, endpoint, payload FROM polls"
        " WHERE id = %s AND due_at = %s",
        (poll_id, due_at),
    )
    row = await cur.fetchone()
    if row is None:  # forgotten meanwhile (the other attempt failed for good): ours stands
        return None
    attempts = int(str(row["attempts"]))
    return _fetched(row, attempts) if row["state"] == "fetched" else PollClaim("done", attempts)


def _fetched(row: Any, attempts: int) -> PollClaim:
    """A ``fetched`` poll's claim: the answer recorded, to be sent again as it was."""
    return PollClaim(
        "fetched",
        attempts,
        fetched_at=row["fetched_at"],
        endpoint=str(row["endpoint"]),
        payload=row["payload"],
    )


async def forget_poll(conn: Conn, poll_id: UUID, due_at: datetime) -> None:
    """A poll that failed for good, or was held back before its request, is forgotten: the
    same tick delivered again (a replay of its dead letter once the cause is fixed) is a
    new attempt."""
    await conn.execute("DELETE FROM polls WHERE id = %s AND due_at = %s", (poll_id, due_at))


async def record_deferred(
    conn: Conn,
    poll_id: UUID,
    due_at: datetime,
    retry_at: datetime,
    tick: dict[str, Any],
    error: str,
) -> None:
    """The provider asked to come back at ``retry_at``: the scheduler sends the same tick
    (the same poll) again then."""
    await conn.execute(
        "UPDATE polls SET state = 'deferred', retry_at = %s, tick = %s, error = %s,"
        " updated_at = now() WHERE id = %s AND due_at = %s",
        (retry_at, Jsonb(tick), error[:4000], poll_id, due_at),
    )


async def record_written(conn: Conn, poll_ids: list[UUID]) -> None:
    """Points of these polls are committed: their payloads are no longer needed."""
    if poll_ids:
        await conn.execute(
            "UPDATE polls SET state = 'done', payload = NULL, updated_at = now()"
            " WHERE id = ANY(%s) AND state <> 'done'",
            (poll_ids,),
        )


RELEASE_DEFERRED = """
UPDATE polls SET retry_at = NULL, updated_at = now()
WHERE (id, due_at) IN (
    SELECT id, due_at FROM polls
    WHERE state = 'deferred' AND retry_at <= %(now)s
    ORDER BY retry_at
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
RETURNING tick
"""
"""The deferred polls whose time has come, released once each (``retry_at`` cleared):
their ticks go to ``poll-due`` again, with the same poll id."""


async def release_deferred(conn: Conn, now: datetime, limit: int) -> list[dict[str, Any]]:
    cur = await conn.execute(RELEASE_DEFERRED, {"now": now, "limit": limit})
    return [dict(row["tick"]) for row in await cur.fetchall()]  # type: ignore[call-overload]


# --- commands ----------------------------------------------------------------------------


@dataclass(frozen=True)
class LoggedCommand:
    status: str
    source: str
    sends: list[dict[str, str | None]]
    delivered: bool


async def logged_command(conn: Conn, command_id: UUID) -> LoggedCommand | None:
    """The stored outcome of a command handled before (locked for this transaction)."""
    cur = await conn.execute(
        "SELECT status, source, sends, delivered_at FROM command_log"
        " WHERE command_id = %s FOR UPDATE",
        (command_id,),
    )
    row = await cur.fetchone()
    if row is None:
        return None
    return LoggedCommand(
        str(row["status"]),
        str(row["source"]),
        list(row["sends"]),  # type: ignore[call-overload]
        row["delivered_at"] is not None,
    )


async def log_command(
    conn: Conn,
    command_id: UUID,
    organization_id: str,
    command_type: str | None,
    status: str,
    source: str,
    sends: list[dict[str, str | None]],
) -> None:
    await conn.execute(
        "INSERT INTO command_log (command_id, organization_id, type, status, source, sends)"
        " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (command_id) DO NOTHING",
        (command_id, organization_id, command_type, status, source, Jsonb(sends)),
    )


async def mark_delivered(conn: Conn, command_ids: list[UUID]) -> None:
    if command_ids:
        await conn.execute(
            "UPDATE command_log SET delivered_at = now()"
            " WHERE command_id = ANY(%s) AND delivered_at IS NULL",
            (command_ids,),
        )
