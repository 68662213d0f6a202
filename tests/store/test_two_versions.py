"""Two versions on one store: gates announce the schema their code runs, a migration
that would break an attached gate refuses (naming it) and one that keeps it working
goes ahead under it, and a gate meets a newer store by the level that store records.

A later release is brought by the migration functions' explicit parameters
(tests/support/later_release.py): this code's steps plus one, with the level that
release would declare. Runs on every backend.
"""

from __future__ import annotations

import os
import re

import pytest

from consentgate import KeyRing
from consentgate.core.attached_gates import (
    FORGET_AFTER,
    REFRESH_EVERY,
    STALE_AFTER,
    GatesAttached,
)
from consentgate.core.schema_versions import POSTGRES_SCHEMA, SQLITE_SCHEMA
from consentgate.core.startup_errors import StartupError
from consentgate.store import ConsentStore
from tests.store.conftest import (
    FakeClock,
    PostgresDatabase,
    SQLiteDatabase,
    StoreDatabase,
    approve,
    approved,
)
from tests.support.later_release import migrate_postgres_later, migrate_sqlite_later


async def migrate_later(database: StoreDatabase, *, level: int) -> tuple[int, int]:
    """A later release's migration, one step past this code, of the given level."""
    if isinstance(database, SQLiteDatabase):
        return await migrate_sqlite_later(database.path, level=level)
    assert isinstance(database, PostgresDatabase)
    return await migrate_postgres_later(database.dsn, level=level)


async def version_of(database: StoreDatabase) -> int:
    if isinstance(database, SQLiteDatabase):
        return int((await database.read("PRAGMA user_version"))[0][0])
    return int((await database.read("SELECT max(version) FROM schema_version"))[0][0])


def this_schema(store: ConsentStore) -> int:
    return store.gates.this_gate("x").schema_version


async def test_a_gate_s_row_names_its_schema_host_and_pid_and_leaves_with_it(
    database: StoreDatabase, ring: KeyRing
) -> None:
    async with await database.open(ring) as store:
        assert await store.gates.attached() == []
        announced = await store.gates.announce("9.9.9")
        (row,) = await store.gates.attached()
        assert row == announced
        assert (row.pid, row.software, row.refresh_every) == (os.getpid(), "9.9.9", REFRESH_EVERY)
        # SQLite's or PostgreSQL's, this code's
        assert row.schema_version in (SQLITE_SCHEMA, POSTGRES_SCHEMA)
        await store.gates.withdraw()
        assert await store.gates.attached() == []


async def test_a_refresh_moves_the_last_seen_time_and_keeps_the_start(
    database: StoreDatabase, ring: KeyRing, clock: FakeClock
) -> None:
    async with await database.open(ring, clock=clock) as store:
        first = await store.gates.announce("0.2.0")
        clock.advance(REFRESH_EVERY)
        await store.gates.announce("0.2.0")
        (row,) = await store.gates.attached()
        assert (row.instance, row.started_at) == (first.instance, first.started_at)
        assert row.seen_at == first.seen_at + REFRESH_EVERY


async def test_two_stores_in_one_process_are_two_gates(
    database: StoreDatabase, ring: KeyRing
) -> None:
    async with await database.open(ring) as one, await database.open(ring) as two:
        await one.gates.announce("0.2.0")
        await two.gates.announce("0.2.0")
        assert len(await one.gates.attached()) == 2
        await two.gates.withdraw()
        assert [gate.instance for gate in await one.gates.attached()] == [one.gates.instance]


async def test_a_migration_that_would_break_an_attached_gate_is_refused_and_changes_nothing(
    database: StoreDatabase, ring: KeyRing
) -> None:
    async with await database.open(ring) as store:
        await store.gates.announce("0.2.0")
        schema = this_schema(store)
        with pytest.raises(GatesAttached) as refused:
            await migrate_later(database, level=schema + 1)
        assert [gate.pid for gate in refused.value.gates] == [os.getpid()]
        # "seen N s ago": N is 0 unless the machine stalls between the two steps.
        named = rf"pid {os.getpid()} \(consentgate 0\.2\.0, schema {schema}, seen \d+ s ago\)"
        assert re.search(named, str(refused.value))
        assert await version_of(database) == schema
        assert await store.health() is None
        record = await approve(store)
        assert await approved(store, record)


