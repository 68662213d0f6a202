"""A pooled PostgreSQL connection that the server closes under a query.

PostgreSQL ends a session (``pg_ctl stop -m fast``, ``pg_terminate_backend``, a
failover) by sending its FATAL error (SQLSTATE 57P01) and then closing the socket. A
query started between the two finds asyncpg's protocol still consuming that error and
raises ``InternalClientError: cannot switch to state N; another operation (2) is in
progress``, which is no connection error. The relay here holds the socket's close back,
so the query lands in that window every time rather than by chance under load
(tests/web/test_store_faults_postgres.py stops a real server under load); the store
must call it what it is, a connection lost: ``StoreUnavailable``, ``unreachable``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from consentgate.store.postgres import PostgresBackend
from consentgate.store.store_errors import StoreUnavailable
from tests.store.conftest import PostgresDatabase
from tests.support.pgcluster import GATE_ROLE, PostgresCluster

pytestmark = pytest.mark.slow  # PostgreSQL only

WAIT = 5.0


class HeldClose:
    """A loopback TCP relay to the server that, once :attr:`holding`, forwards all the
    server sends but keeps the client's side open after the server closed its own,
    until :meth:`let_go`."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.holding = False
        self.server_closed = asyncio.Event()
        self._let_go = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while chunk := await reader.read(65536):
                writer.write(chunk)
                await writer.drain()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        server_reader, server_writer = await asyncio.open_connection("127.0.0.1", self.port)

        async def upstream() -> None:
            await self._forward(reader, server_writer)
            server_writer.close()

        async def downstream() -> None:
            await self._forward(server_reader, writer)
            if self.holding:  # the server's error was forwarded, its close is held
                self.server_closed.set()
                await self._let_go.wait()
            writer.close()

        try:
            await asyncio.gather(upstream(), downstream(), return_exceptions=True)
        finally:
            for side in (writer, server_writer):
                side.close()
                with contextlib.suppress(ConnectionError):
                    await side.wait_closed()

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.ensure_future(self._relay(reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @contextlib.asynccontextmanager
    async def serve(self) -> AsyncIterator[int]:
        """Listen on 127.0.0.1 and yield the relay's port."""
        server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        try:
            yield int(server.sockets[0].getsockname()[1])
        finally:
            self.let_go()
            server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def let_go(self) -> None:
        self._let_go.set()


@pytest.fixture
async def database(postgres_cluster: PostgresCluster) -> AsyncIterator[PostgresDatabase]:
    opened = PostgresDatabase(postgres_cluster, postgres_cluster.create_database(GATE_ROLE))
    try:
        yield opened
    finally:
        await opened.close()
        postgres_cluster.drop_database(opened.dbname)


async def test_a_query_on_a_connection_the_server_is_closing_is_store_unavailable(
    database: PostgresDatabase,
) -> None:
    relay = HeldClose(database.cluster.port)
    async with relay.serve() as port:
        dsn = f"postgresql://{GATE_ROLE}@127.0.0.1:{port}/{database.dbname}"
        backend = await PostgresBackend.open(dsn, pool_size=1)
        try:
            [(pid,)] = await backend._read("SELECT pg_backend_pid()", ())  # the pool's one
            relay.holding = True
            database.cluster.psql(f"SELECT pg_terminate_backend({int(pid)})")
            await asyncio.wait_for(relay.server_closed.wait(), WAIT)
            for _ in range(3):  # the FATAL error is in the socket: let asyncpg read it
                await asyncio.sleep(0)
            with pytest.raises(StoreUnavailable) as lost:
                await backend._read("SELECT 1", ())
            assert lost.value.kind == "unreachable"  # not "locked": no timeout waited out
            assert "closed the connection under a query" in str(lost.value)

            relay.let_go()
            deadline = asyncio.get_running_loop().time() + WAIT
            while True:  # the pool replaces the lost connection by itself
                try:
                    assert await backend._read("SELECT 1", ()) == [(1,)]
                    break
                except StoreUnavailable:
                    assert asyncio.get_running_loop().time() < deadline, "no recovery"
                    await asyncio.sleep(0.05)
        finally:
            await backend.close()
