"""Hourly, daily and weekly rollups: continuous aggregates where the TimescaleDB license
allows them (community), tables the writer maintains where it does not (Apache-2).
See schema/rollups.py for why both exist and what they hold."""

from typing import Any

from yoyo import step

from schema.rollups import Mode, create_statements, drop_statements

__depends__ = {"0002_points"}
# Continuous aggregates cannot be created inside a transaction block; every statement is
# idempotent instead, so a failed run can simply be repeated.
__transactional__ = False


def apply(conn: Any) -> None:
    cur = conn.cursor()
    cur.execute("SELECT current_setting('timescaledb.license', true)")
    license_name = cur.fetchone()[0]
    mode: Mode = "continuous" if license_name == "timescale" else "maintained"
    for statement in create_statements(mode, families=("values",)):
        cur.execute(statement)


def rollback(conn: Any) -> None:
    cur = conn.cursor()
    cur.execute("SELECT view_name FROM timescaledb_information.continuous_aggregates")
    for statement in drop_statements({row[0] for row in cur.fetchall()}, "values"):
        cur.execute(statement)


steps = [step(apply, rollback)]
