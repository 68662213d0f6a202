"""The consent store: who approved which client, signed, in SQLite.

The store answers one question on every authorization request: *has this
browser (subject) approved this client, for this exact redirect_uri, these
scopes and this resource?* It must answer quickly and truthfully, and a record
that someone edited in the database file must never be honoured. It is usable
on its own, in-process, by a Python OAuth proxy that wants consent records
without running the gate: nothing here imports aiohttp.

Decisions and their sources (REFERENCES.md):

* Server-side records with expiry, revocation (by id, client, redirect_uri,
  subject, or all), an audit log and key rotation, the weaknesses FastMCP's
  cookie-only consent could not fix; listing and revoking by subject, by client
  or one by one follows Hydra's admin API conventions.
* Consent is keyed on the exact redirect_uri as well as the client_id: behind a
  single-client proxy the redirect_uri is the only per-client identity (MCP
  2025-11-25, "Confused Deputy Problem"; RFC 9700 exact redirect matching).
* Every record is Ed25519-signed (:mod:`consentgate.core.records`), ``revoked_at``
  included; a row whose signature fails, whose key is unknown or whose fields
  were changed is treated as absent, logged on ``consentgate.audit`` as a tamper
  event and counted in :attr:`ConsentStore.tamper_events`. Revoking re-signs the
  row with the active key, so setting ``revoked_at`` back to NULL is an edit.
  Limit: signatures detect edits and forged rows, not the deletion of a row nor
  the rollback of a whole row to an earlier signed version of itself.
* aiosqlite with one long-lived connection opened and closed with the app,
  WAL (readers never wait for the writer), ``synchronous=NORMAL`` (durable
  across application crashes; a power cut may lose the last transactions, not
  corrupt the file), a busy timeout so two processes (the gate and a CLI
  command) wait for each other instead of failing with "database is locked",
  and ``BEGIN IMMEDIATE`` for read-then-write so a transaction takes the write
  lock before it reads, never upgrading a read snapshot (which SQLite cannot do
  after another writer committed). Always :meth:`ConsentStore.close` it:
  aiosqlite's worker thread is not a daemon and keeps the process alive.
* A round trip through aiosqlite costs about 100 µs, a plain ``sqlite3`` call
  about 5 µs (measured, REFERENCES.md), so verified answers are cached in
  memory. The cache must not outlive a revocation made by another process (the
  CLI's ``consents revoke`` while the gate runs): a second, plain ``sqlite3``
  connection reads ``PRAGMA data_version`` (it changes whenever another
  connection commits; a microsecond) before each cached answer, and when it
  moved, a counter that triggers bump on every change to ``consents``. Writes
  to the pending and binding tables therefore do not empty the cache, any
  change to a consent row does, wherever it came from.

Schema (``PRAGMA user_version`` is the schema version; migrations only go
forward and run inside one ``BEGIN IMMEDIATE`` transaction at open):

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
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import dataclasses
import logging
import os
import secrets
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Literal, TypeVar

import aiosqlite

from consentgate.core.clock import Clock, system_clock
from consentgate.core.errors import StartupError
from consentgate.core.events import AuditEvent, AuditTrail
from consentgate.core.keys import KeyRing
from consentgate.core.records import (
    CLIENT_COLUMNS,
    CONSENT_COLUMNS,
    MAX_CLIENT_ID_LENGTH,
    MAX_PENDING_PAYLOAD,
    MAX_SCOPE_LENGTH,
    MAX_SUBJECT_LENGTH,
    MAX_URI_LENGTH,
    PENDING_COLUMNS,
    ClientRecord,
    ConsentRecord,
    MalformedRecord,
    PendingRecord,
    check_length,
    check_text,
    scope_set,
    sign_record,
    verification_failure,
)

_log = logging.getLogger("consentgate")

T = TypeVar("T")
_R = TypeVar("_R", ConsentRecord, ClientRecord, PendingRecord)

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
)
SCHEMA_VERSION: Final = len(MIGRATIONS)
#: ``DELETE ... RETURNING`` needs SQLite 3.35 (2021).
MIN_SQLITE_VERSION: Final = (3, 35, 0)

_CONSENT_SELECT: Final = ", ".join(CONSENT_COLUMNS)
_CLIENT_SELECT: Final = ", ".join(CLIENT_COLUMNS)
_PENDING_SELECT: Final = ", ".join(PENDING_COLUMNS)
_INSERT_PENDING: Final = (
    f"INSERT INTO pending ({_PENDING_SELECT}) "  # noqa: S608 - constant column names
    f"VALUES ({', '.join('?' * len(PENDING_COLUMNS))})"
)
_INSERT_CONSENT: Final = (
    f"INSERT INTO consents ({_CONSENT_SELECT}) "  # noqa: S608 - constant column names
    f"VALUES ({', '.join('?' * len(CONSENT_COLUMNS))})"
)
_UPSERT_CLIENT: Final = (
    f"INSERT OR REPLACE INTO clients ({_CLIENT_SELECT}) "  # noqa: S608 - constant column names
    f"VALUES ({', '.join('?' * len(CLIENT_COLUMNS))})"
)
_LOOKUP: Final = (
    f"SELECT {_CONSENT_SELECT} FROM consents "  # noqa: S608 - constant column names
    "WHERE subject = ? AND client_id = ? AND redirect_uri = ? AND resource = ? "
    "AND expires_at > ? AND revoked_at IS NULL"
)
#: Only grows: any change to a consent or client row, by any process, moves it.
_COUNTER: Final = "SELECT sum(value) FROM counters"
_REVOKE_WHERE: Final[dict[str, str]] = {
    "id": "id = ?",
    "client_id": "client_id = ?",
    "redirect_uri": "redirect_uri = ?",
    "subject": "subject = ?",
    "all": "1 = 1",
}
_PAGE: Final = 500
_PROBE_TIMEOUT: Final = 0.05

Grants = tuple[tuple[frozenset[str], int], ...]
_Key = tuple[str, str, str, str]
RecordKind = Literal["consent", "client", "pending"]


@dataclass(frozen=True, slots=True)
class VerificationFailure:
    """A stored row that is not honoured, and why."""

    kind: RecordKind
    id: str
    reason: str


@dataclass(frozen=True, slots=True)
class VerificationReport:
    """What :meth:`ConsentStore.verify_all` checked and which rows failed."""

    checked: int
    failures: tuple[VerificationFailure, ...]

    @property
    def ok(self) -> bool:
        return not self.failures


@dataclass(frozen=True, slots=True)
class PendingRow:
    """A consent page waiting for an answer, verified; ``payload`` is opaque to the store."""

    id: str
    subject: str
    payload: str
    created_at: int
    expires_at: int
    source: str = ""


class PendingFull(Exception):
    """The store holds as many pending consent pages as it was allowed (``max_total``).

    The gate answers 503 with a page asking to try again shortly: refusing a new
    page keeps every page already shown answerable, where dropping the oldest would
    let a flood invalidate the pages real people are reading.
    """


def _startup_error(path: Path, exc: sqlite3.Error) -> StartupError:
    """One line naming the path and what to do, for an error while opening the store."""
    name = getattr(exc, "sqlite_errorname", "")
    if name == "SQLITE_NOTADB":
        return StartupError(
            f"the consent store {path} is not a SQLite database (corrupt, or another kind of file)"
        )
    if name == "SQLITE_CORRUPT":
        return StartupError(f"the consent store {path} is corrupt ({exc})")
    if name.startswith("SQLITE_READONLY"):
        return StartupError(
            f"the consent store {path} is read-only ({exc}); the gate must be able to write "
            f"it and to create {path.name}-wal and {path.name}-shm in {path.parent}"
        )
    if name == "SQLITE_CANTOPEN":
        return StartupError(
            f"cannot open the consent store {path}: check that {path.parent} exists and is writable"
        )
    if name == "SQLITE_BUSY":
        return StartupError(f"the consent store {path} stayed locked by another process ({exc})")
    return StartupError(f"cannot open the consent store {path}: {exc}")


def _check_location(path: Path, *, create: bool) -> None:
    if sqlite3.sqlite_version_info < MIN_SQLITE_VERSION:
        raise StartupError(
            f"SQLite {sqlite3.sqlite_version} is too old for the consent store; "
            f"{'.'.join(map(str, MIN_SQLITE_VERSION))} or newer is needed"
        )
    parent = path.parent
    if not parent.is_dir():
        raise StartupError(f"the directory of the consent store {path} does not exist: {parent}")
    if path.is_dir():
        raise StartupError(f"the consent store {path} is a directory, not a file")
    if path.exists():
        return
    if not create:
        raise StartupError(
            f"the consent store {path} does not exist; the gate creates it when it first starts"
        )
    try:
        # Created 0600 by us rather than 0644 by SQLite: pending rows hold
        # authorization requests. SQLite gives -wal and -shm the same mode.
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass
    except OSError as exc:
        raise StartupError(
            f"cannot create the consent store {path}: {exc.strerror or exc} (is {parent} writable?)"
        ) from None


async def _configure(db: aiosqlite.Connection, path: Path, busy_timeout: float) -> None:
    await db.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
    rows = list(await db.execute_fetchall("PRAGMA journal_mode = WAL"))
    mode = str(rows[0][0]).lower() if rows else ""
    if mode != "wal":
        raise StartupError(
            f"the consent store {path} cannot use write-ahead logging (journal mode {mode!r}); "
            "put it on a local file system"
        )
    await db.execute("PRAGMA synchronous = NORMAL")
    # The schema of a file someone else may have written is not trusted to call
    # functions with side effects (SQLite's defense against crafted databases).
    await db.execute("PRAGMA trusted_schema = OFF")


async def _migrate(db: aiosqlite.Connection, path: Path) -> None:
    await db.execute("BEGIN IMMEDIATE")
    try:
        version = int(next(iter(await db.execute_fetchall("PRAGMA user_version")))[0])
        if version > SCHEMA_VERSION:
            raise StartupError(
                f"the consent store {path} has schema version {version}, newer than the "
                f"{SCHEMA_VERSION} this consentgate knows; upgrade consentgate"
            )
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
        for index in range(version, SCHEMA_VERSION):
            for statement in MIGRATIONS[index]:
                await db.execute(statement)
        # Written even when unchanged: the write that proves the file is writable
        # now, not at the first approval.
        await db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        await db.execute("COMMIT")
    except BaseException:
        await _rollback(db)
        raise
    if version != SCHEMA_VERSION:
        _log.info(
            "consent store %s migrated from schema version %d to %d",
            path,
            version,
            SCHEMA_VERSION,
        )


async def _rollback(db: aiosqlite.Connection) -> None:
    # Fails harmlessly when no transaction is open (SQLite rolls back by itself
    # after some errors).
    with contextlib.suppress(sqlite3.Error):
        await db.execute("ROLLBACK")


def _covered(wanted: frozenset[str], grants: Grants, now: float) -> bool:
    """Whether an unexpired grant covers ``wanted`` (subset rule; empty only by empty)."""
    if not wanted:
        return any(now < expires and not granted for granted, expires in grants)
    return any(now < expires and wanted <= granted for granted, expires in grants)


def _text_or_repr(value: object) -> str:
    return value if isinstance(value, str) else repr(value)[:80]


def _storable(*values: object) -> bool:
    """False when a lookup value cannot be in any record (so the answer is no)."""
    for value in values:
        if not isinstance(value, str):
            raise TypeError(f"expected a string, got {type(value).__name__}")
        try:
            check_text("value", value, allow_empty=True)
        except ValueError:
            return False
    return True


class ConsentStore:
    """Signed consent records and client registrations in one SQLite file.

    Open with :meth:`open` and close with :meth:`close`, or use
    ``async with await ConsentStore.open(path, keyring) as store:``.
    Methods are coroutines; all of them may be called concurrently.
    """

    def __init__(  # noqa: PLR0917 - private; callers use open()
        self,
        path: Path,
        db: aiosqlite.Connection,
        probe: sqlite3.Connection,
        keyring: KeyRing,
        clock: Clock,
        cache_size: int,
        audit: AuditTrail,
    ) -> None:
        """Use :meth:`open`; the constructor only assembles opened parts."""
        self.path = path
        self.audit = audit
        self.clock = clock
        self.tamper_events = 0
        self._db = db
        self._probe = probe
        self._keyring = keyring
        self._lock = asyncio.Lock()
        self._inflight: set[asyncio.Task[Any]] = set()
        self._closed = False
        self._cache: dict[_Key, Grants] = {}
        self._clients: dict[str, ClientRecord | None] = {}
        self._cache_size = cache_size
        self._generation = 0
        self._seen_data_version: int | None = None
        self._seen_counter: int | None = None

    # --- lifecycle ---------------------------------------------------------------

    @classmethod
    async def open(
        cls,
        path: str | os.PathLike[str],
        keyring: KeyRing,
        *,
        clock: Clock = system_clock,
        create: bool = True,
        busy_timeout: float = 5.0,
        cache_size: int = 10_000,
        audit: AuditTrail | None = None,
    ) -> ConsentStore:
        """Open (and create or migrate) the store at ``path``.

        ``create=False`` refuses a missing file (the CLI must not create an empty
        store next to a typo). ``cache_size=0`` disables the answer cache.
        Raises :class:`StartupError` with one line naming the path for a missing
        directory, a read-only file or directory, a file that is not a SQLite
        database, or a schema version newer than this code knows.
        ``audit`` receives the store's events (tamper, recorded, revoked, purged);
        by default they go to the ``consentgate.audit`` log.
        """
        if busy_timeout <= 0 or cache_size < 0:
            raise ValueError("busy_timeout must be positive and cache_size not negative")
        file = Path(path)
        _check_location(file, create=create)
        db: aiosqlite.Connection | None = None
        probe: sqlite3.Connection | None = None
        try:
            db = await aiosqlite.connect(file, isolation_level=None, timeout=busy_timeout)
            await _configure(db, file, busy_timeout)
            await _migrate(db, file)
            probe = sqlite3.connect(file, isolation_level=None, timeout=_PROBE_TIMEOUT)
            probe.execute(_COUNTER).fetchall()
        except BaseException as exc:
            if probe is not None:
                probe.close()
            if db is not None:
                try:
                    await db.close()
                except sqlite3.Error:
                    _log.debug("closing the consent store after a failed open", exc_info=True)
            if isinstance(exc, sqlite3.Error):
                raise _startup_error(file, exc) from None
            raise
        return cls(file, db, probe, keyring, clock, cache_size, audit or AuditTrail())

    async def close(self) -> None:
        """Finish in-flight writes, then close both connections. Idempotent.

        Shielded: a shutdown that cancels the caller must not leave aiosqlite's
        non-daemon thread running, which would keep the process alive.
        """
        if self._closed:
            return
        self._closed = True

        async def finish() -> None:
            if self._inflight:
                await asyncio.gather(*self._inflight, return_exceptions=True)
            async with self._lock:
                self._probe.close()
                await self._db.close()

        await asyncio.shield(asyncio.ensure_future(finish()))

    async def __aenter__(self) -> ConsentStore:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def keyring(self) -> KeyRing:
        return self._keyring

    def reload_keys(self, keyring: KeyRing) -> None:
        """Use a new key ring (after ``keys rotate`` or removing a key); empties the cache."""
        self._keyring = keyring
        self._invalidate()

    async def ping(self) -> None:
        """Readiness: one trivial query through the store's connection; raises on failure."""
        await self._read("SELECT 1", ())

    # --- plumbing ----------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("the consent store is closed")

    async def _read(self, sql: str, params: Sequence[Any]) -> builtins.list[Sequence[Any]]:
        self._check_open()
        async with self._lock:
            self._check_open()  # close() may have run while this read waited for the lock
            return builtins.list(await self._db.execute_fetchall(sql, params))

    async def _write(self, body: Callable[[aiosqlite.Connection], Awaitable[T]]) -> T:
        """Run ``body`` in one ``BEGIN IMMEDIATE`` transaction, shielded from cancellation.

        A request handler cancelled by a client disconnect must not leave the
        shared connection inside an open transaction (REFERENCES.md: "shield the
        store write so it is not cancelled half way"); the lock keeps two
        coroutines from interleaving statements on the one connection.
        """
        self._check_open()

        async def transaction() -> T:
            async with self._lock:
                db = self._db
                await db.execute("BEGIN IMMEDIATE")
                try:
                    result = await body(db)
                    await db.execute("COMMIT")
                except BaseException:
                    await _rollback(db)
                    raise
                return result

        task = asyncio.ensure_future(transaction())
        self._inflight.add(task)
        task.add_done_callback(self._forget)
        return await asyncio.shield(task)

    async def _write_one(self, sql: str, params: Sequence[Any]) -> builtins.list[Sequence[Any]]:
        """One statement, atomic on its own in autocommit mode: one round trip to the
        database thread instead of three (BEGIN, statement, COMMIT). Shielded and
        locked like :meth:`_write`."""
        self._check_open()

        async def statement() -> builtins.list[Sequence[Any]]:
            async with self._lock:
                return builtins.list(await self._db.execute_fetchall(sql, params))

        task = asyncio.ensure_future(statement())
        self._inflight.add(task)
        task.add_done_callback(self._forget)
        return await asyncio.shield(task)

    def _forget(self, task: asyncio.Task[Any]) -> None:
        self._inflight.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: a caller that was cancelled never will

    def _tamper(self, kind: RecordKind, ident: object, reason: str) -> VerificationFailure:
        self.tamper_events += 1
        failure = VerificationFailure(kind, _text_or_repr(ident), reason)
        self.audit.emit(
            AuditEvent(
                "tamper",
                f"tamper event: {kind} record {failure.id!r} is not honoured: {reason}",
                severity="warning",
                fields={"kind": kind, "id": failure.id, "reason": reason},
            )
        )
        return failure

    def _verified(
        self,
        kind: RecordKind,
        parse: Callable[[Sequence[Any]], _R],
        row: Sequence[Any],
        failures: builtins.list[VerificationFailure] | None,
    ) -> _R | None:
        """The record in ``row`` if it verifies; else a tamper event, and None."""
        try:
            record = parse(row)
            reason = verification_failure(record, self._keyring)
        except MalformedRecord as exc:
            reason = f"malformed row: {exc}"
        if reason is None:
            return record
        failure = self._tamper(kind, row[0] if row else None, reason)
        if failures is not None:
            failures.append(failure)
        return None

    def _verified_consent(
        self, row: Sequence[Any], failures: builtins.list[VerificationFailure] | None = None
    ) -> ConsentRecord | None:
        return self._verified("consent", ConsentRecord.from_row, row, failures)

    def _verified_client(
        self, row: Sequence[Any], failures: builtins.list[VerificationFailure] | None = None
    ) -> ClientRecord | None:
        return self._verified("client", ClientRecord.from_row, row, failures)

    def _verified_pending(
        self, row: Sequence[Any], failures: builtins.list[VerificationFailure] | None = None
    ) -> PendingRow | None:
        record = self._verified("pending", PendingRecord.from_row, row, failures)
        if record is None:
            return None
        return PendingRow(
            record.id,
            record.subject,
            record.payload,
            record.created_at,
            record.expires_at,
            record.source,
        )

    # --- the answer cache --------------------------------------------------------

    def _invalidate(self) -> None:
        self._cache.clear()
        self._clients.clear()
        self._generation += 1

    async def _counter(self, db: aiosqlite.Connection) -> int:
        rows = builtins.list(await db.execute_fetchall(_COUNTER))
        return int(rows[0][0] or 0)

    def _invalidate_after_own_write(
        self, before: int, after: int, *, key: _Key | None = None, client_id: str | None = None
    ) -> None:
        """Forget only what this process's own write changed, when that is all that changed.

        ``before`` and ``after`` are the change counter read inside the write's
        transaction. If ``before`` is the counter the cache was last filled under, no
        other process changed anything in between, so dropping the one key (or client)
        and moving the seen counter to ``after`` keeps every other cached answer
        correct: an approval no longer empties the decision cache for everyone
        (hardening issue #10, point 3). Otherwise everything is dropped, as before.
        The generation moves either way, so a read already in flight does not put a
        stale answer back.
        """
        if self._seen_counter is None or before != self._seen_counter:
            self._invalidate()
            return
        self._generation += 1
        if key is not None:
            self._cache.pop(key, None)
        if client_id is not None:
            self._clients.pop(client_id, None)
        self._seen_counter = after
        self._seen_data_version = None  # our commit moved it; re-read with the counter

    def _cache_is_current(self) -> bool:
        """Empty the cache if any consent row changed since it was filled, in any process.

        ``PRAGMA data_version`` on the probe connection moves whenever another
        connection commits; only then is the trigger-maintained counter read.
        Any error means "cannot tell": the cache is emptied and not used.
        """
        try:
            version = self._probe.execute("PRAGMA data_version").fetchall()[0][0]
            if version == self._seen_data_version:
                return True
            counter = self._probe.execute(_COUNTER).fetchall()[0][0]
        except (sqlite3.Error, IndexError):
            self._seen_data_version = None
            self._invalidate()
            return False
        self._seen_data_version = version
        if counter != self._seen_counter:
            self._seen_counter = counter
            self._invalidate()
        return True

    def _cache_put(self, key: _Key, grants: Grants) -> None:
        if len(self._cache) >= self._cache_size:
            del self._cache[next(iter(self._cache))]  # oldest first: dicts keep order
        self._cache[key] = grants

    # --- consents ----------------------------------------------------------------

    async def record(
        self,
        subject: str,
        client_id: str,
        redirect_uri: str,
        scopes: Iterable[str],
        resource: str = "",
        *,
        ttl: float,
    ) -> ConsentRecord:
        """Store and return a signed approval valid for ``ttl`` seconds from now.

        ``resource`` is the RFC 8707 resource indicator, ``""`` when none was sent.
        """
        check_length("subject", check_text("subject", subject), MAX_SUBJECT_LENGTH)
        check_length("client_id", check_text("client_id", client_id), MAX_CLIENT_ID_LENGTH)
        check_length("redirect_uri", check_text("redirect_uri", redirect_uri), MAX_URI_LENGTH)
        check_length("resource", check_text("resource", resource, allow_empty=True), MAX_URI_LENGTH)
        granted = scope_set(scopes)
        check_length("scopes", " ".join(sorted(granted)), MAX_SCOPE_LENGTH)
        if not ttl >= 1:
            raise ValueError(f"ttl must be at least one second, got {ttl!r}")
        key: _Key = (subject, client_id, redirect_uri, resource)
        now = int(self.clock())
        unsigned = ConsentRecord(
            id=secrets.token_urlsafe(16),
            subject=subject,
            client_id=client_id,
            redirect_uri=redirect_uri,
            scopes=granted,
            resource=resource,
            granted_at=now,
            expires_at=now + int(ttl),
            revoked_at=None,
            key_id="",
            signature=b"",
        )

        async def upsert(db: aiosqlite.Connection) -> tuple[ConsentRecord, bool, int, int]:
            """Refresh an identical active approval, else insert a new record: the same
            person approving the same thing again must not add a row each time."""
            before = await self._counter(db)
            rows = builtins.list(await db.execute_fetchall(_LOOKUP, (*key, now)))
            for row in rows:
                existing = self._verified_consent(row)
                if existing is None or existing.scopes != granted:
                    continue
                refreshed = sign_record(
                    dataclasses.replace(
                        existing, expires_at=max(unsigned.expires_at, existing.expires_at)
                    ),
                    self._keyring,
                )
                await db.execute(
                    "UPDATE consents SET expires_at = ?, key_id = ?, signature = ? "
                    "WHERE id = ? AND revoked_at IS NULL",
                    (refreshed.expires_at, refreshed.key_id, refreshed.signature, existing.id),
                )
                return refreshed, True, before, await self._counter(db)
            record = sign_record(unsigned, self._keyring)
            await db.execute(_INSERT_CONSENT, record.to_row())
            return record, False, before, await self._counter(db)

        record, refreshed, before, after = await self._write(upsert)
        self._invalidate_after_own_write(before, after, key=key)
        verb = "refreshed" if refreshed else "recorded"
        self.audit.emit(
            AuditEvent(
                f"consent_{verb}",
                f"consent {record.id} {verb} for client {client_id!r} "
                f"redirect_uri {redirect_uri!r}",
                fields={
                    "id": record.id,
                    "subject": subject,
                    "client_id": client_id,
                    "redirect_uri": redirect_uri,
                    "scopes": " ".join(sorted(granted)),
                    "resource": resource,
                    "expires_at": record.expires_at,
                },
            )
        )
        return record

    async def is_approved(
        self,
        subject: str,
        client_id: str,
        redirect_uri: str,
        scopes: Iterable[str],
        resource: str = "",
    ) -> bool:
        """True only when an unrevoked, unexpired, validly signed record exists whose
        subject, client_id, redirect_uri and resource match exactly and whose scopes
        include every requested scope.

        A request without any scope is covered only by an approval that had none
        either: what "no scope" means is the upstream's choice (often its default
        or every registered scope), so an approval of ``read`` must not silently
        cover it (hardening issue #10, point 7).
        """
        if isinstance(scopes, str | bytes):
            raise TypeError("scopes must be a collection of strings, not a single string")
        wanted = frozenset(scopes)
        key = (subject, client_id, redirect_uri, resource)
        now = self.clock()
        use_cache = self._cache_size > 0 and self._cache_is_current()
        if use_cache:
            grants = self._cache.get(key)
            if grants is not None:
                return _covered(wanted, grants, now)
        if not _storable(*key):
            return False
        self._check_open()
        generation = self._generation
        rows = await self._read(_LOOKUP, (*key, int(now)))
        found: builtins.list[tuple[frozenset[str], int]] = []
        for row in rows:
            record = self._verified_consent(row)
            if record is None or record.revoked_at is not None:
                continue
            if (record.subject, record.client_id, record.redirect_uri, record.resource) != key:
                continue  # pragma: no cover - SQL equality already matched the signed values
            found.append((record.scopes, record.expires_at))
        grants = tuple(found)
        if use_cache and generation == self._generation:
            self._cache_put(key, grants)
        return _covered(wanted, grants, now)

    async def get(self, id: str) -> ConsentRecord | None:
        """One verified record by id (revoked or expired included), or None."""
        rows = await self._read(
            f"SELECT {_CONSENT_SELECT} FROM consents WHERE id = ?",  # noqa: S608 - constant
            (id,),
        )
        return self._verified_consent(rows[0]) if rows else None

    async def revoke(
        self,
        *,
        id: str | None = None,
        client_id: str | None = None,
        redirect_uri: str | None = None,
        subject: str | None = None,
        all: bool = False,
    ) -> int:
        """Revoke unrevoked records matching exactly one selector; returns how many.

        Each revoked row gets ``revoked_at`` and is re-signed with the active key.
        A row that fails verification is not touched (re-signing it would
        launder the edit); it stays absent and is reported as a tamper event.
        Work goes in transactions of 500 rows so a huge revocation never holds
        the write lock for long.
        """
        chosen: builtins.list[tuple[str, str | None]] = [
            (name, value)
            for name, value in (
                ("id", id),
                ("client_id", client_id),
                ("redirect_uri", redirect_uri),
                ("subject", subject),
            )
            if value is not None
        ]
        if all:
            chosen.append(("all", None))
        if len(chosen) != 1:
            raise ValueError(
                "revoke needs exactly one of id, client_id, redirect_uri, subject, all"
            )
        selector, value = chosen[0]
        if value is not None:
            check_text(selector, value)
        params: tuple[Any, ...] = () if value is None else (value,)
        sql = (
            f"SELECT rowid, {_CONSENT_SELECT} FROM consents "  # noqa: S608 - constant fragments
            f"WHERE revoked_at IS NULL AND {_REVOKE_WHERE[selector]} AND rowid > ? "
            "ORDER BY rowid LIMIT ?"
        )
        total = 0
        last_rowid = 0
        while True:
            batch_last = last_rowid

            async def batch(
                db: aiosqlite.Connection, after: int = batch_last
            ) -> tuple[int, int, bool]:
                rows = builtins.list(await db.execute_fetchall(sql, (*params, after, _PAGE)))
                now = int(self.clock())
                ring = self._keyring
                updates = []
                for row in rows:
                    record = self._verified_consent(row[1:])
                    if record is None:
                        continue
                    revoked = sign_record(dataclasses.replace(record, revoked_at=now), ring)
                    updates.append((now, revoked.key_id, revoked.signature, row[0]))
                if updates:
                    await db.executemany(
                        "UPDATE consents SET revoked_at = ?, key_id = ?, signature = ? "
                        "WHERE rowid = ? AND revoked_at IS NULL",
                        updates,
                    )
                newest = int(rows[-1][0]) if rows else after
                return len(updates), newest, len(rows) < _PAGE

            count, last_rowid, done = await self._write(batch)
            total += count
            if count:
                self._invalidate()
            if done:
                break
        self.audit.emit(
            AuditEvent(
                "consents_revoked",
                f"revoked {total} consent(s) by {selector}",
                fields={"selector": selector, "value": value, "count": total},
            )
        )
        return total

    async def iter_records(
        self,
        *,
        client_id: str | None = None,
        redirect_uri: str | None = None,
        subject: str | None = None,
        include_revoked: bool = True,
        include_expired: bool = True,
        failures: builtins.list[VerificationFailure] | None = None,
    ) -> AsyncIterator[ConsentRecord]:
        """Verified records matching every given filter, oldest first, page by page.

        Rows that fail verification are skipped, counted as tamper events and,
        when ``failures`` is a list, appended to it.
        """
        clauses: builtins.list[str] = []
        params: builtins.list[Any] = []
        for column, value in (
            ("client_id", client_id),
            ("redirect_uri", redirect_uri),
            ("subject", subject),
        ):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        if not include_revoked:
            clauses.append("revoked_at IS NULL")
        now = self.clock()
        if not include_expired:
            clauses.append("expires_at > ?")
            params.append(int(now))
        clauses.append("rowid > ?")
        sql = (
            f"SELECT rowid, {_CONSENT_SELECT} FROM consents "  # noqa: S608 - constant fragments
            f"WHERE {' AND '.join(clauses)} ORDER BY rowid LIMIT {_PAGE}"
        )
        last_rowid = 0
        while True:
            rows = await self._read(sql, (*params, last_rowid))
            for row in rows:
                record = self._verified_consent(row[1:], failures)
                if record is None:
                    continue
                if not include_expired and record.status(now) == "expired":
                    continue
                yield record
            if len(rows) < _PAGE:
                return
            last_rowid = int(rows[-1][0])

    async def list(
        self,
        *,
        client_id: str | None = None,
        redirect_uri: str | None = None,
        subject: str | None = None,
        include_revoked: bool = True,
        include_expired: bool = True,
    ) -> builtins.list[ConsentRecord]:
        """Verified records matching every given filter (see :meth:`iter_records`).

        Rows that fail verification are not listed; :meth:`verify_all` names them.
        """
        return [
            record
            async for record in self.iter_records(
                client_id=client_id,
                redirect_uri=redirect_uri,
                subject=subject,
                include_revoked=include_revoked,
                include_expired=include_expired,
            )
        ]

    async def verify_all(self) -> VerificationReport:
        """Check the signature of every consent, client and pending row; report failures."""
        failures: builtins.list[VerificationFailure] = []
        checked = 0
        verifiers: tuple[tuple[str, str, Callable[..., object]], ...] = (
            ("consents", _CONSENT_SELECT, self._verified_consent),
            ("clients", _CLIENT_SELECT, self._verified_client),
            ("pending", _PENDING_SELECT, self._verified_pending),
        )
        for table, columns, verify in verifiers:
            sql = (
                f"SELECT rowid, {columns} FROM {table} "  # noqa: S608 - constant names
                f"WHERE rowid > ? ORDER BY rowid LIMIT {_PAGE}"
            )
            last_rowid = 0
            while True:
                rows = await self._read(sql, (last_rowid,))
                for row in rows:
                    checked += 1
                    verify(row[1:], failures)
                if len(rows) < _PAGE:
                    break
                last_rowid = int(rows[-1][0])
        return VerificationReport(checked, tuple(failures))

    # --- clients -----------------------------------------------------------------

    async def upsert_client(self, metadata: Mapping[str, Any]) -> ClientRecord:
        """Store a client from its parsed registration RESPONSE (RFC 7591 §3.2.1).

        ``client_secret`` and ``registration_access_token`` are removed before
        anything is stored. On an update the first ``registered_at`` is kept if
        the existing row verifies.
        """
        unsigned = ClientRecord.from_registration(metadata, int(self.clock()))

        async def upsert(db: aiosqlite.Connection) -> tuple[ClientRecord, int, int]:
            before = await self._counter(db)
            rows = builtins.list(
                await db.execute_fetchall(
                    f"SELECT {_CLIENT_SELECT} FROM clients WHERE client_id = ?",  # noqa: S608
                    (unsigned.client_id,),
                )
            )
            base = unsigned
            if rows:
                existing = self._verified_client(rows[0])
                if existing is not None:
                    base = dataclasses.replace(unsigned, registered_at=existing.registered_at)
            record = sign_record(base, self._keyring)
            await db.execute(_UPSERT_CLIENT, record.to_row())
            return record, before, await self._counter(db)

        record, before, after = await self._write(upsert)
        self._invalidate_after_own_write(before, after, client_id=record.client_id)
        return record

    async def get_client(self, client_id: str) -> ClientRecord | None:
        """The verified client registration, or None (unknown, or failed verification).

        Answers are cached like :meth:`is_approved`'s, and dropped whenever any
        client or consent row changes in any process: the gate looks its client up
        on every authorization, and an Ed25519 verification per request is not free.
        """
        use_cache = self._cache_size > 0 and self._cache_is_current()
        if use_cache and client_id in self._clients:
            return self._clients[client_id]
        generation = self._generation
        rows = await self._read(
            f"SELECT {_CLIENT_SELECT} FROM clients WHERE client_id = ?",  # noqa: S608 - constant
            (client_id,),
        )
        record = self._verified_client(rows[0]) if rows else None
        if use_cache and generation == self._generation:
            if len(self._clients) >= self._cache_size:
                del self._clients[next(iter(self._clients))]  # oldest first
            self._clients[client_id] = record
        return record

    async def iter_clients(
        self, *, failures: builtins.list[VerificationFailure] | None = None
    ) -> AsyncIterator[ClientRecord]:
        """Every verified client registration, oldest first."""
        sql = (
            f"SELECT rowid, {_CLIENT_SELECT} FROM clients "  # noqa: S608 - constant
            f"WHERE rowid > ? ORDER BY rowid LIMIT {_PAGE}"
        )
        last_rowid = 0
        while True:
            rows = await self._read(sql, (last_rowid,))
            for row in rows:
                record = self._verified_client(row[1:], failures)
                if record is not None:
                    yield record
            if len(rows) < _PAGE:
                return
            last_rowid = int(rows[-1][0])

    # --- pending consent pages and flow bindings ---------------------------------

    async def put_pending(
        self,
        id: str,
        subject: str,
        payload: str,
        expires_at: int,
        *,
        max_per_subject: int | None = None,
        source: str = "",
        max_per_source: int | None = None,
        max_total: int | None = None,
    ) -> None:
        """Store a signed pending consent page.

        The bounds keep a flood from filling the disk (hardening issue #10, point 1):

        * ``payload`` is at most :data:`~consentgate.core.records.MAX_PENDING_PAYLOAD`
          bytes (ValueError beyond), so rows times that bounds the bytes;
        * with ``max_per_subject``, the subject's oldest rows beyond that number are
          deleted in the same transaction (one browser cannot fill the table);
        * with ``max_per_source``, the same for ``source`` (the client's network):
          a client that drops its cookie on every request gets a new subject each
          time, but not a new address;
        * with ``max_total``, :class:`PendingFull` is raised, and nothing is written,
          when the new row would make more than that many unexpired rows.

        An existing id raises ValueError.
        """
        check_length("id", check_text("id", id), 64)
        check_length("subject", check_text("subject", subject), MAX_SUBJECT_LENGTH)
        check_length("source", check_text("source", source, allow_empty=True), 64)
        check_text("payload", payload, allow_empty=True)
        if len(payload.encode("utf-8")) > MAX_PENDING_PAYLOAD:
            raise ValueError(f"the pending payload is larger than {MAX_PENDING_PAYLOAD} bytes")
        now = int(self.clock())
        record = sign_record(
            PendingRecord(id, subject, source, payload, now, int(expires_at), "", b""),
            self._keyring,
        )

        async def put(db: aiosqlite.Connection) -> None:
            try:
                await db.execute(_INSERT_PENDING, record.to_row())
            except sqlite3.IntegrityError:
                raise ValueError("a pending row with this id exists") from None
            for column, value, limit in (
                ("subject", subject, max_per_subject),
                ("source", source, max_per_source if source else None),
            ):
                if limit is None:
                    continue
                await db.execute(
                    f"DELETE FROM pending WHERE {column} = ? AND (expires_at <= ? OR rowid IN ("  # noqa: S608 - constant column
                    f"SELECT rowid FROM pending WHERE {column} = ? "
                    "ORDER BY created_at DESC, rowid DESC LIMIT -1 OFFSET ?))",
                    (value, now, value, max(limit, 1)),
                )
            if max_total is not None:
                # Counted after the evictions: a subject or source that only replaces
                # its own oldest rows does not grow the table and is never refused.
                rows = builtins.list(
                    await db.execute_fetchall(
                        "SELECT count(*) FROM pending WHERE expires_at > ?", (now,)
                    )
                )
                if int(rows[0][0]) > max_total:
                    raise PendingFull  # the transaction is rolled back: nothing written

        await self._write(put)

    async def count_pending(self) -> int:
        """Unexpired pending rows, for tests and operators."""
        rows = await self._read(
            "SELECT count(*) FROM pending WHERE expires_at > ?", (int(self.clock()),)
        )
        return int(rows[0][0])

    async def get_pending(self, id: str) -> PendingRow | None:
        """The verified pending row, or None when absent, expired or failing verification
        (a tamper event). Does not consume it."""
        rows = await self._read(
            f"SELECT {_PENDING_SELECT} FROM pending "  # noqa: S608 - constant columns
            "WHERE id = ? AND expires_at > ?",
            (id, int(self.clock())),
        )
        return self._verified_pending(rows[0]) if rows else None

    async def take_pending(self, id: str, subject: str) -> PendingRow | None:
        """Delete and return the pending row only if it exists, is unexpired, verifies
        and belongs to ``subject``; otherwise return None. Atomic: one
        ``DELETE ... RETURNING``, so two concurrent answers cannot both take it (a row
        that fails verification is deleted too: it can never be answered).
        """

        rows = await self._write_one(
            "DELETE FROM pending WHERE id = ? AND subject = ? AND expires_at > ? "  # noqa: S608
            f"RETURNING {_PENDING_SELECT}",
            (id, subject, int(self.clock())),
        )
        if not rows:
            return None
        row = self._verified_pending(rows[0])
        if row is None or row.id != id or row.subject != subject:
            return None
        return row

    async def use_binding(self, key: str, expires_at: int) -> bool:
        """Mark the flow binding ``key`` used; False when it already was.

        The binding itself travels in a MAC-protected cookie (it proves the browser,
        the state and when it was issued); the store only remembers which bindings
        were used, until ``expires_at``, so a callback cannot be replayed — by this
        gate or by another process sharing the file. One ``INSERT``, atomic.
        """
        check_text("key", key)
        rows = await self._write_one(
            "INSERT INTO used_bindings (key, expires_at) VALUES (?, ?) "
            "ON CONFLICT (key) DO NOTHING RETURNING key",
            (key, int(expires_at)),
        )
        return bool(rows)

    async def purge_expired(self, *, keep_records: float | None = None) -> int:
        """Delete expired pending rows and used-binding marks; returns how many rows went.

        With ``keep_records`` (seconds), consent records that expired or were revoked
        longer ago than that are deleted too (``[store] keep_expired``): until then they
        are the trail of who approved what; after it they only grow the file
        (hardening issue #10, point 3). Each deletion of records is one audit line.
        """
        now = int(self.clock())

        async def purge(db: aiosqlite.Connection) -> tuple[int, int]:
            first = await db.execute("DELETE FROM pending WHERE expires_at <= ?", (now,))
            second = await db.execute("DELETE FROM used_bindings WHERE expires_at <= ?", (now,))
            records = 0
            if keep_records is not None:
                cutoff = now - int(keep_records)
                third = await db.execute(
                    "DELETE FROM consents WHERE (revoked_at IS NOT NULL AND revoked_at <= ?) "
                    "OR expires_at <= ?",
                    (cutoff, cutoff),
                )
                records = max(third.rowcount, 0)
            return max(first.rowcount, 0) + max(second.rowcount, 0), records

        transient, records = await self._write(purge)
        if records:
            self._invalidate()
            self.audit.emit(
                AuditEvent(
                    "consents_purged",
                    f"purged {records} consent record(s) expired or revoked "
                    "before the retention period",
                    fields={"count": records, "keep_seconds": int(keep_records or 0)},
                )
            )
        return transient + records
