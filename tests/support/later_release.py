"""A later consentgate's migration, run with this code's migration functions: this
code's steps plus one more (a table it does not know), declaring the compatibility
level that later release would declare.

No release of this code has a breaking migration yet, so the tests of "two versions
on one store" bring one: the migration functions take the steps and levels as
explicit parameters (production passes none), never from the environment.
"""

from __future__ import annotations

from pathlib import Path

import aiosqlite
import asyncpg

from consentgate.store.postgres import postgres_schema
from consentgate.store.sqlite import sqlite_schema

#: The table the later release adds.
LATER_TABLE = "later_feature"


async def migrate_sqlite_later(path: Path, *, level: int, extra: int = 1) -> tuple[int, int]:
    """Migrate the file ``extra`` versions past this code's schema; the last one runs
    only code of schema ``level`` or newer (the ones before it keep the level before)."""
    steps = tuple(
        (f"CREATE TABLE {LATER_TABLE}_{n} (id INTEGER PRIMARY KEY)",) for n in range(extra)
    )
    levels = (*sqlite_schema.LEVELS, *(sqlite_schema.LEVELS[-1],) * (extra - 1), level)
    db = await aiosqlite.connect(path, isolation_level=None)
    try:
        return await sqlite_schema.migrate(
            db, path, migrations=(*sqlite_schema.MIGRATIONS, *steps), levels=levels
        )
    finally:
        await db.close()


async def migrate_postgres_later(dsn: str, *, level: int, extra: int = 1) -> tuple[int, int]:
    """:func:`migrate_sqlite_later` for the PostgreSQL database at ``dsn``."""
    schema = postgres_schema.SCHEMA
    steps = tuple(
        (f"CREATE TABLE {schema}.{LATER_TABLE}_{n} (id integer PRIMARY KEY)",) for n in range(extra)
    )
    levels = (*postgres_schema.LEVELS, *(postgres_schema.LEVELS[-1],) * (extra - 1), level)
    conn = await asyncpg.connect(dsn)
    try:
        return await postgres_schema.apply_migrations(
            conn,
            "the test database",
            migrate=True,
            migrations=(*postgres_schema.MIGRATIONS, *steps),
            levels=levels,
        )
    finally:
        await conn.close()
