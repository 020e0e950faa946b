"""The connection pool and the one place psycopg's errors become metricloom's.

Stages hold one :class:`Database` per worker. Connection-level failures (server gone,
network cut, too many clients) surface as :class:`DatabaseUnavailableError`, which the
stage's error policy retries with a bound and then dead-letters; every other database
error is a bug or bad data and propagates as it is.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from schema.exceptions import DatabaseUnavailableError, InvalidDataError

Conn = psycopg.AsyncConnection[dict[str, object]]


class Database:
    """A lazily opened async connection pool with ``dict_row`` rows."""

    def __init__(self, url: str, max_size: int = 8, timeout_s: float = 10.0) -> None:
        self._pool: AsyncConnectionPool[Conn] = AsyncConnectionPool(
            url,
            min_size=1,
            max_size=max_size,
            timeout=timeout_s,
            open=False,
            kwargs={"row_factory": dict_row, "autocommit": False},
            check=AsyncConnectionPool.check_connection,
        )
        self._opened = False

    async def open(self) -> None:
        if not self._opened:
            await self._pool.open(wait=False)
            self._opened = True

    async def close(self) -> None:
        if self._opened:
            await self._pool.close()
            self._opened = False

    @asynccontextmanager
    async def autocommit(self) -> AsyncIterator[Conn]:
        """A connection outside any transaction (for statements that refuse one)."""
        await self.open()
        try:
            async with self._pool.connection() as conn:
                await conn.set_autocommit(True)
                try:
                    yield conn
                finally:
                    await conn.set_autocommit(False)
        except (psycopg.OperationalError, PoolTimeout) as exc:
            raise DatabaseUnavailableError(f"database unavailable: {exc}") from exc

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Conn]:
        """A connection inside one transaction: committed on success, rolled back on error."""
        await self.open()
        try:
            async with self._pool.connection() as conn, conn.transaction():
                yield conn
        except (psycopg.OperationalError, PoolTimeout) as exc:
            raise DatabaseUnavailableError(f"database unavailable: {exc}") from exc
        except psycopg.DataError as exc:
            raise InvalidDataError(f"the database refused a value: {exc}") from exc


@asynccontextmanager
async def savepoint(conn: Conn) -> AsyncIterator[None]:
    """A savepoint inside the caller's transaction: an error rolls back only what ran
    inside it; a value the database refuses is :class:`InvalidDataError`."""
    try:
        async with conn.transaction():
            yield
    except psycopg.DataError as exc:
        raise InvalidDataError(f"the database refused a value: {exc}") from exc


@asynccontextmanager
async def one_transaction(url: str, connect_timeout_s: int = 5) -> AsyncIterator[Conn]:
    """One connection, one transaction, no pool: for a short-lived process (a CLI read)
    that wants the server's own reason when it cannot connect (a pool only says it timed
    out, and logs every attempt)."""
    try:
        conn = await psycopg.AsyncConnection.connect(
            url, connect_timeout=connect_timeout_s, row_factory=dict_row
        )
    except psycopg.OperationalError as exc:
        raise DatabaseUnavailableError(
            f"database unavailable: {' '.join(str(exc).split())}"
        ) from exc
    try:
        async with conn.transaction():
            yield conn
    except psycopg.OperationalError as exc:
        raise DatabaseUnavailableError(f"database unavailable: {exc}") from exc
    finally:
        await conn.close()
