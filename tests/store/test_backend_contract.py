"""The backend protocol's guarantees, tested on each backend directly (no store on top).

What docs/store.md ("Backends") promises for every backend: rows come back exactly
as stored and unverified, pages end with a None cursor exactly when short, the
change counter moves with consent and client rows (in every process, the same
number a transaction reads) and not with binding rows, a failing transaction
leaves nothing, and a closed backend refuses work. Runs once per ``database`` parameter.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from consentgate import KeyRing
from consentgate.core.oauth.authorization_requests import ApprovalKey
from consentgate.store import StoreClosed
from consentgate.store.protocol import (
    Cursor,
    Row,
    StoreBackend,
    StoreTransaction,
)
from tests.store.conftest import CB, T0, StoreDatabase

NOW = int(T0)


@pytest.fixture
async def backend(database: StoreDatabase) -> AsyncIterator[StoreBackend]:
    opened = await database.backend()
    yield opened
    await opened.close()


def consent_row(id: str, *, signature: bytes = b"\x00" * 64, subject: str = "alice") -> Row:
    """A consent row in CONSENT_COLUMNS order; the backend never looks at the signature."""
    return (id, subject, "client-1", CB, '["openid"]', "", NOW, NOW + 3600, None, "kid", signature)


async def insert(backend: StoreBackend, *rows: Row) -> None:
    async def body(tx: StoreTransaction) -> None:
        for row in rows:
            await tx.insert_consent(row)

    await backend.transaction(body)


async def test_rows_come_back_exactly_as_stored_and_are_not_verified(
    backend: StoreBackend, database: StoreDatabase, ring: KeyRing
) -> None:
    forged = consent_row("forged")  # a signature that verifies nowhere
    await insert(backend, forged)
    assert tuple(await backend.consent("forged") or ()) == forged
    assert [
        tuple(row)
        for row in await backend.active_consents(ApprovalKey("alice", "client-1", CB, ""), NOW)
    ] == [forged]
    async with await database.open(ring) as store:  # the store on top is what verifies
        assert await store.get("forged") is None
        assert store.tamper_events == 1


async def test_pages_end_with_a_none_cursor_exactly_when_a_page_is_short(
    backend: StoreBackend,
) -> None:
    await insert(backend, *(consent_row(f"r{index}") for index in range(4)))

    async def ids(limit: int) -> list[list[str]]:
        pages: list[list[str]] = []
        cursor: Cursor | None = None
        while True:
            rows, cursor = await backend.consent_page(after=cursor, limit=limit)
            pages.append([row[0] for row in rows])
            if cursor is None:
                return pages

    assert await ids(2) == [["r0", "r1"], ["r2", "r3"], []]
    assert await ids(3) == [["r0", "r1", "r2"], ["r3"]]
    assert await ids(10) == [["r0", "r1", "r2", "r3"]]
    rows, cursor = await backend.consent_page(after=None, limit=10, subject="bob")
    assert (rows, cursor) == ([], None)


async def test_the_change_counter_is_shared_and_moves_with_consents_and_clients_only(
    backend: StoreBackend, database: StoreDatabase
) -> None:
    other = await database.backend()  # another process on the same database
    try:
        start = backend.current_counter()
        assert start is not None
        assert await other.use_binding("b1", NOW + 60)
        await database.settle()  # a backend that learns asynchronously has heard by now
        assert backend.current_counter() == start  # the gate's own rows leave the cache alone

        counters: list[int] = []

        async def write(tx: StoreTransaction) -> None:
            counters.append(await tx.change_counter())
            await tx.insert_consent(consent_row("r1"))
            counters.append(await tx.change_counter())

        await other.transaction(write)
        before, after = counters
        assert before == start
        assert after > before
        await database.settle()
        assert backend.current_counter() == after  # the same number, seen from elsewhere

        await insert(other, consent_row("r2"))
        await database.settle()
        moved = backend.current_counter()
        assert moved is not None
        assert moved > after

        async def register(tx: StoreTransaction) -> None:
            await tx.put_client(
                ("client-1", None, f'["{CB}"]', None, None, None, None, NOW, "{}", "kid", b"s")
            )

        await backend.transaction(register)  # its own write moves it too
        latest = backend.current_counter()
        assert latest is not None
        assert latest > moved
    finally:
        await other.close()


async def test_a_transaction_whose_body_raises_leaves_nothing_behind(
    backend: StoreBackend,
) -> None:
    class Refused(Exception):
        pass

    async def body(tx: StoreTransaction) -> None:
        await tx.insert_consent(consent_row("r1"))
        assert await tx.active_consents(
            ApprovalKey("alice", "client-1", CB, ""), NOW
        )  # sees its write
        raise Refused

    with pytest.raises(Refused):
        await backend.transaction(body)
    assert await backend.consent("r1") is None
    await insert(backend, consent_row("r1"))  # and the backend is usable afterwards
    assert await backend.consent("r1") is not None


async def test_a_closed_backend_refuses_work_and_cannot_tell_changes(
    database: StoreDatabase,
) -> None:
    backend = await database.backend()
    await backend.ping()
    await backend.close()
    await backend.close()  # idempotent
    assert backend.current_counter() is None
    with pytest.raises(StoreClosed, match="closed"):
        await backend.ping()
    with pytest.raises(StoreClosed, match="closed"):
        await backend.use_binding("b1", NOW + 60)
    with pytest.raises(StoreClosed, match="closed"):
        await insert(backend, consent_row("r1"))


async def test_sighting_pages_run_in_client_id_byte_order_keyed_by_the_client_id(
    backend: StoreBackend,
) -> None:
    """The table has no sequence column: its pages are keyed by the text primary key, in
    byte order on every backend (a capital letter sorts before every lower-case one)."""
    ids = [
        "https://b.example/c",
        "https://a.example/c",
        "https://B.example/c",
        "https://ä.example/c",
    ]
    for client_id in ids:
        assert await backend.record_sighting((client_id, NOW, "kid", b"\x00" * 64))

    async def pages(limit: int) -> list[list[str]]:
        seen: list[list[str]] = []
        cursor: Cursor | None = None
        while True:
            rows, cursor = await backend.sighting_page(after=cursor, limit=limit)
            seen.append([row[0] for row in rows])
            if cursor is None:
                return seen

    ordered = sorted(ids, key=lambda text: text.encode("utf-8"))
    assert ordered[0] == "https://B.example/c" and ordered[-1] == "https://ä.example/c"
    assert await pages(2) == [ordered[:2], ordered[2:], []]
    assert await pages(3) == [ordered[:3], ordered[3:]]
    assert await pages(10) == [ordered]
    rows, _cursor = await backend.sighting_page(after=None, limit=1)
    assert [tuple(row) for row in rows] == [("https://B.example/c", NOW, "kid", b"\x00" * 64)]
