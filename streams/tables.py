"""Faust's table manager without its start-up pause, for an app that declares no tables.

faust-streaming 0.15.3's ``TableManager.on_start`` sleeps one second before it registers
the tables, so that agents starting beside it can declare theirs; the consumer subscribes
only after that. metricloom keeps its state in TimescaleDB and declares no Faust table, so
the second is pure start-up delay: a restarted worker is ready about 1 s later than it need
be (issue: failover and restart within 10 s). An app that does declare tables keeps
Faust's own start, pause included.
"""

from __future__ import annotations

from faust.tables import TableManager


class TablelessManager(TableManager):
    """Registers the (absent) tables at once instead of after a one-second pause."""

    async def on_start(self) -> None:
        if self.data:  # tables were declared: Faust's own start
            await super().on_start()
            return
        await self._update_channels()
        await self.recovery.start()
