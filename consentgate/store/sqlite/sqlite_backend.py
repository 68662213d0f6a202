"""The SQLite backend of the consent store: one file, two aiosqlite connections, all SQL.

Implements :class:`~consentgate.store.protocol.StoreBackend`. It moves rows and owns
transactions; it never signs, verifies or emits audit events (the facade does).

Decisions and their sources (docs/references.md):

* aiosqlite with two long-lived connections opened and closed with the app, one
  for writes and one for reads (``query_only``): WAL lets readers go on while a
  writer holds or waits for the write lock, so a remembered approval is not
  answered after a write stuck behind another process's lock.
  ``synchronous=NORMAL`` (durable across application crashes; a power cut may
  lose the last transactions, not corrupt the file), ``FULL`` for the commits
  that must be on disk before the person is told (approvals, revocations), a busy
  timeout so two processes (the gate and a CLI command) wait for each other
  instead of failing with "database is locked", and ``trusted_schema=OFF`` (the
  schema of a file someone else may have written does not get to call functions
  with side effects).
* Each operation waits at most the busy timeout for its connection (behind other
  requests of this process) and at most the busy timeout in SQLite (behind other
  processes): a bound of its own, never k times the timeout when k requests queue.
* ``BEGIN IMMEDIATE`` for read-then-write, so a transaction takes the write
  lock before it reads, never upgrading a read snapshot (which SQLite cannot do
  after another writer committed).
* Writes are shielded from cancellation and tracked while in flight: a request
  handler cancelled by a client disconnect must not leave the shared connection
  inside an open transaction ("shield the store write so it is not cancelled half
  way"), and :meth:`SQLiteBackend.close` waits for them. An ``asyncio.Lock`` keeps
  two coroutines from interleaving statements on the one connection. Always close
  the backend: aiosqlite's worker thread is not a daemon and keeps the process alive.
* Single statements that must be atomic (``INSERT ... ON CONFLICT DO NOTHING
  RETURNING`` for a binding or a page mark) run in autocommit mode: one round trip
  to the database thread instead of three.
* Cross-process cache invalidation. A round trip through aiosqlite costs about
  100 µs, a plain ``sqlite3`` call about 5 µs (measured, docs/references.md). The
  facade's cache must not outlive a revocation made by another process (the
  CLI's ``consents revoke`` while the gate runs): a second, plain ``sqlite3``
  "probe" connection reads ``PRAGMA data_version`` (it changes whenever another
  connection commits; a microsecond) before each cached answer, and only when it
  moved, the counter that triggers bump on every change to ``consents`` and
  ``clients`` (:mod:`consentgate.store.sqlite.sqlite_schema`). Writes to the pending and
  binding tables therefore do not empty the cache; any change to a consent or
  client row does, wherever it came from. The probe runs on the event loop
  thread, synchronously: no await when nothing changed.
* Keyset pagination on ``rowid``: the cursor the facade passes back is the last
  rowid of the previous page.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, Final, TypeVar

import aiosqlite

from consentgate.core.schema_versions import runs_on
from consentgate.core.startup_errors import StartupError
from consentgate.store.protocol import (
    Row,
    StoreTransaction,
)
from consentgate.store.sql_rows import Runner, SqlRows, SqlTransaction
from consentgate.store.sql_statements import SQLITE, Statements
from consentgate.store.sqlite.files import check_location, startup_error
from consentgate.store.sqlite.outages import file_identity, unavailable_on_failure
from consentgate.store.sqlite.sqlite_schema import (
    SCHEMA_VERSION,
    migrate,
    recorded_level,
    rollback,
)
from consentgate.store.store_errors import StoreClosed, StoreUnavailable, upgraded_past
from consentgate.store.tracked_work import TrackedWork

# Operational, not audit: a failure while cleaning up after a failed open.
_log = logging.getLogger("consentgate")


T = TypeVar("T")

_SQL: Final = Statements(SQLITE)
#: The read behind every uncached answer; served by the ``consents_lookup`` index.
LOOKUP: Final = _SQL.lookup
#: Only grows: any change to a consent or client row, by any process, moves it.
COUNTER: Final = "SELECT sum(value) FROM counters"
_PROBE_TIMEOUT: Final = 0.05


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


async def _configure_reader(db: aiosqlite.Connection, busy_timeout: float) -> None:
    """The read connection: WAL is the file's (set by the writer), so only its own
    settings; ``query_only`` so that no write can ever run on it by mistake."""
    await db.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
    await db.execute("PRAGMA trusted_schema = OFF")
    await db.execute("PRAGMA query_only = ON")


class _Runner:
    """:class:`~consentgate.store.sql_rows.Runner` on the backend's write connection."""

    __slots__ = ("_db",)

    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db

    async def fetch(self, sql: str, params: Sequence[Any]) -> list[Row]:
        return list(await self._db.execute_fetchall(sql, params))

    async def execute(self, sql: str, params: Sequence[Any]) -> int:
        cursor = await self._db.execute(sql, params)
        return max(cursor.rowcount, 0)

    async def executemany(self, sql: str, params: Sequence[Sequence[Any]]) -> None:
        await self._db.executemany(sql, params)


