"""Fixtures of the store tests: one contract suite, parametrised over every backend.

``database`` is one empty database of one backend (``sqlite``: a file under tmp_path;
``postgres``: a fresh database on the session's throwaway cluster, tests/support/pgcluster.py);
``store`` a ConsentStore open on it. A test that needs "another process" opens a
second store on the same database, and a test that plays the attacker with write
access edits the database behind the stores' backs with :meth:`StoreDatabase.edit`.
Adding a backend is one more class implementing :class:`StoreDatabase` and one more
``params`` entry of :func:`database`; the behaviour tests in test_store.py and
test_backend_contract.py then run against it as they are. Tests of one backend's own
machinery live in that backend's file (test_sqlite_backend.py,
test_postgres_backend.py).

A backend may learn of another connection's change asynchronously (PostgreSQL:
LISTEN/NOTIFY, docs/store.md). A test that checks what one store sees of another's
change first awaits :meth:`StoreDatabase.settle`: returns at once for SQLite, and for
PostgreSQL once every open store heard of every change committed so far (a bounded
wait that fails the test after 5 s, never a sleep). :meth:`StoreDatabase.edit` settles
by itself.

No mocks: every store is real, on a real database; time comes from :class:`FakeClock`.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Protocol

import asyncpg
import pytest

from consentgate import ConsentRecord, ConsentStore, KeyRing
from consentgate.core.clock import Clock, system_clock
from consentgate.core.signed.records import PENDING_COLUMNS, PendingRecord, sign_record
from consentgate.store.postgres import PostgresBackend
from consentgate.store.protocol import StoreBackend
from consentgate.store.sqlite import SQLiteBackend
from tests.support.pgcluster import GATE_ROLE, PostgresCluster, postgres_cluster

__all__ = ["postgres_cluster"]  # the session fixture, for the tests of this directory

#: How long a store may take to hear of a change before the test fails.
SETTLE_TIMEOUT = 5.0

T0 = 1_700_000_000.0
CB = "https://app.example/callback"


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class StoreDatabase(Protocol):
    """One database of one backend: stores open on it, an attacker edits it."""

    name: str

    async def backend(self) -> StoreBackend:
        """A new backend (a new connection) on this database, without a store."""
        ...

    async def open(
        self, keyring: KeyRing, *, clock: Clock = system_clock, cache_size: int = 10_000
    ) -> ConsentStore:
        """A new store (a new connection, as another process would have) on this database."""
        ...

    async def edit(self, sql: str, *params: object) -> None:
        """Run one statement behind every store's back and commit it, as someone with
        write access to the database would, then :meth:`settle`. ``?`` placeholders;
        standard SQL on the tables of docs/store.md (a backend whose driver wants
        ``$1`` translates)."""
        ...

    async def read(self, sql: str, *params: object) -> list[tuple[Any, ...]]:
        """The rows of one query, read behind every store's back (``?`` placeholders)."""
        ...

    async def settle(self) -> None:
        """Return once every store open on this database has heard of every change
        committed so far (at once for a backend that checks synchronously)."""
        ...

    def contents(self) -> bytes:
        """Every byte the database keeps, to check what is never stored."""
        ...


class SQLiteDatabase:
    """A SQLite file; stores are built the way any backend's are (backend, then store)."""

    name = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path

    async def backend(self) -> SQLiteBackend:
        return await SQLiteBackend.open(self.path)

    async def open(
        self, keyring: KeyRing, *, clock: Clock = system_clock, cache_size: int = 10_000
    ) -> ConsentStore:
        return ConsentStore(await self.backend(), keyring, clock=clock, cache_size=cache_size)

    async def edit(self, sql: str, *params: object) -> None:
        with sqlite3.connect(self.path) as conn:
            conn.execute(sql, params)
        conn.close()

    async def read(self, sql: str, *params: object) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.path) as conn:
            rows = conn.execute(sql, params).fetchall()
        conn.close()
        return rows

    async def settle(self) -> None:
        """Nothing to wait for: ``PRAGMA data_version`` is read before every answer."""

    def contents(self) -> bytes:
        wal = Path(f"{self.path}-wal")
        return self.path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")


def dollar_placeholders(sql: str) -> str:
    """``?`` placeholders as PostgreSQL's ``$1, $2, ...`` (quoted literals left alone)."""
    out: list[str] = []
    number = 0
    quoted = False
    for char in sql:
        if char == "'":
            quoted = not quoted
        if char == "?" and not quoted:
            number += 1
            out.append(f"${number}")
        else:
            out.append(char)
    return "".join(out)


