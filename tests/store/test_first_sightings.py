"""When the gate first saw a client named by a URL: written once by whichever gate saw
it first, kept across restarts, shared by every gate on the store, signed, and read
from memory once known (the remembered sign-in must not pay a round trip for it).

Runs on every backend through the fixtures of conftest.py.
"""

from __future__ import annotations

import asyncio
import time

import aiosqlite
import asyncpg
import pytest

from consentgate import KeyRing
from consentgate.core.signed.sightings import SIGHTING_COLUMNS, SightingRecord
from consentgate.store import ConsentStore, VerificationFailure
from consentgate.store.parts import verifier
from tests.store.conftest import T0, FakeClock, PostgresDatabase, SQLiteDatabase, StoreDatabase

URL_CLIENT = "https://notes.example/oauth/client.json"


async def test_a_client_is_first_seen_once_and_keeps_that_time(
    store: ConsentStore, clock: FakeClock
) -> None:
    assert await store.sightings.first_seen(URL_CLIENT) == int(T0)
    clock.advance(40 * 86400)
    assert await store.sightings.first_seen(URL_CLIENT) == int(T0)
    assert await store.sightings.first_seen(URL_CLIENT + "?v=2") == int(T0) + 40 * 86400


async def test_the_first_sighting_survives_a_restart_and_is_shared_by_another_gate(
    database: StoreDatabase, ring: KeyRing
) -> None:
    first = await database.open(ring, clock=FakeClock(T0))
    assert await first.sightings.first_seen(URL_CLIENT) == int(T0)
    other = await database.open(ring, clock=FakeClock(T0 + 3600))
    assert await other.sightings.first_seen(URL_CLIENT) == int(T0)
    await first.close()
    await other.close()
    restarted = await database.open(ring, clock=FakeClock(T0 + 86400))
    try:
        assert await restarted.sightings.first_seen(URL_CLIENT) == int(T0)
    finally:
        await restarted.close()
    (row,) = await database.read(
        "SELECT client_id, first_seen_at FROM client_sightings WHERE client_id = ?", URL_CLIENT
    )
    assert tuple(row) == (URL_CLIENT, int(T0))


async def test_two_gates_seeing_a_new_client_at_once_agree_on_the_first_writer_s_time(
    database: StoreDatabase, ring: KeyRing
) -> None:
    one = await database.open(ring, clock=FakeClock(T0))
    two = await database.open(ring, clock=FakeClock(T0 + 5))
    try:
        seen = await asyncio.gather(
            *(
                gate.sightings.first_seen(f"{URL_CLIENT}?{n}")
                for n in range(10)
                for gate in (one, two)
            )
        )
    finally:
        await one.close()
        await two.close()
    pairs = list(zip(seen[::2], seen[1::2], strict=True))
    assert all(a == b for a, b in pairs), pairs
    rows = await database.read("SELECT count(*) FROM client_sightings")
    assert rows[0][0] == 10


async def test_a_backdated_sighting_is_not_honoured(database: StoreDatabase, ring: KeyRing) -> None:
    """The time decides a warning: a row edited to look old must not silence it."""
    store = await database.open(ring, clock=FakeClock(T0))
    await store.sightings.first_seen(URL_CLIENT)
    await store.close()
    await database.edit(
        "UPDATE client_sightings SET first_seen_at = ? WHERE client_id = ?",
        int(T0) - 400 * 86400,
        URL_CLIENT,
    )
    reopened = await database.open(ring, clock=FakeClock(T0 + 60))
    try:
        assert await reopened.sightings.first_seen(URL_CLIENT) is None
        assert reopened.tamper_events == 1
        await reopened.flush_audit()
        (tampered,) = [row async for row in reopened.iter_audit(event="tampered")]
        assert tampered.details() == {
            "kind": "sighting",
            "id": URL_CLIENT,
            "reason": "signature does not match the fields (edited or forged)",
        }
    finally:
        await reopened.close()


@pytest.mark.parametrize("cache_size", [10_000, 0])
async def test_a_known_sighting_is_answered_from_memory_when_there_is_a_cache(
    database: StoreDatabase, ring: KeyRing, cache_size: int
) -> None:
    store = await database.open(ring, clock=FakeClock(T0), cache_size=cache_size)
    operations: list[str] = []
    store.time_operations(lambda name, _seconds: operations.append(name))
    try:
        await store.sightings.first_seen(URL_CLIENT)
        learned = len(operations)
        for _ in range(5):
            assert await store.sightings.first_seen(URL_CLIENT) == int(T0)
        asked = list(operations)
    finally:
        await store.close()
    assert asked[:learned] == ["sighting", "record_sighting"]
    assert asked[learned:] == ([] if cache_size else ["sighting"] * 5)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_the_step_that_brings_the_first_sightings_is_additive(backend: str) -> None:
    """Gates of the schema before it (which never read the table) keep running while it
    is added: a rolling restart brings it in without a stop."""
    from consentgate.store.postgres import postgres_schema
    from consentgate.store.sqlite import sqlite_schema

    schema = sqlite_schema if backend == "sqlite" else postgres_schema
    (index,) = [
        n
        for n, step in enumerate(schema.MIGRATIONS)
        if any(
            "TABLE client_sightings" in s or "TABLE consentgate.client_sightings" in s for s in step
        )
    ]
    assert schema.LEVELS[index] == schema.LEVELS[index - 1]
    assert index + 1 > schema.LEVELS_FROM  # its level is recorded in the store


