"""The PostgreSQL schema of the consent store, and its forward-only migrations.

Everything lives in one schema, ``consentgate`` (so the store can share a database
with other applications' tables without touching them), versioned by the rows of
``consentgate.schema_version``: one row per migration applied, the highest is the
version. Migrations only go forward and run in one transaction at open (or with
``consentgate migrate`` ahead of a deploy, :func:`consentgate.store.postgres.migrate`)
holding ``pg_advisory_xact_lock(MIGRATION_LOCK)``: five instances starting at once
on an empty database take turns, the first migrates, the others find the work done.
A failed migration leaves the database as it was (DDL is transactional in
PostgreSQL). A version newer than this code knows is refused (upgrade consentgate) unless its
recorded level keeps this code working (below);
a ``consentgate`` schema that has tables but no version table is someone else's and
is refused too, untouched.

The columns are SQLite's (:mod:`consentgate.store.sqlite.sqlite_schema`), in the order of
:mod:`consentgate.core.signed.records` (``CONSENT_COLUMNS``, ``CLIENT_COLUMNS``,
``PENDING_COLUMNS``), with strict types: integers are ``bigint``, signatures
``bytea``, text ``text COLLATE "C"`` (byte-wise equality and order, whatever the
database's default collation). Each table but ``used_bindings`` ends with ``seq``, an
identity column: the order of listings and the cursor of their pages.

Indexes, and why some hash their values: a B-tree entry holds at most about 2.7 kB,
and a consent's client_id (512 characters), redirect_uri and resource (2,048 each) may
together be several times that. The lookup index therefore keys on ``subject`` (at
most 128 characters) and the MD5 of the three long columns; the query repeats the
plain equalities, so a hash collision can only cost a row read, never a wrong answer.
Listing and revoking by client_id or redirect_uri use hash indexes, which store a
32-bit hash whatever the value's length.

Cache coherence (docs/store.md, "PostgreSQL"): ``consentgate.changes`` holds one
counter. On ``consents`` and ``clients``, a BEFORE STATEMENT trigger locks the
counter row (so every writer of those tables, a running gate or a person with psql,
takes that lock before touching a row, and none can deadlock on it), and AFTER
STATEMENT triggers that changed at least one row (or truncated the table) add one to
it and ``pg_notify('consentgate_changes', <new value>)`` in the same transaction:
every instance listening hears of every committed change, however it was made.

History:

1. The consent, client, pending and used-binding tables, the change counter and its
   triggers (the SQLite schema 3, in one step).
2. ``settings``.
3. ``audit``: the hash-chained audit trail (:mod:`consentgate.audit.trail`).
4. An index on the audit's ``request_id`` (with ``seq``, the listing's order): finding
   the rows of the request whose id a page showed the person (``audit list
   --request-id``, the admin API's ``request_id``). A request id is at most 128
   characters, so a B-tree holds it whole.
5. ``gates``, the gates attached to the store (:mod:`consentgate.core.attached_gates`),
   and the ``compatible_from`` column of ``schema_version``: for each version from this
   one on, the oldest version whose code runs on it
   (:mod:`consentgate.core.schema_versions`). Additive: the code of 4 runs on it.
6. ``client_sightings``: when the gate first saw each client named by a URL, signed
   (:mod:`consentgate.core.signed.sightings`). Additive: the code of 4 runs on it.

Two versions on one store (docs/store.md): under the migration lock, a migration reads
the fresh rows of ``gates`` and refuses when its target's level leaves one of them
behind; a database whose version is newer than this code is opened when the level it
records still runs this code, refused otherwise (no level recorded: no promise).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Final

import asyncpg

from consentgate.config.dsn import describe, password_of
from consentgate.core.attached_gates import blocking, gates_attached
from consentgate.core.schema_versions import POSTGRES_COMPATIBLE_FROM, compatible_from, runs_on
from consentgate.core.startup_errors import StartupError
from consentgate.store.postgres.error_mapping import CLOSE_ERRORS, OPEN_ERRORS, startup_error
from consentgate.store.postgres.two_versions import attached_gates, recorded_level

# Operational, not audit: which database was migrated from which version.
_log = logging.getLogger("consentgate")

#: The schema (namespace) every table of the store lives in.
SCHEMA: Final = "consentgate"
#: The channel the triggers notify on; the payload is the new counter value.
CHANNEL: Final = "consentgate_changes"
#: ``pg_advisory_xact_lock`` key held while migrating ("consentg" in ASCII, + 1).
MIGRATION_LOCK: Final = 0x636F_6E73_656E_7401
#: How long a migration (or waiting for another instance's) may take.
MIGRATION_TIMEOUT: Final = 60

_TEXT: Final = 'text COLLATE "C"'

_COUNTING_TRIGGERS: Final = tuple(
    statement
    for table in ("consents", "clients")
    for statement in (
        f"""CREATE TRIGGER {table}_lock_changes
            BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON {SCHEMA}.{table}
            FOR EACH STATEMENT EXECUTE FUNCTION {SCHEMA}.lock_changes()""",
        f"""CREATE TRIGGER {table}_count_inserts AFTER INSERT ON {SCHEMA}.{table}
            REFERENCING NEW TABLE AS changed
            FOR EACH STATEMENT EXECUTE FUNCTION {SCHEMA}.count_changes()""",
        f"""CREATE TRIGGER {table}_count_updates AFTER UPDATE ON {SCHEMA}.{table}
            REFERENCING NEW TABLE AS changed
            FOR EACH STATEMENT EXECUTE FUNCTION {SCHEMA}.count_changes()""",
        f"""CREATE TRIGGER {table}_count_deletes AFTER DELETE ON {SCHEMA}.{table}
            REFERENCING OLD TABLE AS changed
            FOR EACH STATEMENT EXECUTE FUNCTION {SCHEMA}.count_changes()""",
        f"""CREATE TRIGGER {table}_count_truncates AFTER TRUNCATE ON {SCHEMA}.{table}
            FOR EACH STATEMENT EXECUTE FUNCTION {SCHEMA}.count_changes()""",
    )
)

#: Forward migrations; schema version N is the result of applying the first N.
MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
    (
        f"""CREATE TABLE {SCHEMA}.consents (
            id {_TEXT} NOT NULL PRIMARY KEY,
            subject {_TEXT} NOT NULL,
            client_id {_TEXT} NOT NULL,
            redirect_uri {_TEXT} NOT NULL,
            scopes {_TEXT} NOT NULL,
            resource {_TEXT} NOT NULL,
            granted_at bigint NOT NULL,
            expires_at bigint NOT NULL,
            revoked_at bigint,
            key_id {_TEXT} NOT NULL,
            signature bytea NOT NULL,
            seq bigint GENERATED ALWAYS AS IDENTITY UNIQUE
        )""",
        f"""CREATE INDEX consents_lookup ON {SCHEMA}.consents
            (subject, md5(client_id), md5(redirect_uri), md5(resource), expires_at)""",
        f"CREATE INDEX consents_by_client ON {SCHEMA}.consents USING hash (client_id)",
        f"CREATE INDEX consents_by_redirect_uri ON {SCHEMA}.consents USING hash (redirect_uri)",
        f"CREATE INDEX consents_by_expiry ON {SCHEMA}.consents (expires_at)",
        f"CREATE INDEX consents_by_revocation ON {SCHEMA}.consents (revoked_at)",
        f"""CREATE TABLE {SCHEMA}.clients (
            client_id {_TEXT} NOT NULL PRIMARY KEY,
            client_name {_TEXT},
            redirect_uris {_TEXT} NOT NULL,
            client_uri {_TEXT},
            logo_uri {_TEXT},
            tos_uri {_TEXT},
            policy_uri {_TEXT},
            registered_at bigint NOT NULL,
            registration {_TEXT} NOT NULL,
            key_id {_TEXT} NOT NULL,
            signature bytea NOT NULL,
            seq bigint GENERATED ALWAYS AS IDENTITY UNIQUE
        )""",
        f"""CREATE TABLE {SCHEMA}.pending (
            id {_TEXT} NOT NULL PRIMARY KEY,
            subject {_TEXT} NOT NULL,
            source {_TEXT} NOT NULL,
            payload {_TEXT} NOT NULL,
            created_at bigint NOT NULL,
            expires_at bigint NOT NULL,
            key_id {_TEXT} NOT NULL,
            signature bytea NOT NULL,
            seq bigint GENERATED ALWAYS AS IDENTITY UNIQUE
        )""",
        f"CREATE INDEX pending_by_subject ON {SCHEMA}.pending (subject, created_at)",
        f"CREATE INDEX pending_by_source ON {SCHEMA}.pending (source, created_at)",
        f"CREATE INDEX pending_by_expiry ON {SCHEMA}.pending (expires_at)",
        f"""CREATE TABLE {SCHEMA}.used_bindings (
            key {_TEXT} NOT NULL PRIMARY KEY,
            expires_at bigint NOT NULL
        )""",
        f"CREATE INDEX used_bindings_by_expiry ON {SCHEMA}.used_bindings (expires_at)",
        f"""CREATE TABLE {SCHEMA}.changes (
            id integer NOT NULL PRIMARY KEY CHECK (id = 1),
            counter bigint NOT NULL
        )""",
        f"INSERT INTO {SCHEMA}.changes (id, counter) VALUES (1, 0)",
        f"""CREATE FUNCTION {SCHEMA}.lock_changes() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                PERFORM 1 FROM {SCHEMA}.changes WHERE id = 1 FOR UPDATE;
                RETURN NULL;
            END $$""",
        f"""CREATE FUNCTION {SCHEMA}.count_changes() RETURNS trigger LANGUAGE plpgsql AS $$
            DECLARE
                moved bigint;
            BEGIN
                IF TG_OP <> 'TRUNCATE' THEN
                    PERFORM 1 FROM changed LIMIT 1;
                    IF NOT FOUND THEN
                        RETURN NULL;  -- a statement that changed no row changes nothing
                    END IF;
                END IF;
                UPDATE {SCHEMA}.changes SET counter = counter + 1 WHERE id = 1
                    RETURNING counter INTO moved;
                IF moved IS NULL THEN  -- deleted by hand: fail loudly, never silently
                    RAISE EXCEPTION '{SCHEMA}.changes has lost its row; restore it: '
                        'INSERT INTO {SCHEMA}.changes VALUES (1, 0)';
                END IF;
                PERFORM pg_notify('{CHANNEL}', moved::text);
                RETURN NULL;
            END $$""",
        *_COUNTING_TRIGGERS,
    ),
    (
        # Settings every instance sharing the store must agree on (the cookie secret's
        # fingerprint), claimed by the first instance that starts.
        f"""CREATE TABLE {SCHEMA}.settings (
            name {_TEXT} NOT NULL PRIMARY KEY,
            value {_TEXT} NOT NULL
        )""",
    ),
    (
        # The hash-chained audit trail (consentgate.audit.trail). seq
        # is assigned by the appender (it is part of what each row's hash covers);
        # appenders take turns on the change counter's row lock every transaction
        # takes first, so the chain never forks across instances.
        f"""CREATE TABLE {SCHEMA}.audit (
            seq bigint NOT NULL PRIMARY KEY,
            at bigint NOT NULL,
            event {_TEXT} NOT NULL,
            request_id {_TEXT} NOT NULL,
            actor {_TEXT} NOT NULL,
            client_id {_TEXT} NOT NULL,
            redirect_uri {_TEXT} NOT NULL,
            scopes {_TEXT} NOT NULL,
            subject {_TEXT} NOT NULL,
            detail {_TEXT} NOT NULL,
            prev {_TEXT} NOT NULL,
            hash {_TEXT} NOT NULL,
            key_id {_TEXT} NOT NULL,
            signature bytea NOT NULL
        )""",
        f"CREATE INDEX audit_by_time ON {SCHEMA}.audit (at)",
        f"CREATE INDEX audit_by_client ON {SCHEMA}.audit USING hash (client_id)",
        f"CREATE INDEX audit_by_event ON {SCHEMA}.audit (event, seq)",
    ),
    (f"CREATE INDEX audit_by_request ON {SCHEMA}.audit (request_id, seq)",),
    (
        # The gates attached to the store, each refreshing its own row
        # (consentgate.core.attached_gates), and the compatibility level of each
        # schema version from this one on (consentgate.core.schema_versions).
        f"""CREATE TABLE {SCHEMA}.gates (
            instance {_TEXT} NOT NULL PRIMARY KEY,
            schema_version integer NOT NULL,
            software {_TEXT} NOT NULL,
            host {_TEXT} NOT NULL,
            pid integer NOT NULL,
            started_at bigint NOT NULL,
            seen_at bigint NOT NULL,
            refresh_every integer NOT NULL
        )""",
        f"ALTER TABLE {SCHEMA}.schema_version ADD COLUMN compatible_from integer",
    ),
    (
        # The first time the gate saw each client named by a URL (written once, by
        # whichever gate saw it first: consentgate.store.parts.first_sightings). A client_id
        # URL is at most 512 characters, so a B-tree holds it whole.
        f"""CREATE TABLE {SCHEMA}.client_sightings (
            client_id {_TEXT} NOT NULL PRIMARY KEY,
            first_seen_at bigint NOT NULL,
            key_id {_TEXT} NOT NULL,
            signature bytea NOT NULL
        )""",
    ),
)
SCHEMA_VERSION: Final = len(MIGRATIONS)
#: Per version, the oldest version whose code runs on it (kept beside the migrations).
LEVELS: Final = POSTGRES_COMPATIBLE_FROM
#: The first version that records its level in ``schema_version.compatible_from``.
LEVELS_FROM: Final = 5

_VERSION_TABLE: Final = f"{SCHEMA}.schema_version"
_BOOTSTRAP: Final = (
    f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}",
    f"""CREATE TABLE {_VERSION_TABLE} (
        version integer NOT NULL PRIMARY KEY,
        applied_at timestamptz NOT NULL DEFAULT now()
    )""",
)


async def schema_version(conn: asyncpg.Connection, where: str) -> int:
    """The database's schema version (0: no consentgate schema yet). Refuses a
    ``consentgate`` schema that has tables but no version table."""
    # The catalogs, not to_regclass(): they answer a role without USAGE on the schema.
    names = [
        row[0]
        for row in await conn.fetch(
            "SELECT c.relname FROM pg_catalog.pg_class c "
            "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = $1 ORDER BY c.relname",
            SCHEMA,
        )
    ]
    if "schema_version" not in names:
        if names:
            raise StartupError(
                f"the PostgreSQL database {where} has a schema {SCHEMA!r} that is not "
                f"consentgate's (it has {names[0]!r} and no schema_version table); "
                "use another database"
            )
        return 0
    return int(await conn.fetchval(f"SELECT coalesce(max(version), 0) FROM {_VERSION_TABLE}"))


async def apply_migrations(
    conn: asyncpg.Connection,
    where: str,
    *,
    migrate: bool,
    refuse_empty: str | None = None,
    migrations: Sequence[Sequence[str]] = MIGRATIONS,
    levels: Sequence[int] = LEVELS,
) -> tuple[int, int]:
    """Bring the database to :data:`SCHEMA_VERSION` (with ``migrate``) or check it is
    there (without); returns (version found, version now). One transaction, under the
    migration lock; DDL runs only when something is missing, so a role that may not
    create anything opens an up-to-date database. A newer database this code runs on
    is left as it is (its version, twice). Refuses, changing nothing, while a fresh
    attached gate runs code the target no longer runs
    (:class:`~consentgate.core.attached_gates.GatesAttached`).

    ``refuse_empty``: the startup error's text when the database has no consent
    store at all, where there is evidence one existed (a failover to an empty
    database; :mod:`consentgate.store.birth`). ``migrations`` and ``levels``: this
    code's, unless a test brings a schema of a later release, in the same form."""
    target = len(migrations)
    async with conn.transaction():
        await conn.execute(f"SET LOCAL statement_timeout = '{MIGRATION_TIMEOUT}s'")
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
        found = await schema_version(conn, where)
        if found > target:
            if not runs_on(target, found, await recorded_level(conn, found)):
                raise StartupError(
                    f"the consent store in PostgreSQL {where} has schema version {found}, "
                    f"newer than the {target} this consentgate knows; upgrade consentgate"
                )
            return found, found
        if found == target:
            return found, found
        if found == 0 and refuse_empty is not None:
            raise StartupError(refuse_empty)
        if not migrate:
            raise StartupError(
                f"the consent store in PostgreSQL {where} has schema version {found}; this "
                f"consentgate needs {target}: run consentgate migrate"
            )
        level = compatible_from(levels, target)
        now = int(time.time())
        blockers = blocking(await attached_gates(conn), compatible_from=level, now=now)
        if blockers:
            raise gates_attached(
                f"in PostgreSQL {where}", blockers, target=target, compatible_from=level, now=now
            )
        if found == 0:
            for statement in _BOOTSTRAP:
                await conn.execute(statement)
        for index in range(found, target):
            for statement in migrations[index]:
                await conn.execute(statement)
            if index + 1 < LEVELS_FROM:
                await conn.execute(f"INSERT INTO {_VERSION_TABLE} (version) VALUES ($1)", index + 1)
            else:
                await conn.execute(
                    f"INSERT INTO {_VERSION_TABLE} (version, compatible_from) VALUES ($1, $2)",
                    index + 1,
                    levels[index],
                )
    _log.info(
        "consent store in PostgreSQL %s migrated from schema version %d to %d",
        where,
        found,
        target,
    )
    return found, target


