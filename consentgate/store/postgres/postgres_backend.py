"""The PostgreSQL backend of the consent store: a bounded asyncpg pool, all SQL.

Implements :class:`~consentgate.store.protocol.StoreBackend` so that several gate
instances can share one store. It moves rows and owns transactions; it
never signs, verifies or emits audit events (the facade does).

Decisions and their sources (docs/references.md, docs/store.md "PostgreSQL"):

* asyncpg (the fastest asyncio driver, and LISTEN/NOTIFY built in), imported by this
  package only. A bounded pool (``max_size=pool_size``) with no floor (``min_size=0``):
  a connection is made when a request needs one (open() has just connected for the
  migrations, so a bad URL is still refused at start). A floor would have asyncpg
  refill it in the background while the server is down or shutting down, logging a
  traceback on every retry; without one, an outage is the gate's own rate-limited line;
  ``statement_timeout`` as a server setting of every connection, so a query stuck
  behind a lock fails instead of holding a request forever, and asyncpg's own
  ``command_timeout`` a little longer as the client-side backstop for a silent
  network. The URL is handed to asyncpg as it is: ``sslmode``, ``sslrootcert`` and
  the other libpq-style parameters work as asyncpg documents them.
* Connections go back to the pool without asyncpg's reset query (``RESET ALL``,
  ``UNLISTEN *``, ...), one round trip saved per operation: this backend never
  changes session state (advisory locks are transaction-scoped, settings are
  ``SET LOCAL``, nothing LISTENs on a pool connection). An open transaction is
  still rolled back by asyncpg before any reuse.
* Read-then-write (:meth:`PostgresBackend.transaction`) starts by locking the one
  row of ``consentgate.changes`` (``SELECT ... FOR UPDATE``): the triggers on
  ``consents`` and ``clients`` take the same lock before any write to those tables,
  so from that first statement nobody else, gate or psql, commits a consent or client
  change until this transaction ends (what SQLite's ``BEGIN IMMEDIATE`` gives), two
  instances refreshing one approval never both insert, and the counter the facade
  reads at both ends of its write tells its own write from anyone else's. The
  locked read is also the first ``change_counter()``: no extra round trip.
* ``use_binding`` is one ``INSERT ... ON CONFLICT DO NOTHING RETURNING``: atomic
  on its own, of any number of callers in any number of instances exactly one wins.
* Writes are shielded from cancellation and tracked while in flight (a client
  disconnect must not leave a transaction half done); :meth:`PostgresBackend.close`
  waits for them, then closes the listener and the pool.
* Cross-instance cache invalidation is LISTEN/NOTIFY on a dedicated connection
  (:mod:`consentgate.store.postgres.listener`); after its own commit the backend
  knows the counter it left and moves to it at once, so the facade's own-write rule
  keeps working without waiting for its own notification.
* Keyset pagination on each table's ``seq`` identity column; the cursor the facade
  passes back is the last ``seq`` of the previous page.
* An outage while serving (the server down, restarting or shutting down, a connection
  lost or closing under a query, a statement past ``statement_timeout``, a deadlock
  with someone's psql session: ``error_mapping.OUTAGE_ERRORS``) is raised as
  :class:`~consentgate.store.store_errors.StoreUnavailable`, naming the server and the
  reason: the gate fails closed on it and the pool reconnects by itself when the
  server is back. A constraint violated or a bug stays the driver's exception.
* PostgreSQL ``text`` cannot hold NUL, and no row can hold a lone surrogate: a read
  asked for such a value answers "no such row" instead of a driver error.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, Final, TypeVar

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from consentgate.config.dsn import describe, password_of
from consentgate.core.schema_versions import runs_on
from consentgate.core.startup_errors import StartupError
from consentgate.store.postgres.error_mapping import (
    CLOSE_ERRORS,
    OPEN_ERRORS,
    OUTAGE_ERRORS,
    startup_error,
    unavailable,
)
from consentgate.store.postgres.listener import COUNTER, ChangeListener
from consentgate.store.postgres.postgres_schema import (
    SCHEMA,
    SCHEMA_VERSION,
    apply_migrations,
    check_database,
    close_connection,
)
from consentgate.store.postgres.two_versions import recorded_level
from consentgate.store.protocol import Row, StoreTransaction
from consentgate.store.sql_rows import Runner, SqlRows, SqlTransaction
from consentgate.store.sql_statements import POSTGRES, Statements
from consentgate.store.store_errors import StoreClosed, StoreUnavailable, upgraded_past
from consentgate.store.tracked_work import TrackedWork

T = TypeVar("T")

_log = logging.getLogger("consentgate")

_SQL: Final = Statements(dataclasses.replace(POSTGRES, schema=f"{SCHEMA}."))
#: The read behind every uncached answer; served by the ``consents_lookup`` index (the
#: MD5s find the rows, the plain equalities decide).
LOOKUP: Final = _SQL.lookup
#: The first statement of every read-then-write transaction (see the module docstring).
_LOCK_COUNTER: Final = f"{COUNTER} FOR UPDATE"
#: The schema version now, against this code's SCHEMA_VERSION.
_SCHEMA_NOW: Final = f"SELECT coalesce(max(version), 0) FROM {SCHEMA}.schema_version"  # noqa: S608
#: How long close() waits for the pool's connections to come back before cutting them.
_CLOSE_TIMEOUT: Final = 10.0


_LOST_COUNTER: Final = (
    f"{SCHEMA}.changes has lost its row; restore it: "  # noqa: S608 - a message, not SQL run
    f"INSERT INTO {SCHEMA}.changes VALUES (1, 0)"
)


def _counter(value: int | None) -> int:
    """The counter a query read; its row deleted by hand fails closed."""
    if value is None:
        raise StoreUnavailable(_LOST_COUNTER)
    return int(value)


def _rowcount(status: str) -> int:
    """The row count of a command status such as ``DELETE 3``."""
    try:
        return int(status.rsplit(" ", 1)[-1])
    except ValueError:  # pragma: no cover - every DELETE status ends with its count
        return 0


async def _keep_session(conn: asyncpg.Connection) -> None:
    """The pool's reset: nothing to undo (see the module docstring)."""


