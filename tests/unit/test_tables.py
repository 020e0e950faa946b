"""The worker's table manager skips Faust's one-second start-up pause when the app declares
no tables (streams/tables.py), and keeps it when one does. Nothing connects to a broker:
the pause is Faust's ``Service.sleep``, which these make raise; the consumer (started
before the table manager in a worker) answers an empty assignment."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from streams.offsets import HeadSafeConsumer, MetricloomApp
from streams.tables import TablelessManager


class Paused(Exception):
    """Raised where Faust would have slept."""


@pytest_asyncio.fixture
async def tables() -> AsyncIterator[TablelessManager]:
    """Made inside the test's event loop (Faust binds its services to the running one)."""
    app = MetricloomApp(
        "tables-test",
        broker="kafka://127.0.0.1:1",
        autodiscover=False,
        store="memory://",
        TableManager=TablelessManager,
    )
    made = app.tables
    assert isinstance(made, TablelessManager)

    async def no_sleep(seconds: object) -> None:
        raise Paused(seconds)

    async def recovery_started() -> None:
        return None

    made.sleep = no_sleep  # type: ignore[method-assign,assignment]
    app.consumer.assignment = set  # type: ignore[method-assign]  # started first in a worker
    made.recovery.start = recovery_started  # type: ignore[method-assign]
    yield made
    consumer = app.consumer
    assert isinstance(consumer, HeadSafeConsumer)
    consumer._thread.thread_loop.close()  # the consumer's thread made a loop it never ran


async def test_without_tables_they_are_registered_at_once(tables: TablelessManager) -> None:
    await tables.on_start()  # Paused if it slept
    assert tables._tables_registered.is_set()


async def test_a_declared_table_keeps_fausts_pause(tables: TablelessManager) -> None:
    tables.app.Table("counts", default=int)
    with pytest.raises(Paused) as paused:  # a table was declared: Faust's own pause
        await tables.on_start()
    assert paused.value.args == (1.0,)
    assert not tables._tables_registered.is_set()
