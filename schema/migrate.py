"""Applies the versioned SQL migrations in ``schema/migrations`` with yoyo-migrations.

yoyo records every applied migration in its own table, takes a lock so two workers
starting together apply each migration once, and runs each file in a transaction, so
``metricloom migrate`` is safe to run any number of times.
"""

from __future__ import annotations

from importlib import resources

import psycopg
from yoyo import get_backend, read_migrations

from schema.exceptions import DatabaseUnavailableError


def _yoyo_url(database_url: str) -> str:
    scheme, _, rest = database_url.partition("://")
    if scheme in {"postgres", "postgresql"}:
        return f"postgresql+psycopg://{rest}"
    return database_url


def apply_migrations(database_url: str) -> list[str]:
    """Apply every migration not yet applied; return the ids applied now."""
    directory = resources.files("schema") / "migrations"
    try:
        backend = get_backend(_yoyo_url(database_url))
    except psycopg.OperationalError as exc:
        raise DatabaseUnavailableError(f"cannot connect to the database: {exc}") from exc
    try:
        migrations = read_migrations(str(directory))
        with backend.lock():
            todo = backend.to_apply(migrations)
            backend.apply_migrations(todo)
        return [m.id for m in todo]
    finally:
        backend.connection.close()