class _Runner:
    """:class:`~consentgate.store.sql_rows.Runner` on one pool connection."""

    __slots__ = ("_conn",)

    def __init__(self, conn: PoolConnectionProxy[asyncpg.Record]) -> None:
        self._conn = conn

    async def fetch(self, sql: str, params: Sequence[Any]) -> list[Row]:
        return [tuple(row) for row in await self._conn.fetch(sql, *params)]

    async def execute(self, sql: str, params: Sequence[Any]) -> int:
        return _rowcount(await self._conn.execute(sql, *params))

    async def executemany(self, sql: str, params: Sequence[Sequence[Any]]) -> None:
        await self._conn.executemany(sql, [tuple(row) for row in params])


class _Transaction(SqlTransaction):
    """:class:`~consentgate.store.protocol.StoreTransaction` on one pool connection, inside
    a transaction that holds the change counter's row lock."""

    __slots__ = ("_counter",)

    def __init__(self, run: Runner, sql: Statements, counter: int) -> None:
        super().__init__(run, sql)
        #: The counter as this transaction sees it, while known without a query (the
        #: lock is held, so only this transaction's own writes move it).
        self._counter: int | None = counter

    def _wrote(self) -> None:
        self._counter = None

    async def change_counter(self) -> int:
        if self._counter is None:
            rows = await self._run.fetch(COUNTER, ())
            self._counter = _counter(rows[0][0] if rows else None)
        return self._counter


