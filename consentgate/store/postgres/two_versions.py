"""What two versions on one store read from the PostgreSQL database: the compatibility
level a schema version records, and the gates attached to it (docs/store.md, "Two
versions on one store"; :mod:`consentgate.core.schema_versions`,
:mod:`consentgate.core.attached_gates`). Read by the migration, under its lock, and by
a running gate that finds the schema moved past its own.
"""

from __future__ import annotations

from typing import Final

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from consentgate.core.attached_gates import GATE_COLUMNS, AttachedGate

#: The schema every table of the store lives in (``postgres_schema.SCHEMA``).
SCHEMA: Final = "consentgate"
_VERSION_TABLE: Final = f"{SCHEMA}.schema_version"


async def recorded_level(
    conn: asyncpg.Connection | PoolConnectionProxy[asyncpg.Record], version: int
) -> int | None:
    """The level the database records for ``version``; None when it records none (no
    row, a NULL, or no ``compatible_from`` column: no promise). Runs in a savepoint
    when a transaction is open, so a missing column does not abort it."""
    try:
        async with conn.transaction():
            value = await conn.fetchval(
                f"SELECT compatible_from FROM {_VERSION_TABLE} WHERE version = $1",  # noqa: S608
                version,
            )
    except (asyncpg.UndefinedColumnError, asyncpg.UndefinedTableError):
        return None
    return None if value is None else int(value)


async def attached_gates(conn: asyncpg.Connection) -> list[AttachedGate]:
    """The gates attached to the database (none before the ``gates`` table exists)."""
    exists = await conn.fetchval(
        "SELECT 1 FROM pg_catalog.pg_class c "
        "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = $1 AND c.relname = 'gates'",
        SCHEMA,
    )
    if not exists:
        return []
    rows = await conn.fetch(f"SELECT {', '.join(GATE_COLUMNS)} FROM {SCHEMA}.gates")  # noqa: S608
    return [AttachedGate.from_row(tuple(row)) for row in rows]
