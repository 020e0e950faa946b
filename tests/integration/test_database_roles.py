"""The workers' database role reads and writes rows and does nothing else: no DDL, no
write to the migrations' bookkeeping, retention only through the owner's function."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from psycopg import errors

from schema.exceptions import MetricloomError
from schema.roles import grant_application_role
from tests.conftest import APP_ROLE, ROOT, admin_url

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    "statement",
    [
        "CREATE TABLE stolen (x int)",
        "DROP TABLE metrics",
        "ALTER TABLE metrics ADD COLUMN x int",
        "TRUNCATE metric_data_points",
        "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'",
        "CREATE SCHEMA stolen",
        "CREATE INDEX ON metrics (template_id)",
        "DELETE FROM _yoyo_migration",
        "CREATE ROLE intruder",
        "SELECT drop_chunks('metric_data_points', older_than => interval '1 day')",
    ],
)
async def test_the_application_role_cannot_change_the_schema(
    database_url: str, statement: str
) -> None:
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        with pytest.raises(errors.InsufficientPrivilege):
            await conn.execute(statement)


async def test_the_application_role_is_no_superuser_and_keeps_its_rows(db_conn: Any) -> None:
    cur = await db_conn.execute(
        "SELECT current_user AS who, rolsuper, rolcreatedb, rolcreaterole, rolbypassrls"
        " FROM pg_roles WHERE rolname = current_user"
    )
    role = await cur.fetchone()
    assert role == {
        "who": APP_ROLE,
        "rolsuper": False,
        "rolcreatedb": False,
        "rolcreaterole": False,
        "rolbypassrls": False,
    }
    cur = await db_conn.execute("SELECT count(*) AS n FROM _yoyo_migration")
    migrations = [p for p in (ROOT / "schema" / "migrations").iterdir() if p.stem[:4].isdigit()]
    assert (await cur.fetchone())["n"] == len(migrations)  # it may read which ran


async def test_retention_goes_only_through_the_owners_function(db_conn: Any) -> None:
    """``drop_old_chunks`` runs as the owner for the two hypertables with a retention,
    and for nothing else."""
    cur = await db_conn.execute("SELECT drop_old_chunks('polls', interval '3650 days') AS n")
    assert (await cur.fetchone())["n"] == 0
    with pytest.raises(errors.RaiseException, match="metrics has no retention"):
        await db_conn.execute("SELECT drop_old_chunks('metrics', interval '30 days')")
    with pytest.raises(errors.RaiseException, match="keeps at least a day"):
        await db_conn.execute("SELECT drop_old_chunks('polls', interval '1 hour')")


def test_the_owner_is_never_made_the_application_role(database_url: str) -> None:
    name = database_url.rsplit("/", 1)[1]
    with pytest.raises(MetricloomError, match="name the same user"):
        grant_application_role(admin_url(name), admin_url(name))
    with pytest.raises(MetricloomError, match="must name the same one"):
        grant_application_role(admin_url("postgres"), database_url)