async def test_a_store_of_the_previous_schema_gains_the_table_under_a_gate_of_that_schema(
    database: StoreDatabase, ring: KeyRing
) -> None:
    """A gate of the code before the first sightings is attached (fresh) while this code
    opens the store: the additive step goes ahead, and that gate's decisions stand."""
    from consentgate.store.postgres import postgres_schema
    from consentgate.store.sqlite import sqlite_schema

    schema = sqlite_schema if isinstance(database, SQLiteDatabase) else postgres_schema
    previous = len(schema.MIGRATIONS) - 1
    if isinstance(database, SQLiteDatabase):
        db = await aiosqlite.connect(database.path, isolation_level=None)
        try:
            await sqlite_schema.migrate(
                db,
                database.path,
                migrations=sqlite_schema.MIGRATIONS[:previous],
                levels=sqlite_schema.LEVELS[:previous],
            )
        finally:
            await db.close()
    else:
        assert isinstance(database, PostgresDatabase)
        conn = await asyncpg.connect(database.dsn)
        try:
            await postgres_schema.apply_migrations(
                conn,
                "the test database",
                migrate=True,
                migrations=postgres_schema.MIGRATIONS[:previous],
                levels=postgres_schema.LEVELS[:previous],
            )
        finally:
            await conn.close()
    now = int(time.time())
    await database.edit(
        "INSERT INTO gates (instance, schema_version, software, host, pid, started_at, "
        "seen_at, refresh_every) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        "older-gate",
        previous,
        "0.2.0",
        "elsewhere",
        1,
        now,
        now,
        15,
    )
    store = await database.open(ring, clock=FakeClock(T0))
    try:
        assert await store.sightings.first_seen(URL_CLIENT) == int(T0)
        assert [gate.instance for gate in await store.gates.attached()] == ["older-gate"]
    finally:
        await store.close()


# --- consents verify: every sighting row is checked like the other signed rows ----------


async def backdate(database: StoreDatabase, client_id: str, seconds: int) -> None:
    """An attacker with write access makes a look-alike seem older than it is."""
    await database.edit(
        "UPDATE client_sightings SET first_seen_at = first_seen_at - ? WHERE client_id = ?",
        seconds,
        client_id,
    )


async def test_verify_all_checks_and_counts_a_sighting_that_verifies(store: ConsentStore) -> None:
    await store.sightings.first_seen(URL_CLIENT)
    report = await store.verify_all()
    assert report.ok
    assert report.checked == 1
    assert report.counts == {"consent": 0, "client": 0, "pending": 0, "sighting": 1}


async def test_verify_all_names_a_sighting_moved_back_a_day(
    database: StoreDatabase, ring: KeyRing
) -> None:
    store = await database.open(ring, clock=FakeClock(T0))
    try:
        await store.sightings.first_seen(URL_CLIENT)
        await store.sightings.first_seen(URL_CLIENT + "?v=2")
        await backdate(database, URL_CLIENT, 86400)
        report = await store.verify_all()
    finally:
        await store.close()
    assert report.checked == 2
    assert report.failures == (
        VerificationFailure(
            "sighting", URL_CLIENT, "signature does not match the fields (edited or forged)"
        ),
    )
    assert store.tamper_events == 1


async def test_verify_all_names_a_sighting_signed_with_a_key_the_ring_lacks(
    store: ConsentStore, database: StoreDatabase
) -> None:
    other = KeyRing.generate()
    record = SightingRecord(URL_CLIENT, int(T0) - 400 * 86400, other.active_kid)
    _kid, signature = other.sign(record.signing_input())
    await database.edit(
        f"INSERT INTO client_sightings ({', '.join(SIGHTING_COLUMNS)}) VALUES (?, ?, ?, ?)",  # noqa: S608
        URL_CLIENT,
        record.first_seen_at,
        record.key_id,
        signature,
    )
    report = await store.verify_all()
    assert report.failures == (
        VerificationFailure(
            "sighting", URL_CLIENT, f"signed with unknown key {other.active_kid!r}"
        ),
    )


async def test_verify_all_pages_through_more_sightings_than_one_page(
    store: ConsentStore, database: StoreDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Seven rows in pages of three: the last page holds the edited row, so it is named
    only when every page was read."""
    monkeypatch.setattr(verifier, "PAGE", 3)
    clients = [f"{URL_CLIENT}?n={n}" for n in range(7)]
    for client_id in clients:
        await store.sightings.first_seen(client_id)
    await backdate(database, clients[-1], 86400)
    report = await store.verify_all()
    assert report.checked == 7
    assert report.counts["sighting"] == 7
    assert [(f.kind, f.id) for f in report.failures] == [("sighting", clients[-1])]
