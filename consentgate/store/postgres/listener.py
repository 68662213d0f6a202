"""The change counter as LISTEN/NOTIFY delivers it, on one dedicated connection.

The facade asks :meth:`StoreBackend.current_counter` before every cached answer,
synchronously; a round trip per answer would cost what the cache saves. So one
connection, outside the pool, LISTENs on ``consentgate_changes`` (the triggers of
:mod:`consentgate.store.postgres.postgres_schema` notify it in the transaction of every
change to a consent or client row) and :attr:`ChangeListener.counter` is what the
database last said. The answer is never older than the last notification that
arrived; the delay is the notification's flight (PostgreSQL sends it when the
changing transaction commits) plus one round trip:

* A notification is a *signal*, not a value: anyone who may connect to the database
  may NOTIFY any channel, so the payload is never believed. It makes the listener
  read the counter itself (coalesced: one read in flight, one more if more signals
  came meanwhile), and only that read moves :attr:`counter`. A forged notification
  costs one read and changes nothing.
* The value read is taken as it is, not as a maximum: someone who set the counter
  back by hand cannot freeze every cache above the new value. Only a read that
  raced with :meth:`ChangeListener.advance` (this process's own commit, whose
  counter is known exactly) keeps the larger of the two.
* "Cannot tell" is ``None`` (the facade then empties its cache and reads the
  database): before the first read, whenever the connection is closed (checked on
  every call: asyncpg marks a lost connection closed at once), while reconnecting
  and after :meth:`ChangeListener.close`.
* A lost connection is noticed when the server or the network closes it (asyncpg's
  termination callback), or by a heartbeat read every few seconds that does not
  answer in time (a silently broken network path). The listener then reconnects in
  the background (at once, then after 0.5 s, 1 s, and every 2 s), LISTENs again,
  reads the counter again and only then trusts again. One WARNING when it is lost and one INFO
  when it is back, on the ``consentgate`` logger, naming the server without
  credentials.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Final

import asyncpg

from consentgate.store.postgres.error_mapping import CLOSE_ERRORS
from consentgate.store.postgres.postgres_schema import CHANNEL, SCHEMA

_log = logging.getLogger("consentgate")

COUNTER: Final = f"SELECT counter FROM {SCHEMA}.changes WHERE id = 1"  # noqa: S608 - constant
#: Reconnection delays: the first retry, then doubling up to the last.
RETRY_FIRST: Final = 0.5
RETRY_MAX: Final = 2.0
#: How often the idle listener proves its connection still answers.
HEARTBEAT: Final = 5.0

Connect = Callable[[], Awaitable[asyncpg.Connection]]


class ChangeListener:
    """One LISTEN connection and the counter it reads (see the module docstring)."""

    def __init__(
        self, connect: Connect, where: str, *, timeout: float, heartbeat: float = HEARTBEAT
    ) -> None:
        self._connect = connect
        self._where = where
        self._timeout = timeout
        self._heartbeat = heartbeat
        self._conn: asyncpg.Connection | None = None
        #: The counter last read (None: not known on the current connection).
        self._counter: int | None = None
        #: Moves with every :meth:`advance`, so a read that raced with one is detected.
        self._advances = 0
        self._signalled = False
        self._reader: asyncio.Task[None] | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._lost = asyncio.Event()
        #: One query at a time on the connection (the heartbeat and a signalled read).
        self._querying = asyncio.Lock()
        self._closed = False

    # --- what the backend asks ---------------------------------------------------------

    @property
    def counter(self) -> int | None:
        """The change counter, or None for "cannot tell"; no I/O."""
        conn = self._conn
        if conn is None or conn.is_closed():
            return None
        return self._counter

    @property
    def listening(self) -> bool:
        """True while the connection is up and the counter known (readiness)."""
        return self.counter is not None

    @property
    def backend_pid(self) -> int | None:
        """The server process of the listener connection (diagnostics and tests)."""
        conn = self._conn
        return None if conn is None or conn.is_closed() else conn.get_server_pid()

    def advance(self, counter: int) -> None:
        """This process committed a change and read the counter it left: the database
        holds at least ``counter`` now, whatever the notification's flight."""
        self._advances += 1
        if self.counter is not None and self._counter is not None:  # known: keep it exact
            self._counter = max(self._counter, counter)

    # --- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Connect, LISTEN and read the counter; raises when that fails (at open)."""
        conn = await self._connect()
        try:
            await self._attach(conn)
        except BaseException:
            conn.terminate()
            raise
        self._watcher = asyncio.ensure_future(self._watch())

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        tasks = [task for task in (self._watcher, self._reader) if task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        conn, self._conn = self._conn, None
        self._counter = None
        if conn is not None and not conn.is_closed():
            try:
                await asyncio.wait_for(conn.close(), self._timeout)
            except CLOSE_ERRORS:
                conn.terminate()

    # --- the connection ----------------------------------------------------------------

    async def _attach(self, conn: asyncpg.Connection) -> None:
        """Listen first, then read: a change committed after LISTEN is signalled, one
        committed before it is in the value read."""
        self._counter = None
        self._conn = conn
        conn.add_termination_listener(self._terminated)
        await conn.add_listener(CHANNEL, self._notified)
        await self._read(conn)

    def _terminated(self, conn: object) -> None:
        if conn is self._conn and not self._closed:
            self._lost.set()

    def _notified(self, conn: object, pid: int, channel: str, payload: object) -> None:
        # The payload is not believed (anyone may NOTIFY): it only says "read again".
        current = self._conn
        if current is None or conn is not current or self._closed:
            return
        self._signalled = True
        if self._reader is None or self._reader.done():
            self._reader = asyncio.ensure_future(self._read_while_signalled(current))

    async def _read_while_signalled(self, conn: asyncpg.Connection) -> None:
        while self._signalled and conn is self._conn and not self._closed:
            self._signalled = False
            try:
                await self._read(conn)
            except Exception:
                # Something changed and the counter could not be read: the value held
                # is stale. Drop the connection; the watcher reconnects and reads again.
                conn.terminate()
                return

    async def _read(self, conn: asyncpg.Connection) -> None:
        async with self._querying:
            advances = self._advances
            read = await asyncio.wait_for(conn.fetchval(COUNTER), self._timeout)
        if conn is not self._conn or self._closed:
            return
        if read is None:  # the counter's row was deleted by hand: cannot tell
            self._counter = None
            return
        value = int(read)
        if advances != self._advances and self._counter is not None:
            value = max(value, self._counter)  # raced with our own commit
        self._counter = value

    async def _watch(self) -> None:
        """Heartbeat while connected; on a loss, warn, reconnect, and say so."""
        while not self._closed:
            try:
                await asyncio.wait_for(self._lost.wait(), self._heartbeat)
            except TimeoutError:
                conn = self._conn
                if conn is None or conn.is_closed():
                    self._lost.set()
                    continue
                try:
                    await self._read(conn)
                except Exception:  # a connection that does not answer is lost
                    conn.terminate()
                    self._lost.set()
                continue
            self._lost.clear()
            self._counter = None
            _log.warning(
                "the consent store lost its change notifications from PostgreSQL %s; "
                "cached answers are not used until it reconnects",
                self._where,
            )
            await self._reconnect()
            if self._closed:
                return
            _log.info(
                "the consent store's change notifications from PostgreSQL %s are back; "
                "cached answers are used again",
                self._where,
            )

    async def _reconnect(self) -> None:
        delay = RETRY_FIRST
        while not self._closed:
            conn: asyncpg.Connection | None = None
            try:
                conn = await self._connect()
                await self._attach(conn)
            except Exception as exc:  # whatever failed, try again later
                if conn is not None:
                    conn.terminate()
                _log.debug("reconnecting to PostgreSQL %s: %s", self._where, exc)
                self._lost.clear()
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX)
                continue
            if conn.is_closed():  # lost again while attaching
                continue
            self._lost.clear()
            return