class PostgresBackend(SqlRows):
    """The consent store's rows in a PostgreSQL database (see the module docstring).

    Open with :meth:`open`, hand it to :class:`~consentgate.store.facade.ConsentStore`,
    which closes it with the store::

        store = ConsentStore(await PostgresBackend.open(url), keyring)
    """

    _sql = _SQL

    def __init__(
        self,
        pool: asyncpg.Pool[asyncpg.Record],
        listener: ChangeListener,
        where: str,
        *,
        wait: float = 5.0,
    ) -> None:
        """Use :meth:`open`; the constructor only assembles an opened pool and listener.
        ``wait``: the longest a request waits for a pooled connection."""
        self._pool = pool
        self._wait = wait
        self._listener = listener
        #: Where the store lives, as ``host:port/dbname`` (for messages; no credentials).
        self.where = where
        self._inflight = TrackedWork()
        self._closed = False
        self._closing: asyncio.Future[None] | None = None
        self._upgraded: StoreUnavailable | None = None

    @classmethod
    async def open(
        cls,
        dsn: str,
        *,
        pool_size: int = 10,
        statement_timeout: float = 5.0,
        connect_timeout: float = 5.0,
        password: str | None = None,
        migrate: bool = True,
        refuse_empty: str | None = None,
    ) -> PostgresBackend:
        """Connect to the database at ``dsn`` (a ``postgresql://`` URL), migrate it (or,
        with ``migrate=False``, check that it needs no migration), and start listening
        for changes.

        ``password`` overrides one in the URL. Raises
        :class:`~consentgate.core.startup_errors.StartupError` with one line naming
        ``host:port/dbname`` (never the password) when the server cannot be reached or
        does not answer within ``connect_timeout``, refuses the login, has no such
        database, or has a schema newer than this code knows.
        """
        if pool_size < 1 or statement_timeout <= 0 or connect_timeout <= 0:
            raise ValueError("pool_size must be at least 1 and the timeouts must be positive")
        where = describe(dsn)
        secrets = (password, password_of(dsn))
        settings = {
            "statement_timeout": str(max(1, round(statement_timeout * 1000))),
            "application_name": "consentgate",
        }

        def connect(**extra: Any) -> Awaitable[asyncpg.Connection]:
            return asyncpg.connect(
                dsn,
                password=password,
                timeout=connect_timeout,
                server_settings={**settings, **extra},
            )

        pool: asyncpg.Pool[asyncpg.Record] | None = None
        listener: ChangeListener | None = None
        try:
            conn = await connect()
            try:
                await check_database(conn, where)
                await apply_migrations(conn, where, migrate=migrate, refuse_empty=refuse_empty)
            finally:
                await close_connection(conn, connect_timeout)
            pool = await asyncpg.create_pool(
                dsn,
                password=password,
                min_size=0,
                max_size=pool_size,
                timeout=connect_timeout,
                command_timeout=statement_timeout + connect_timeout,
                server_settings=settings,
                reset=_keep_session,
            )
            listener = ChangeListener(
                lambda: connect(application_name="consentgate-listener"),
                where,
                timeout=connect_timeout,
            )
            await listener.start()
        except BaseException as exc:
            if listener is not None:
                await listener.close()
            if pool is not None:
                pool.terminate()
            if isinstance(exc, StartupError):
                raise
            if isinstance(exc, OPEN_ERRORS):
                raise startup_error(exc, where, timeout=connect_timeout, secrets=secrets) from None
            raise
        return cls(pool, listener, where, wait=statement_timeout)

    @property
    def path(self) -> Path | None:
        """None: the store is not a file."""
        return None

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def listening(self) -> bool:
        """True while change notifications arrive (the cache is trusted); for readiness."""
        return not self._closed and self._listener.listening

    @property
    def listener_pid(self) -> int | None:
        """The server process id of the listener connection (diagnostics and tests)."""
        return self._listener.backend_pid

    async def close(self) -> None:
        if self._closing is None:
            self._closed = True
            self._closing = asyncio.ensure_future(self._finish())
        await asyncio.shield(self._closing)

    async def _finish(self) -> None:
        await self._inflight.wait()
        await self._listener.close()
        try:
            await asyncio.wait_for(self._pool.close(), _CLOSE_TIMEOUT)
        except CLOSE_ERRORS:
            self._pool.terminate()

    # --- plumbing ------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosed
        if self._upgraded is not None:
            raise self._upgraded

    @property
    def schema_version(self) -> int:
        return SCHEMA_VERSION

    async def _schema_moved(self) -> StoreUnavailable | None:
        """The outage once a newer consentgate migrated the database past
        :data:`SCHEMA_VERSION` to a schema whose recorded level no longer runs this
        code (kind ``upgraded``; :func:`~consentgate.core.schema_versions.runs_on`, no
        level recorded is no promise), else None; read at every readiness write probe
        and after a statement failed for a reason that is not an outage (this code's
        SQL against a schema it does not know). Stays so until a restart: every
        operation raises it (:meth:`_check_open`); one ERROR line. A read that fails
        cannot tell (None): the operation's own error stands."""
        if self._upgraded is None:
            try:
                async with self._pool.acquire(timeout=self._wait) as conn:
                    found = int(await conn.fetchval(_SCHEMA_NOW))
                    if found <= SCHEMA_VERSION:
                        return None
                    level = await recorded_level(conn, found)
            except Exception:
                return None
            if runs_on(SCHEMA_VERSION, found, level):
                return None
            self._upgraded = upgraded_past(self.where, found, SCHEMA_VERSION)
            _log.error(
                "consent store upgraded by a newer consentgate; nothing is approved or "
                "honoured until this gate is restarted with the newer version",
                extra={"fields": {"where": self.where, "reason": str(self._upgraded)}},
            )
        return self._upgraded

    async def heartbeat(self, value: str) -> None:
        """The readiness write probe, then whether the schema moved past this code."""
        await super().heartbeat(value)
        moved = await self._schema_moved()
        if moved is not None:
            raise moved

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[PoolConnectionProxy[asyncpg.Record]]:
        """A pool connection; an outage while it is used is :class:`StoreUnavailable`.

        Not checked for close() here: a write tracked before close() began still runs
        (close waits for it); callers check first."""
        try:
            # A bounded wait of its own for a pooled connection: with
            # every connection stuck, a request fails closed after the statement timeout
            # instead of queueing behind all the others.
            async with self._pool.acquire(timeout=self._wait) as conn:
                yield conn
        except OUTAGE_ERRORS as exc:
            if isinstance(exc, ValueError):  # asyncpg's DataError: a bug, not an outage
                raise
            if self._closed and isinstance(exc, asyncpg.InterfaceError):
                raise StoreClosed from None  # close() ran while this waited
            raise unavailable(exc, self.where) from exc
        except asyncpg.PostgresError as exc:  # this SQL refused: by a newer schema?
            moved = await self._schema_moved()
            if moved is not None:
                raise moved from exc
            raise

    async def _read(self, sql: str, params: Sequence[Any]) -> list[Row]:
        self._check_open()
        return await self._fetch_now(sql, params)

    async def _fetch_now(self, sql: str, params: Sequence[Any]) -> list[Row]:
        async with self._connection() as conn:
            return [tuple(row) for row in await conn.fetch(sql, *params)]

    async def _write_rows(self, body: Callable[[Runner], Awaitable[T]]) -> T:
        """Run ``body`` in one transaction on a pool connection, shielded from
        cancellation and tracked, so close() waits for it."""
        self._check_open()

        async def transaction() -> T:
            async with self._connection() as conn, conn.transaction():
                return await body(_Runner(conn))

        return await asyncio.shield(self._inflight.start(transaction()))

    async def _write_one(self, sql: str, params: Sequence[Any]) -> list[Row]:
        """One statement, atomic on its own; shielded and tracked like :meth:`_write_rows`."""
        self._check_open()

        async def statement() -> list[Row]:
            return await self._fetch_now(sql, params)

        return await asyncio.shield(self._inflight.start(statement()))

    async def transaction(
        self, body: Callable[[StoreTransaction], Awaitable[T]], *, durable: bool = False
    ) -> T:
        """Run the facade's ``body`` in one transaction that first locks the change
        counter's row (see the module docstring).

        Every commit is ``durable``: the gate leaves PostgreSQL's default
        ``synchronous_commit = on``, so a commit returns once its WAL is flushed."""
        self._check_open()

        async def run() -> T:
            async with self._connection() as conn:
                async with conn.transaction():
                    counter = _counter(await conn.fetchval(_LOCK_COUNTER))
                    tx = _Transaction(_Runner(conn), _SQL, counter)
                    result = await body(tx)
                    counter = await tx.change_counter()
                # Committed: the database holds at least this counter now.
                self._listener.advance(counter)
                return result

        return await asyncio.shield(self._inflight.start(run()))

    # --- change detection ------------------------------------------------------------

    def current_counter(self) -> int | None:
        """The counter the listener last read, or None ("cannot tell": not yet known,
        the listener connection lost, or closed). No I/O.

        Delay: another instance's change is reflected once its notification arrived
        and the listener read the counter (a LAN round trip or two, well under a
        millisecond); this backend's own commits at once."""
        if self._closed or self._upgraded is not None:
            return None
        return self._listener.counter

    def check_identity(self) -> None:
        """Nothing to check: the server owns its files."""