class PostgresDatabase:
    """A fresh database on the session's cluster. Stores log in as the unprivileged
    owner of the database (:data:`~tests.support.pgcluster.GATE_ROLE`); the attacker's edits
    come as the superuser, on a connection of their own."""

    name = "postgres"

    def __init__(self, cluster: PostgresCluster, dbname: str) -> None:
        self.cluster = cluster
        self.dbname = dbname
        self.dsn = cluster.dsn(dbname, user=GATE_ROLE)
        self.backends: list[PostgresBackend] = []

    async def backend(self) -> PostgresBackend:
        opened = await PostgresBackend.open(self.dsn)
        self.backends.append(opened)
        return opened

    async def open(
        self, keyring: KeyRing, *, clock: Clock = system_clock, cache_size: int = 10_000
    ) -> ConsentStore:
        return ConsentStore(await self.backend(), keyring, clock=clock, cache_size=cache_size)

    async def admin(self) -> asyncpg.Connection:
        """A superuser connection with the store's schema first on the search path."""
        return await asyncpg.connect(
            self.cluster.dsn(self.dbname), server_settings={"search_path": "consentgate"}
        )

    async def edit(self, sql: str, *params: object) -> None:
        conn = await self.admin()
        try:
            await conn.execute(dollar_placeholders(sql), *params)
        finally:
            await conn.close()
        await self.settle()

    async def read(self, sql: str, *params: object) -> list[tuple[Any, ...]]:
        conn = await self.admin()
        try:
            return [tuple(row) for row in await conn.fetch(dollar_placeholders(sql), *params)]
        finally:
            await conn.close()

    async def counter(self) -> int | None:
        """The change counter in the database, or None before the schema exists."""
        conn = await self.admin()
        try:
            if await conn.fetchval("SELECT to_regclass('consentgate.changes')") is None:
                return None
            return int(await conn.fetchval("SELECT counter FROM consentgate.changes"))
        finally:
            await conn.close()

    async def settle(self) -> None:
        target = await self.counter()
        if target is None:
            return
        deadline = time.monotonic() + SETTLE_TIMEOUT
        for backend in self.backends:
            while not backend.closed:
                seen = backend.current_counter()
                if seen is not None and seen >= target:
                    break
                if time.monotonic() > deadline:
                    raise AssertionError(
                        f"a store saw change counter {seen}, not {target}, "
                        f"{SETTLE_TIMEOUT} s after the change"
                    )
                await asyncio.sleep(0.001)

    def contents(self) -> bytes:
        """The database's files after a checkpoint (every byte on disk, dead rows
        included) and a data-only dump of its schema (every value, decoded)."""
        self.cluster.psql("CHECKPOINT")
        oid = self.cluster.psql(
            f"SELECT oid FROM pg_database WHERE datname = '{self.dbname}'"  # noqa: S608
        ).strip()
        files = b"".join(
            path.read_bytes()
            for path in sorted((self.cluster.data / "base" / oid).iterdir())
            if path.is_file()
        )
        return files + self.cluster.pg_dump(self.dbname, "--data-only", "--schema=consentgate")

    async def close(self) -> None:
        for backend in self.backends:
            await backend.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def ring() -> KeyRing:
    return KeyRing.generate()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.slow)])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StoreDatabase]:
    """One empty database per backend (the parameter names the backend). PostgreSQL
    starts the session's cluster on first use; without PostgreSQL installed the
    postgres tests are skipped, or fail with ``CI_REQUIRE_POSTGRES=1``."""
    if request.param == "sqlite":
        yield SQLiteDatabase(tmp_path / "store.sqlite3")
        return
    if request.param != "postgres":  # pragma: no cover
        raise AssertionError(f"no such backend: {request.param}")
    cluster: PostgresCluster = request.getfixturevalue("postgres_cluster")
    database = PostgresDatabase(cluster, cluster.create_database(owner=GATE_ROLE))
    try:
        yield database
    finally:
        await database.close()  # tests close their stores; this is for a failed one
        cluster.drop_database(database.dbname)


@pytest.fixture
async def store(
    database: StoreDatabase, ring: KeyRing, clock: FakeClock
) -> AsyncIterator[ConsentStore]:
    opened = await database.open(ring, clock=clock)
    yield opened
    await opened.close()


async def approve(store: ConsentStore, subject: str = "alice", **changes: Any) -> ConsentRecord:
    args: dict[str, Any] = {
        "client_id": "client-1",
        "redirect_uri": CB,
        "scopes": {"openid", "profile"},
        "resource": "",
        "ttl": 3600,
    }
    args.update(changes)
    return await store.record(subject, **args)


async def approved(store: ConsentStore, record: ConsentRecord, scopes: Any = None) -> bool:
    return await store.is_approved(
        record.subject,
        record.client_id,
        record.redirect_uri,
        record.scopes if scopes is None else scopes,
        record.resource,
    )


async def leave_pending_row(
    database: StoreDatabase,
    ring: KeyRing,
    id: str,
    subject: str,
    expires_at: int,
    *,
    payload: str = "{}",
    created_at: int = int(T0),
) -> None:
    """A signed pending row as an older version of the gate wrote it (this one seals
    its consent pages in the page instead): what the purge, ``consents verify`` and the
    ``consentgate_pending_pages`` gauge still handle."""
    record = sign_record(
        PendingRecord(id, subject, "", payload, created_at, expires_at, "", b""), ring
    )
    columns = ", ".join(PENDING_COLUMNS)
    placeholders = ", ".join("?" * len(PENDING_COLUMNS))
    await database.edit(
        f"INSERT INTO pending ({columns}) VALUES ({placeholders})",  # noqa: S608 - constants
        *record.to_row(),
    )
