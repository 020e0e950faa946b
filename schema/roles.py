"""The application's database role: rows only, no DDL.

Two roles touch the database. The migration role (``METRICLOOM_DATABASE_ADMIN_URL``, used
only by ``metricloom migrate``/``setup``) owns the schema and runs the migrations. The
application role (the user in ``METRICLOOM_DATABASE_URL``, what every worker connects as)
is made or updated here, after the migrations: it may log in and read and write the rows of
the application's tables, and nothing else — it owns no table, so it can create, alter or
drop none, cannot create in the schema, and cannot touch the migrations' bookkeeping. What
the workers need beyond rows goes through functions that run as the owner and do one
thing (``drop_old_chunks``, migration 0011). The writer's per-transaction
``CREATE TEMP TABLE`` is allowed by the database's ``TEMPORARY`` privilege: a temporary
table lives in the session's own schema and touches nothing shared.

On a community-license TimescaleDB the rollups are continuous aggregates, which only their
owner may refresh (TimescaleDB checks ownership, as PostgreSQL does for materialized
views), and the writer refreshes the window it touched: there the application role is made
owner of the rollup views, and of nothing else.
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

import psycopg
from psycopg import sql

from schema.exceptions import DatabaseUnavailableError, MetricloomError

YOYO_TABLES = ("_yoyo_migration", "_yoyo_log", "_yoyo_version", "yoyo_lock")
"""The migration tool's own tables: the application role may not write them."""

OWNER_FUNCTIONS = ("drop_old_chunks(text, interval)",)
"""Functions that run as the owner, which the application role may call."""


def role_of(database_url: str) -> tuple[str, str | None, str]:
    """The user, password and database name a connection URL names."""
    url = urlsplit(database_url)
    if not url.username:
        raise MetricloomError("METRICLOOM_DATABASE_URL names no user")
    password = unquote(url.password) if url.password is not None else None
    return unquote(url.username), password, url.path.lstrip("/")


def grant_application_role(admin_url: str, database_url: str) -> str:
    """Make the role ``database_url`` connects as (or update its password) with rows-only
    rights on the database the admin URL names; returns the role's name. Safe to run
    again: each grant is idempotent, and tables added by later migrations get theirs on
    the next run (``metricloom migrate`` runs this after every migration)."""
    user, password, app_database = role_of(database_url)
    admin_user, _, database = role_of(admin_url)
    if app_database != database:
        raise MetricloomError(
            f"METRICLOOM_DATABASE_URL names database {app_database!r} and"
            f" METRICLOOM_DATABASE_ADMIN_URL {database!r}: they must name the same one"
        )
    if user == admin_user:
        raise MetricloomError(
            "METRICLOOM_DATABASE_URL and METRICLOOM_DATABASE_ADMIN_URL name the same user:"
            " the application would run as the schema's owner"
        )
    role = sql.Identifier(user)
    try:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (user,)).fetchone()
            attributes = sql.SQL(
                "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS"
                " NOINHERIT PASSWORD {}"
            ).format(sql.Literal(password))
            verb = sql.SQL("ALTER ROLE") if exists else sql.SQL("CREATE ROLE")
            with conn.transaction():
                conn.execute(sql.SQL("{} {} WITH {}").format(verb, role, attributes))
                for statement in _grants(database, role):
                    conn.execute(statement)
                for rollup in _continuous_aggregates(conn):
                    conn.execute(
                        sql.SQL("ALTER MATERIALIZED VIEW {} OWNER TO {}").format(
                            sql.Identifier(rollup), role
                        )
                    )
    except psycopg.OperationalError as exc:
        raise DatabaseUnavailableError(f"cannot connect to the database: {exc}") from exc
    return user


def _grants(database: str, role: sql.Identifier) -> list[sql.Composed]:
    names = {
        "db": sql.Identifier(database),
        "role": role,
        "yoyo": sql.SQL(", ").join(sql.Identifier(t) for t in YOYO_TABLES),
        "functions": sql.SQL(", ").join(sql.SQL(f) for f in OWNER_FUNCTIONS),
    }
    return [
        sql.SQL(statement).format(**names)
        for statement in (
            "REVOKE CREATE ON SCHEMA public FROM PUBLIC",
            "REVOKE CREATE ON DATABASE {db} FROM PUBLIC",
            "GRANT CONNECT, TEMPORARY ON DATABASE {db} TO {role}",
            "GRANT USAGE ON SCHEMA public TO {role}",
            "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}",
            "GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role}",
            "REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON {yoyo} FROM {role}",
            "GRANT EXECUTE ON FUNCTION {functions} TO {role}",
        )
    ]


def _continuous_aggregates(conn: psycopg.Connection[tuple[object, ...]]) -> list[str]:
    rows = conn.execute(
        "SELECT view_name FROM timescaledb_information.continuous_aggregates"
        " WHERE view_schema = 'public'"
    ).fetchall()
    return [str(row[0]) for row in rows]