class _Transaction(SqlTransaction):
    """:class:`~consentgate.store.protocol.StoreTransaction` on the backend's connection,
    inside its ``BEGIN IMMEDIATE``."""

    __slots__ = ()

    async def change_counter(self) -> int:
        rows = await self._run.fetch(COUNTER, ())
        return int(rows[0][0] or 0)


class SQLiteBackend(SqlRows):
    """The consent store's rows in one SQLite file (see the module docstring).

    Open with :meth:`open`; :class:`~consentgate.store.facade.ConsentStore.open`
    does, and closes it with the store.
    """

    _sql = _SQL

    def __init__(
        self,
        path: Path,
        db: aiosqlite.Connection,
        reader: aiosqlite.Connection,
        probe: sqlite3.Connection,
        *,
        wait: float = 5.0,
    ) -> None:
        """Use :meth:`open`; the constructor only assembles opened connections."""
        #: Schema versions before and after :meth:`open` migrated the file.
        self.schema_change: tuple[int, int] = (0, 0)
        self.path = path
        self._db = db
        self._reader = reader
        self._probe = probe
        self._wait = wait
        self._lock = asyncio.Lock()
        self._read_lock = asyncio.Lock()
        self._inflight = TrackedWork()
        self._closed = False
        self._seen_data_version: int | None = None
        self._seen_counter = 0
        #: (device, inode) of the file opened; a file at ``path`` that is not it (or
        #: none) means the store was deleted or replaced under the gate.
        self._identity = file_identity(path)
        self._gone: str | None = None
        #: ``PRAGMA data_version`` when the schema version was last read, and the
        #: outage once a newer consentgate migrated the file (:meth:`_check_schema`).
        self._schema_read_at: int | None = None
        self._upgraded: StoreUnavailable | None = None
        #: A newer schema found to keep this code working (its level read once).
        self._runs_on_newer: int | None = None

    @classmethod
    async def open(
        cls, path: str | os.PathLike[str], *, create: bool = True, busy_timeout: float = 5.0
    ) -> SQLiteBackend:
        """Open (and create or migrate) the file at ``path``.

        Raises :class:`~consentgate.core.startup_errors.StartupError` with one line naming the
        path for a missing directory, a read-only file or directory, a file that is
        not a SQLite database, or a schema version newer than this code knows.
        """
        if busy_timeout <= 0:
            raise ValueError("busy_timeout must be positive")
        file = Path(path)
        check_location(file, create=create)
        db: aiosqlite.Connection | None = None
        reader: aiosqlite.Connection | None = None
        probe: sqlite3.Connection | None = None
        try:
            db = await aiosqlite.connect(file, isolation_level=None, timeout=busy_timeout)
            await _configure(db, file, busy_timeout)
            schema_change = await migrate(db, file)
            reader = await aiosqlite.connect(file, isolation_level=None, timeout=busy_timeout)
            await _configure_reader(reader, busy_timeout)
            probe = sqlite3.connect(file, isolation_level=None, timeout=_PROBE_TIMEOUT)
            probe.execute(COUNTER).fetchall()
        except BaseException as exc:
            if probe is not None:
                probe.close()
            for connection in (reader, db):
                if connection is not None:
                    try:
                        await connection.close()
                    except sqlite3.Error:
                        _log.debug("closing the consent store after a failed open", exc_info=True)
            if isinstance(exc, sqlite3.Error):
                raise startup_error(file, exc) from None
            raise
        backend = cls(file, db, reader, probe, wait=busy_timeout)
        backend.schema_change = schema_change
        return backend

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True

        async def finish() -> None:
            await self._inflight.wait()
            async with self._lock, self._read_lock:
                self._probe.close()
                await self._reader.close()
                await self._db.close()

        await asyncio.shield(asyncio.ensure_future(finish()))

    # --- the file itself ---------------------------------------------------------------

    def check_identity(self) -> None:
        """Raise :class:`StoreUnavailable` (kind ``gone``) when the file at ``path`` is no
        longer the one this backend opened: deleted, moved away or replaced.

        SQLite goes on reading and writing an unlinked file without an error, so
        without this check a deleted store keeps "remembering" approvals into a file
        nobody will ever open again, and the next start creates an empty one. One
        ERROR line when it is found gone; when the very same file (device
        and inode) is put back, say by restoring a hard link, one INFO line and the
        store serves again.
        """
        now = file_identity(self.path)
        if now == self._identity:
            if self._gone is not None:
                self._gone = None
                _log.info("consent store back", extra={"fields": {"path": str(self.path)}})
            self._check_schema()
            return
        if self._gone is None:
            self._gone = (
                f"the consent store {self.path} was deleted or moved while the gate had it open"
                if now is None
                else f"the consent store {self.path} was replaced by another file while the "
                "gate had it open"
            )
            _log.error(
                "consent store gone; nothing is approved or honoured until it is back",
                extra={"fields": {"path": str(self.path), "reason": self._gone}},
            )
        raise StoreUnavailable(
            f"{self._gone}; put the file back, or restore it from a backup and restart the gate",
            "gone",
        )

    @property
    def schema_version(self) -> int:
        return SCHEMA_VERSION

    def _check_schema(self, data_version: int | None = None) -> None:
        """Raise :class:`StoreUnavailable` (kind ``upgraded``) once another process
        (a newer consentgate starting on this file) migrated it past
        :data:`SCHEMA_VERSION` to a schema whose recorded level no longer runs this
        code (:func:`~consentgate.core.schema_versions.runs_on`; no level recorded is
        no promise): this code's statements were written for a schema that is gone.
        ``user_version`` is read again only when ``PRAGMA data_version`` says another
        connection committed (a migration commits), so the usual call is one PRAGMA on
        the probe connection, none when the caller read ``data_version`` already; the
        level only when the version is newer, once per version. Stays so until a
        restart; one ERROR line. A probe that fails cannot tell: the read or write
        that follows says why."""
        if self._upgraded is None:
            try:
                changed = (
                    self._probe.execute("PRAGMA data_version").fetchall()[0][0]
                    if data_version is None
                    else data_version
                )
                if changed == self._schema_read_at:
                    return
                found = int(self._probe.execute("PRAGMA user_version").fetchall()[0][0])
                if found <= SCHEMA_VERSION or found == self._runs_on_newer:
                    self._schema_read_at = changed
                    return
                level = recorded_level(self._probe, found)
            except (sqlite3.Error, IndexError):
                return
            self._schema_read_at = changed
            if runs_on(SCHEMA_VERSION, found, level):
                self._runs_on_newer = found
                return
            self._upgraded = upgraded_past(str(self.path), found, SCHEMA_VERSION)
            _log.error(
                "consent store upgraded by a newer consentgate; nothing is approved or "
                "honoured until this gate is restarted with the newer version",
                extra={"fields": {"path": str(self.path), "reason": str(self._upgraded)}},
            )
        raise self._upgraded

    # --- plumbing ------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosed

    @contextlib.asynccontextmanager
    async def _turn(self, lock: asyncio.Lock) -> AsyncIterator[None]:
        """``lock``, waited for at most the busy timeout: a request queued behind
        others of this process fails closed (``locked``) after a bounded wait of its
        own, instead of waiting for everyone ahead of it. A free
        lock is taken at once, without a timer: the usual case, on every store call."""
        try:
            if lock.locked():
                async with asyncio.timeout(self._wait):
                    await lock.acquire()
            else:
                await lock.acquire()
        except TimeoutError:
            raise StoreUnavailable(
                f"the consent store {self.path}: no turn on its connection within "
                f"{self._wait:g} s (the requests ahead are waiting for a lock)",
                "locked",
            ) from None
        try:
            yield
        finally:
            lock.release()

    async def _read(self, sql: str, params: Sequence[Any]) -> list[Row]:
        """One query on the read connection, which never waits for a write."""
        self._check_open()
        async with self._turn(self._read_lock):
            self._check_open()  # close() may have run while this read waited for the lock
            self.check_identity()
            with unavailable_on_failure(self.path):
                return list(await self._reader.execute_fetchall(sql, params))

    async def _write(
        self, body: Callable[[aiosqlite.Connection], Awaitable[T]], *, durable: bool = False
    ) -> T:
        """Run ``body`` in one ``BEGIN IMMEDIATE`` transaction, shielded from cancellation.

        ``durable``: the commit waits until the WAL is on disk (``synchronous=FULL``
        for this transaction). The connection otherwise runs with
        ``synchronous=NORMAL``, which survives a crash of the process but may lose
        the last commits when the machine or its disk fails.

        A request handler cancelled by a client disconnect must not leave the
        shared connection inside an open transaction (docs/references.md: "shield the
        store write so it is not cancelled half way"); the lock keeps two
        coroutines from interleaving statements on the one connection.
        """
        self._check_open()

        async def transaction() -> T:
            async with self._turn(self._lock):
                db = self._db
                self.check_identity()
                with unavailable_on_failure(self.path):
                    if durable:  # SQLite refuses to change it inside a transaction
                        await db.execute("PRAGMA synchronous = FULL")
                    try:
                        await db.execute("BEGIN IMMEDIATE")
                        try:
                            result = await body(db)
                            await db.execute("COMMIT")
                        except BaseException:
                            await rollback(db)
                            raise
                    finally:
                        if durable:
                            await db.execute("PRAGMA synchronous = NORMAL")
                return result

        return await asyncio.shield(self._inflight.start(transaction()))

    async def transaction(
        self, body: Callable[[StoreTransaction], Awaitable[T]], *, durable: bool = False
    ) -> T:
        """Run the facade's ``body`` in one ``BEGIN IMMEDIATE`` transaction (:meth:`_write`)."""
        return await self._write(lambda db: body(_Transaction(_Runner(db), _SQL)), durable=durable)

    async def _write_rows(self, body: Callable[[Runner], Awaitable[T]]) -> T:
        return await self._write(lambda db: body(_Runner(db)))

    async def _write_one(self, sql: str, params: Sequence[Any]) -> list[Row]:
        """One statement, atomic on its own in autocommit mode: one round trip to the
        database thread instead of three (BEGIN, statement, COMMIT). Shielded and
        locked like :meth:`transaction`."""
        self._check_open()

        async def statement() -> list[Row]:
            async with self._turn(self._lock):
                self.check_identity()
                with unavailable_on_failure(self.path):
                    return list(await self._db.execute_fetchall(sql, params))

        return await asyncio.shield(self._inflight.start(statement()))

    # --- change detection ------------------------------------------------------------

    def current_counter(self) -> int | None:
        """The change counter, read through the probe connection only when
        ``PRAGMA data_version`` says another connection committed. Any error means
        "cannot tell", and so does a store found gone (:meth:`check_identity`) until
        it is back."""
        if self._gone is not None or file_identity(self.path) != self._identity:
            return None  # a stat, about a microsecond: a gone file is never trusted
        try:
            # One data_version read serves both questions: the schema and the counter.
            version = self._probe.execute("PRAGMA data_version").fetchall()[0][0]
            self._check_schema(version)
            if version == self._seen_data_version:
                return self._seen_counter
            counter = self._probe.execute(COUNTER).fetchall()[0][0]
        except StoreUnavailable:
            return None  # a newer schema: no cached answer is trusted either
        except (sqlite3.Error, IndexError):
            self._seen_data_version = None
            return None
        self._seen_data_version = version
        self._seen_counter = int(counter or 0)
        return self._seen_counter
