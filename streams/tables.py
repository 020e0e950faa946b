"""Faust's table manager without its start-up pause, for an app that declares no tables.

faust-streaming 0.15.3's ``TableManager.on_start`` sleeps one second before it registers
the tables, so that tables declared while the app starts are in before the consumer
subscribes (the Conductor waits for that registration). metricloom keeps its state in
TimescaleDB and declares no Faust table, so the second is pure start-up delay: a restarted
worker is ready about 1 s later than it need be (``benchmarks/startup.py``).

What the pause also covered: an agent's topic reaches the Conductor when the agent first
iterates its stream. Faust starts the agents before the Conductor and the table manager,
and every stage agent (``streams/app.py``) iterates at once, without awaiting anything
first, so their topics are known before the subscription. An agent that awaits before it
iterates would need the pause back. A table must be declared before the worker starts
(``self.data`` is read here; Faust refuses one declared later).
"""

from __future__ import annotations

from faust.tables import TableManager


class TablelessManager(TableManager):
    """Registers the (absent) tables at once instead of after a one-second pause."""

    async def on_start(self) -> None:
        if self.data:  # tables were declared: Faust's own start
            await super().on_start()
            return
        if not self.should_stop:
            await self._update_channels()
            await self.recovery.start()
