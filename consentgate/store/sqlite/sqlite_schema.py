"""The SQLite schema of the consent store, and its forward-only migrations.

``PRAGMA user_version`` is the schema version. Migrations only go forward and run
inside one ``BEGIN IMMEDIATE`` transaction at open, so two processes opening an old
file at once migrate it once, and a failed migration leaves the file as it was. A
file with a newer version than this code knows is refused (upgrade consentgate)
unless the level it records keeps this code working (below); a SQLite file without a
version that already has tables is some other application's database and is refused
too, untouched.

Schema history:

1. ``consents`` and ``clients``, with an index for the lookup
   (subject, client_id, redirect_uri, resource, expires_at) and one each for
   revoking or listing by client_id and by redirect_uri.
2. ``pending`` (consent pages waiting for an answer, opaque to the store) and
   ``used_bindings`` (flow bindings already used, so a callback is accepted once),
   and the ``counters`` table, moved by triggers on ``consents`` and ``clients``
   so every process notices any change and drops its cached answers.
3. ``pending`` rows become signed records (id, subject, source, payload and
   expiry under one signature, so no payload can move to another row), with an
   index by source for the per-address cap; indexes for the retention purge.
4. ``settings`` (the cookie secret's fingerprint, the public keys, the heartbeat).
5. ``audit``: the hash-chained audit trail (:mod:`consentgate.audit.trail`).
6. An index on the audit's ``request_id`` (with ``seq``, the listing's order): finding
   the rows of the request whose id a page showed the person (``audit list
   --request-id``, the admin API's ``request_id``).
7. ``gates``, the gates attached to the store (:mod:`consentgate.core.attached_gates`),
   and ``schema_levels``: for each version from this one on, the oldest version whose
   code runs on it (:mod:`consentgate.core.schema_versions`). Additive: the code of 6
   runs on it.
8. ``client_sightings``: when the gate first saw each client named by a URL, signed
   (:mod:`consentgate.core.signed.sightings`). Additive: the code of 6 runs on it (it
   never reads the table).

Two versions on one store (docs/store.md): a migration reads the fresh rows of
``gates`` first and refuses when its target's level leaves one of them behind
(:func:`~consentgate.core.attached_gates.blocking`); a file whose version is newer than
this code is opened when the level it records still runs this code, refused
otherwise, and a missing level is no promise (refused).

The column order of each table is the order of the row codec in
:mod:`consentgate.core.signed.records` (``CONSENT_COLUMNS``, ``CLIENT_COLUMNS``,
``PENDING_COLUMNS``); the queries name their columns anyway.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import aiosqlite

from consentgate.core.attached_gates import GATE_COLUMNS, AttachedGate, blocking, gates_attached
from consentgate.core.schema_versions import SQLITE_COMPATIBLE_FROM, compatible_from, runs_on
from consentgate.core.startup_errors import StartupError

# Operational, not audit: which file was migrated from which version.
_log = logging.getLogger("consentgate")

#: Forward migrations; schema version N is the result of applying the first N.
MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
    (
        """CREATE TABLE consents (
            id TEXT NOT NULL PRIMARY KEY,
            subject TEXT NOT NULL,
            client_id TEXT NOT NULL,
            redirect_uri TEXT NOT NULL,
            scopes TEXT NOT NULL,
            resource TEXT NOT NULL,
            granted_at INTEGER NOT NULL,
            expires_at INTEGER NOT NULL,
            revoked_at INTEGER,
            key_id TEXT NOT NULL,
            signature BLOB NOT NULL
        )""",
        """CREATE INDEX consents_lookup
            ON consents (subject, client_id, redirect_uri, resource, expires_at)""",
        "CREATE INDEX consents_by_client ON consents (client_id)",
        "CREATE INDEX consents_by_redirect_uri ON consents (redirect_uri)",
        """CREATE TABLE clients (
            client_id TEXT NOT NULL PRIMARY KEY,
            client_name TEXT,
            redirect_uris TEXT NOT NULL,
            client_uri TEXT,
            logo_uri TEXT,
            tos_uri TEXT,
            policy_uri TEXT,
            registered_at INTEGER NOT NULL,
            registration TEXT NOT NULL,
            key_id TEXT NOT NULL,
            signature BLOB NOT NULL
        )""",
    ),
    (
        """CREATE TABLE pending (
            id TEXT NOT NULL PRIMARY KEY,
            subject TEXT NOT NULL,
            payload TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            expires_at INTEGER NOT NULL
        )""",
        "CREATE INDEX pending_by_subject ON pending (subject, created_at)",
        "CREATE INDEX pending_by_expiry ON pending (expires_at)",
        """CREATE TABLE used_bindings (
            key TEXT NOT NULL PRIMARY KEY,
            expires_at INTEGER NOT NULL
        )""",
        "CREATE INDEX used_bindings_by_expiry ON used_bindings (expires_at)",
        "CREATE TABLE counters (name TEXT NOT NULL PRIMARY KEY, value INTEGER NOT NULL)",
        "INSERT INTO counters (name, value) VALUES ('consents', 0)",
        "INSERT INTO counters (name, value) VALUES ('clients', 0)",
        """CREATE TRIGGER clients_counter_insert AFTER INSERT ON clients BEGIN
            UPDATE counters SET value = value + 1 WHERE name = 'clients'; END""",
        """CREATE TRIGGER clients_counter_update AFTER UPDATE ON clients BEGIN
            UPDATE counters SET value = value + 1 WHERE name = 'clients'; END""",
        """CREATE TRIGGER clients_counter_delete AFTER DELETE ON clients BEGIN
            UPDATE counters SET value = value + 1 WHERE name = 'clients'; END""",
        """CREATE TRIGGER consents_counter_insert AFTER INSERT ON consents BEGIN
            UPDATE counters SET value = value + 1 WHERE name = 'consents'; END""",
        """CREATE TRIGGER consents_counter_update AFTER UPDATE ON consents BEGIN
            UPDATE counters SET value = value + 1 WHERE name = 'consents'; END""",
        """CREATE TRIGGER consents_counter_delete AFTER DELETE ON consents BEGIN
            UPDATE counters SET value = value + 1 WHERE name = 'consents'; END""",
    ),
    (
        # Pending rows become signed records (id, subject, source, expiry and payload
        # under one signature); rows of the old, unsigned form are consent pages of a
        # few minutes and are dropped rather than carried over unsigned.
        "DROP TABLE pending",
        """CREATE TABLE pending (
            id TEXT NOT NULL PRIMARY KEY,
            subject TEXT NOT NULL,
            source TEXT NOT NULL,
            payload TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            expires_at INTEGER NOT NULL,
            key_id TEXT NOT NULL,
            signature BLOB NOT NULL
        )""",
        "CREATE INDEX pending_by_subject ON pending (subject, created_at)",
        "CREATE INDEX pending_by_source ON pending (source, created_at)",
        "CREATE INDEX pending_by_expiry ON pending (expires_at)",
        # For purging records past their retention period.
        "CREATE INDEX consents_by_expiry ON consents (expires_at)",
        "CREATE INDEX consents_by_revocation ON consents (revoked_at)",
    ),
    (
        # Settings every process sharing the store must agree on (the cookie secret's
        # fingerprint), claimed by the first process that starts.
        "CREATE TABLE settings (name TEXT NOT NULL PRIMARY KEY, value TEXT NOT NULL)",
    ),
    (
        # The hash-chained audit trail (consentgate.audit.trail). seq
        # is the chain's position and the rowid; it is assigned by the appender, not
        # by AUTOINCREMENT, because it is part of what each row's hash covers.
        """CREATE TABLE audit (
            seq INTEGER NOT NULL PRIMARY KEY,
            at INTEGER NOT NULL,
            event TEXT NOT NULL,
            request_id TEXT NOT NULL,
            actor TEXT NOT NULL,
            client_id TEXT NOT NULL,
            redirect_uri TEXT NOT NULL,
            scopes TEXT NOT NULL,
            subject TEXT NOT NULL,
            detail TEXT NOT NULL,
            prev TEXT NOT NULL,
            hash TEXT NOT NULL,
            key_id TEXT NOT NULL,
            signature BLOB NOT NULL
        )""",
        "CREATE INDEX audit_by_time ON audit (at)",
        "CREATE INDEX audit_by_client ON audit (client_id, seq)",
        "CREATE INDEX audit_by_event ON audit (event, seq)",
    ),
    ("CREATE INDEX audit_by_request ON audit (request_id, seq)",),
    (
        # The gates attached to the store, each refreshing its own row
        # (consentgate.core.attached_gates), and the compatibility level of each
        # schema version from this one on (consentgate.core.schema_versions).
        """CREATE TABLE gates (
            instance TEXT NOT NULL PRIMARY KEY,
            schema_version INTEGER NOT NULL,
            software TEXT NOT NULL,
            host TEXT NOT NULL,
            pid INTEGER NOT NULL,
            started_at INTEGER NOT NULL,
            seen_at INTEGER NOT NULL,
            refresh_every INTEGER NOT NULL
        )""",
        """CREATE TABLE schema_levels (
            version INTEGER NOT NULL PRIMARY KEY,
            compatible_from INTEGER NOT NULL
        )""",
    ),
    (
        # The first time the gate saw each client named by a URL (written once, by
        # whichever gate saw it first: consentgate.store.parts.first_sightings).
        """CREATE TABLE client_sightings (
            client_id TEXT NOT NULL PRIMARY KEY,
            first_seen_at INTEGER NOT NULL,
            key_id TEXT NOT NULL,
            signature BLOB NOT NULL
        )""",
    ),
)
SCHEMA_VERSION: Final = len(MIGRATIONS)
#: Per version, the oldest version whose code runs on it (kept beside the migrations).
LEVELS: Final = SQLITE_COMPATIBLE_FROM
#: The first version that records its level in ``schema_levels``.
LEVELS_FROM: Final = 7
_LEVEL: Final = "SELECT compatible_from FROM schema_levels WHERE version = ?"
_GATES: Final = f"SELECT {', '.join(GATE_COLUMNS)} FROM gates"  # noqa: S608
#: ``DELETE ... RETURNING`` needs SQLite 3.35 (2021).
MIN_SQLITE_VERSION: Final = (3, 35, 0)


def recorded_level(db: sqlite3.Connection, version: int) -> int | None:
    """The level the file records for ``version``; None when it records none (no such
    row, or no ``schema_levels`` table: no promise). Other errors propagate."""
    try:
        rows = db.execute(_LEVEL, (version,)).fetchall()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return None
        raise
    return int(rows[0][0]) if rows else None


async def _rows_if_there(
    db: aiosqlite.Connection, sql: str, params: Sequence[object] = ()
) -> list[sqlite3.Row] | None:
    """The rows of ``sql``; None when its table does not exist (an older schema)."""
    try:
        return list(await db.execute_fetchall(sql, params))
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return None
        raise


async def _recorded_level(db: aiosqlite.Connection, version: int) -> int | None:
    rows = await _rows_if_there(db, _LEVEL, (version,))
    return int(rows[0][0]) if rows else None


async def _attached(db: aiosqlite.Connection) -> list[AttachedGate]:
    """The gates attached to the file (none before the ``gates`` table exists)."""
    return [AttachedGate.from_row(row) for row in await _rows_if_there(db, _GATES) or []]


async def migrate(
    db: aiosqlite.Connection,
    path: Path,
    *,
    migrations: Sequence[Sequence[str]] = MIGRATIONS,
    levels: Sequence[int] = LEVELS,
) -> tuple[int, int]:
    """Bring the file at ``path`` to :data:`SCHEMA_VERSION`, in one transaction; returns
    the schema versions before and after (a newer file this code runs on: its own
    version, twice, untouched). Refuses, changing nothing, while a fresh attached gate
    runs code the target no longer runs (:class:`~consentgate.core.attached_gates.
    GatesAttached`).

    ``migrations`` and ``levels``: this code's, unless a test brings a schema of a
    later release (a breaking step no release has yet), in the same form."""
    target = len(migrations)
    await db.execute("BEGIN IMMEDIATE")
    try:
        version = int(next(iter(await db.execute_fetchall("PRAGMA user_version")))[0])
        if version > target:
            if not runs_on(target, version, await _recorded_level(db, version)):
                raise StartupError(
                    f"the consent store {path} has schema version {version}, newer than the "
                    f"{target} this consentgate knows; upgrade consentgate"
                )
            await db.execute("COMMIT")
            _log.info(
                "consent store %s has schema version %d, newer than this consentgate's "
                "%d, which it keeps working",
                path,
                version,
                target,
            )
            return version, version
        if version == 0:
            other = list(
                await db.execute_fetchall(
                    "SELECT name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' LIMIT 1"
                )
            )
            if other:
                raise StartupError(
                    f"the consent store {path} is a SQLite database of something else "
                    f"(it has a {other[0][0]!r} and no consentgate schema version)"
                )
        if version < target:
            level = compatible_from(levels, target)
            now = int(time.time())
            blockers = blocking(await _attached(db), compatible_from=level, now=now)
            if blockers:
                raise gates_attached(
                    str(path), blockers, target=target, compatible_from=level, now=now
                )
        for index in range(version, target):
            for statement in migrations[index]:
                await db.execute(statement)
            if index + 1 >= LEVELS_FROM:
                await db.execute(
                    "INSERT OR REPLACE INTO schema_levels (version, compatible_from) VALUES (?, ?)",
                    (index + 1, levels[index]),
                )
        # Written even when unchanged: the write that proves the file is writable
        # now, not at the first approval.
        await db.execute(f"PRAGMA user_version = {target}")
        await db.execute("COMMIT")
    except BaseException:
        await rollback(db)
        raise
    if version != target:
        _log.info(
            "consent store %s migrated from schema version %d to %d",
            path,
            version,
            target,
        )
    return version, target


async def rollback(db: aiosqlite.Connection) -> None:
    """Roll back the open transaction, if any."""
    # Fails harmlessly when no transaction is open (SQLite rolls back by itself
    # after some errors).
    with contextlib.suppress(sqlite3.Error):
        await db.execute("ROLLBACK")
