"""``metricloom worker`` with Faust's own table-manager start put back: the baseline of
``benchmarks.startup``. A module of its own so that it imports nothing the shipped worker
does not (the benchmark's harness would add a second of imports to the baseline).

    python -m benchmarks.faust_worker
"""

from __future__ import annotations

from faust.tables import TableManager

from metricloom.cli import app
from streams.tables import TablelessManager

if __name__ == "__main__":
    TablelessManager.on_start = TableManager.on_start  # type: ignore[method-assign]
    app(["worker"])