async def test_an_additive_migration_goes_ahead_under_an_attached_gate_that_keeps_working(
    database: StoreDatabase, ring: KeyRing
) -> None:
    async with await database.open(ring) as store:
        await store.gates.announce("0.2.0")
        schema = this_schema(store)
        before = await approve(store)

        assert await migrate_later(database, level=schema) == (schema, schema + 1)

        await database.settle()
        store.mark_unhealthy()  # the next probe writes and reads the version again
        assert await store.health() is None
        assert await approved(store, before)
        after = await approve(store, subject="bob")
        assert await approved(store, after)
        await store.gates.announce("0.2.0")
        # A gate of this code (re)starting on the newer store opens it, as it is.
        async with await database.open(ring) as restarted:
            assert await restarted.health() is None
            assert await approved(restarted, after)
        assert await version_of(database) == schema + 1


async def test_a_stale_gate_is_ignored_and_a_live_one_then_sees_the_breaking_schema(
    database: StoreDatabase, ring: KeyRing
) -> None:
    async with await database.open(ring) as store:
        gone = await store.gates.announce("0.2.0")  # as if killed -9: never withdrawn
        schema = this_schema(store)
        await database.edit(
            "UPDATE gates SET seen_at = ? WHERE instance = ?",
            gone.seen_at - STALE_AFTER * REFRESH_EVERY - 1,
            gone.instance,
        )

        assert await migrate_later(database, level=schema + 1) == (schema, schema + 1)

        store.mark_unhealthy()
        problem = await store.health()
        assert problem is not None
        assert problem.kind == "upgraded"
        with pytest.raises(StartupError, match="newer than the"):
            await database.open(ring)


async def test_a_gate_that_left_does_not_hold_a_breaking_migration_back(
    database: StoreDatabase, ring: KeyRing
) -> None:
    async with await database.open(ring) as store:
        await store.gates.announce("0.2.0")
        await store.gates.withdraw()
        schema = this_schema(store)
    assert await migrate_later(database, level=schema + 1) == (schema, schema + 1)


async def test_a_newer_store_that_records_no_level_is_refused(
    database: StoreDatabase, ring: KeyRing
) -> None:
    async with await database.open(ring) as store:
        schema = this_schema(store)
    await migrate_later(database, level=schema)
    if isinstance(database, SQLiteDatabase):
        await database.edit("DELETE FROM schema_levels WHERE version = ?", schema + 1)
    else:
        await database.edit(
            "UPDATE schema_version SET compatible_from = NULL WHERE version = ?", schema + 1
        )
    with pytest.raises(StartupError, match="newer than the"):
        await database.open(ring)


async def test_a_row_not_seen_for_a_day_is_forgotten_and_a_recent_one_kept(
    database: StoreDatabase, ring: KeyRing, clock: FakeClock
) -> None:
    later = FakeClock(clock.now + FORGET_AFTER + 1)
    async with (
        await database.open(ring, clock=clock) as killed,
        await database.open(ring, clock=later) as starting,
    ):
        await killed.gates.announce("0.2.0")  # never withdrawn
        await starting.gates.announce("0.2.0")
        assert await starting.gates.forget_stale() == 1
        assert [gate.instance for gate in await starting.gates.attached()] == [
            starting.gates.instance
        ]


def test_the_postgres_reads_of_two_versions_name_the_store_s_schema() -> None:
    from consentgate.store.postgres import postgres_schema, two_versions

    assert two_versions.SCHEMA == postgres_schema.SCHEMA


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_the_step_that_brings_the_table_of_attached_gates_is_additive(backend: str) -> None:
    """Gates of the schema before it keep running while it is added: no deadlock on the
    rolling restart that brings the table in (found by its statement, whatever its
    number once other migrations are merged)."""
    from consentgate.store.postgres import postgres_schema
    from consentgate.store.sqlite import sqlite_schema

    schema = sqlite_schema if backend == "sqlite" else postgres_schema
    (index,) = [
        n
        for n, step in enumerate(schema.MIGRATIONS)
        if any("TABLE gates" in s or "TABLE consentgate.gates" in s for s in step)
    ]
    assert schema.LEVELS[index] == schema.LEVELS[index - 1]
    assert index + 1 == schema.LEVELS_FROM
