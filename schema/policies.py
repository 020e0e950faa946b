"""Data retention and compression: off by default, enabled by settings.

* ``METRICLOOM_RETENTION_DAYS``: points older than this are dropped, a chunk at a time.
  With a community-license TimescaleDB a retention policy does it; with the Apache build
  (no policies) the worker's leader calls ``drop_chunks`` hourly (:func:`enforce_retention`).
* ``METRICLOOM_COMPRESS_AFTER_DAYS``: chunks older than this are compressed, segmented by
  metric. Compression exists only in the community build; asking for it on the Apache
  build is an error that says so, not a silent no-op.
"""

from __future__ import annotations

from datetime import timedelta

from schema.db import Conn
from schema.exceptions import MetricloomError


class PolicyUnsupportedError(MetricloomError):
    """The database's TimescaleDB license does not offer the requested policy."""


async def license_of(conn: Conn) -> str:
    cur = await conn.execute("SELECT current_setting('timescaledb.license', true) AS license")
    row = await cur.fetchone()
    return str(row["license"]) if row else "unknown"


async def apply_policies(
    conn: Conn, retention_days: int | None, compress_after_days: int | None
) -> list[str]:
    """Install the policies the settings ask for; returns what was done, in words."""
    done: list[str] = []
    community = await license_of(conn) == "timescale"
    if compress_after_days is not None:
        if not community:
            raise PolicyUnsupportedError(
                "METRICLOOM_COMPRESS_AFTER_DAYS needs a community-license TimescaleDB"
                " (timescaledb.license = timescale); this database runs the Apache build"
            )
        await conn.execute(
            "ALTER TABLE metric_data_points SET (timescaledb.compress,"
            " timescaledb.compress_segmentby = 'metric_id', timescaledb.compress_orderby = 'ts DESC')"
        )
        await conn.execute(
            "SELECT add_compression_policy('metric_data_points', %s, if_not_exists => true)",
            (timedelta(days=compress_after_days),),
        )
        done.append(f"compression after {compress_after_days} days")
    if retention_days is not None:
        if community:
            await conn.execute(
                "SELECT add_retention_policy('metric_data_points', %s, if_not_exists => true)",
                (timedelta(days=retention_days),),
            )
            done.append(f"retention policy: {retention_days} days")
        else:
            done.append(f"retention: {retention_days} days, enforced hourly by the worker")
    return done


async def enforce_retention(conn: Conn, retention_days: int) -> int:
    """Drop the hypertable's chunks entirely older than the retention (Apache build),
    through ``drop_old_chunks`` (migration 0011): the application role owns no table."""
    cur = await conn.execute(
        "SELECT drop_old_chunks('metric_data_points', %s::interval) AS n",
        (timedelta(days=retention_days),),
    )
    row = await cur.fetchone()
    return int(str(row["n"])) if row else 0


LEDGER_DAYS = 8
"""How long the delivery ledgers remember a poll or a command: longer than the seven days
``poll-due`` and ``commands`` records are kept on Kafka, so anything that can still be
redelivered is still recognised."""


async def housekeeping(conn: Conn, retention_days: int | None) -> dict[str, int]:
    """The leader's hourly chores: the delivery ledgers' old rows, and (Apache build)
    the points past their retention. Returns what was removed."""
    cur = await conn.execute(
        "SELECT drop_old_chunks('polls', %s::interval) AS n",
        (timedelta(days=LEDGER_DAYS),),
    )
    row = await cur.fetchone()
    done = {"poll_chunks_dropped": int(str(row["n"])) if row else 0}
    cur = await conn.execute(
        "DELETE FROM command_log WHERE created_at < now() - %s::interval",
        (timedelta(days=LEDGER_DAYS),),
    )
    done["commands_forgotten"] = cur.rowcount
    if retention_days is not None and await license_of(conn) != "timescale":
        done["point_chunks_dropped"] = await enforce_retention(conn, retention_days)
    return done
