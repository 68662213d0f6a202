"""Fixtures of the store tests: one contract suite, parametrised over every backend.

``database`` is one empty database of one backend; ``store`` a ConsentStore open on
it. A test that needs "another process" opens a second store on the same database,
and a test that plays the attacker with write access edits the database behind the
stores' backs with :meth:`StoreDatabase.edit`. Adding a backend (PostgreSQL) is one
more class implementing :class:`StoreDatabase` and one more ``params`` entry of
:func:`database`; the behaviour tests in test_store.py then run against it as they
are. Tests of one backend's own machinery (file modes, PRAGMAs, migrations,
``data_version``) live in that backend's file (test_sqlite_backend.py).

No mocks: every store is real, on a real file under tmp_path; time comes from
:class:`FakeClock`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Protocol

import pytest

from consentgate import ConsentRecord, ConsentStore, KeyRing
from consentgate.core.clock import Clock, system_clock
from consentgate.store.backend import StoreBackend
from consentgate.store.sqlite import SQLiteBackend

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

    def edit(self, sql: str, *params: object) -> None:
        """Run one statement behind every store's back and commit it, as someone with
        write access to the database would. ``?`` placeholders; standard SQL on the
        tables of docs/store.md (a backend whose driver wants ``$1`` translates)."""
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

    def edit(self, sql: str, *params: object) -> None:
        with sqlite3.connect(self.path) as conn:
            conn.execute(sql, params)
        conn.close()

    def contents(self) -> bytes:
        wal = Path(f"{self.path}-wal")
        return self.path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def ring() -> KeyRing:
    return KeyRing.generate()


@pytest.fixture(params=["sqlite"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> StoreDatabase:
    """One empty database per backend (the parameter names the backend)."""
    if request.param == "sqlite":
        return SQLiteDatabase(tmp_path / "store.sqlite3")
    raise AssertionError(f"no such backend: {request.param}")  # pragma: no cover


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
