"""``check-config``'s look at a PostgreSQL store: does the server answer, and may the
configured role do what ``serve`` will do there.

``serve`` connects at start, creates or migrates the schema ``consentgate`` when it is
missing or older, then reads and writes its tables (docs/store.md, "The least
privileges"). This asks the server the same questions without changing anything: the
connection (refused, no answer, login, database: the same one-line errors as ``serve``,
the password never shown), the encoding, the schema's version, and the role's
privileges from the catalogs (``has_database_privilege``, ``pg_has_role``,
``has_schema_privilege``, ``has_table_privilege``, one privilege at a time: given a
list, PostgreSQL answers whether *any* is held).

asyncpg is the optional ``[postgres]`` extra, imported only when a store URL names
PostgreSQL.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from consentgate.cli.conventions import program_name
from consentgate.config.dsn import describe, password_of
from consentgate.config.sections_operations import StoreConfig
from consentgate.core.startup_errors import StartupError

if TYPE_CHECKING:
    import asyncpg

#: How long the check waits for the server; ``serve`` waits as long.
CONNECT_TIMEOUT = 5.0
#: What the gate does to every table of its schema but the version table, which it reads.
WRITES = ("SELECT", "INSERT", "UPDATE", "DELETE")
READ_ONLY_TABLES = frozenset({"schema_version"})


def postgres_problems(store: StoreConfig) -> list[str]:
    """Each reason ``serve`` would fail on this store, one line each naming ``store.url``."""
    try:
        import asyncpg  # noqa: F401 - the optional extra, only for a PostgreSQL URL
    except ImportError:
        return [
            "store.url: names a PostgreSQL database, which needs asyncpg: "
            "pip install 'consentgate[postgres]'"
        ]
    return [f"store.url: {problem}" for problem in asyncio.run(_problems(store))]


async def _problems(store: StoreConfig) -> list[str]:
    import asyncpg

    from consentgate.store.postgres.error_mapping import OPEN_ERRORS, startup_error

    where = describe(store.url)
    password = store.password or None
    try:
        conn = await asyncpg.connect(store.url, password=password, timeout=CONNECT_TIMEOUT)
    except OPEN_ERRORS as exc:
        secrets = (password, password_of(store.url))
        return [str(startup_error(exc, where, timeout=CONNECT_TIMEOUT, secrets=secrets))]
    try:
        return await _role_problems(conn, where)
    except StartupError as exc:
        return [str(exc)]
    except OPEN_ERRORS as exc:
        return [str(startup_error(exc, where, timeout=CONNECT_TIMEOUT))]
    finally:
        conn.terminate()  # nothing was written: no need to wait for a clean close


async def _role_problems(conn: asyncpg.Connection, where: str) -> list[str]:
    from consentgate.core.schema_versions import runs_on
    from consentgate.store.postgres.postgres_schema import (
        SCHEMA,
        SCHEMA_VERSION,
        schema_version,
    )
    from consentgate.store.postgres.two_versions import recorded_level

    encoding = str(await conn.fetchval("SHOW server_encoding"))
    if encoding.upper() not in {"UTF8", "UTF-8"}:
        return [f"the database {where} has encoding {encoding}; the consent store needs UTF8"]
    role = str(await conn.fetchval("SELECT current_user"))
    version = await schema_version(conn, where)
    if version > SCHEMA_VERSION and not runs_on(
        SCHEMA_VERSION, version, await recorded_level(conn, version)
    ):
        return [
            f"the consent store in {where} has schema version {version}, newer than the "
            f"{SCHEMA_VERSION} this consentgate knows; upgrade consentgate"
        ]
    if version == 0:
        if await conn.fetchval("SELECT has_database_privilege(current_database(), 'CREATE')"):
            return []
        return [
            f"the role {role!r} may not create the schema {SCHEMA!r} in {where}, which "
            "serve does at its first start: make it the database's owner, or run "
            f"{program_name()} migrate as the owner first (docs/store.md, The least privileges)"
        ]
    if version < SCHEMA_VERSION:
        owner = await conn.fetchval(
            "SELECT pg_has_role(nspowner, 'USAGE') FROM pg_catalog.pg_namespace WHERE nspname = $1",
            SCHEMA,
        )
        if not owner:
            return [
                f"the consent store in {where} has schema version {version}; serve would "
                f"migrate it to {SCHEMA_VERSION}, which only the schema's owner may: run "
                f"{program_name()} migrate as the owner first (the role {role!r} is not)"
            ]
    if not await conn.fetchval("SELECT has_schema_privilege($1, 'USAGE')", SCHEMA):
        return [
            f"the role {role!r} lacks USAGE on the schema {SCHEMA!r} in {where}: "
            f"GRANT USAGE ON SCHEMA {SCHEMA} TO {role} (docs/store.md, The least privileges)"
        ]
    rows = await conn.fetch(
        "SELECT c.relname, p.privilege FROM pg_catalog.pg_class c "
        "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
        "CROSS JOIN unnest($2::text[]) WITH ORDINALITY AS p(privilege, rank) "
        "WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') "
        "AND NOT has_table_privilege(c.oid, p.privilege) ORDER BY c.relname, p.rank",
        SCHEMA,
        list(WRITES),
    )
    missing: dict[str, list[str]] = {}
    for table, privilege in rows:
        if table in READ_ONLY_TABLES and privilege != "SELECT":
            continue
        missing.setdefault(table, []).append(privilege)
    if not missing:
        return []
    lacking = "; ".join(
        f"{', '.join(privileges)} on {SCHEMA}.{table}" for table, privileges in missing.items()
    )
    return [
        f"the role {role!r} lacks privileges the gate needs in {where}: {lacking} "
        "(docs/store.md, The least privileges)"
    ]