async def close_connection(conn: asyncpg.Connection, seconds: float) -> None:
    """Close a connection of our own; cut it if that fails (the error that brought us
    here, if any, is the one that matters)."""
    try:
        await conn.close(timeout=seconds)
    except CLOSE_ERRORS:
        conn.terminate()


async def check_database(conn: asyncpg.Connection, where: str) -> None:
    """Refuse a database whose encoding cannot hold every string the store keeps."""
    encoding = await conn.fetchval("SHOW server_encoding")
    if str(encoding).upper() not in {"UTF8", "UTF-8"}:
        raise StartupError(
            f"the PostgreSQL database {where} has encoding {encoding}; the consent store "
            "needs UTF8 (CREATE DATABASE ... ENCODING 'UTF8')"
        )


async def migrate(
    dsn: str,
    *,
    password: str | None = None,
    connect_timeout: float = 5.0,
    statement_timeout: float = 5.0,
    refuse_empty: str | None = None,
) -> tuple[int, int]:
    """Bring the database at ``dsn`` to this code's schema version, ahead of a deploy
    (``consentgate migrate``); returns (version before, version after). Safe to run
    while gates of the same version are serving, and from several places at once
    (the migration lock). ``statement_timeout`` is the session's, as for
    ``PostgresBackend.open``; the migration itself may take up to
    :data:`MIGRATION_TIMEOUT` seconds. Raises
    :class:`~consentgate.core.startup_errors.StartupError` as ``PostgresBackend.open`` does."""
    if connect_timeout <= 0 or statement_timeout <= 0:
        raise ValueError("the timeouts must be positive")
    where = describe(dsn)
    try:
        conn = await asyncpg.connect(
            dsn,
            password=password,
            timeout=connect_timeout,
            server_settings={
                "statement_timeout": str(max(1, round(statement_timeout * 1000))),
                "application_name": "consentgate-migrate",
            },
        )
        try:
            await check_database(conn, where)
            return await apply_migrations(conn, where, migrate=True, refuse_empty=refuse_empty)
        finally:
            await close_connection(conn, connect_timeout)
    except StartupError:
        raise
    except OPEN_ERRORS as exc:
        raise startup_error(
            exc, where, timeout=connect_timeout, secrets=(password, password_of(dsn))
        ) from None
