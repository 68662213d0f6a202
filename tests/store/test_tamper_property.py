"""Every single-field edit of a stored row is detected, on every backend.

A property test: an attacker with write access to the database changes one column
of an active record, a revoked record or a client registration (to a value near the
original, or to anything the column takes), and the store must then neither honour
nor list the row, and ``verify_all`` must name exactly that row. Each example undoes
its edit, so one database serves every example of a test.

SQLite's columns take a value of any type (type affinity, not types), so its edits
include bytes in integer columns and floats in text ones; PostgreSQL's strict column
types refuse those before the store sees them, so its edits keep the column's type.
Whatever the database refuses (NOT NULL, a duplicate key, a NUL in text) is not an
edit, and the example is rejected. Bounded: a few dozen examples per kind of row.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import asyncpg
import pytest
from hypothesis import HealthCheck, assume, given, reject, settings
from hypothesis import strategies as st

from consentgate import ConsentRecord, ConsentStore, KeyRing
from consentgate.core.signed.records import CLIENT_COLUMNS, CONSENT_COLUMNS
from tests.store.conftest import CB, T0, FakeClock, StoreDatabase, approve, approved

#: What each backend's database refuses as an edit (the example is then rejected).
REFUSED: dict[str, tuple[type[BaseException], ...]] = {
    "sqlite": (sqlite3.IntegrityError,),
    "postgres": (asyncpg.PostgresError, asyncpg.DataError),
}

#: The column each backend orders rows by: an edit cannot move a row away from it.
POSITION: dict[str, str] = {"sqlite": "rowid", "postgres": "seq"}

_JSON_VARIANTS = [
    '["openid","profile"]',
    '["openid", "profile"]',
    '["profile","openid"]',
    '["admin","openid","profile"]',
    '["openid"]',
    "[]",
    '["openid","profile","profile"]',
    '["https://app.example/callback"]',
    '["https://app.example/callback","https://evil.example/cb"]',
]

_INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)


def near_values(original: object, ring: KeyRing) -> st.SearchStrategy[object]:
    """The edits an attacker would make to ``original``, of its own type."""
    if isinstance(original, int):
        return st.one_of(
            st.integers(-2, 2).map(lambda delta: original + delta), st.just(2**62), _INT64
        )
    if isinstance(original, str):
        return st.one_of(
            st.text(min_size=1, max_size=3).map(lambda extra: original + extra),
            st.just(original.upper()),
            st.just(original[:-1]),
            st.just(" " + original),
            st.sampled_from(_JSON_VARIANTS),
            st.sampled_from(ring.kids),
            st.text(max_size=30),
        )
    if isinstance(original, bytes):
        return st.one_of(
            st.integers(0, len(original) * 8 - 1).map(
                lambda bit: bytes(
                    b ^ (1 << (bit % 8)) if i == bit // 8 else b for i, b in enumerate(original)
                )
            ),
            st.just(original[:-1]),
            st.just(original + b"\x00"),
            st.just(bytes(64)),
            st.binary(max_size=70),
        )
    # NULL: revoked_at of an unrevoked record, or an absent client field.
    return st.one_of(st.integers(int(T0) - 10, int(T0) + 10), st.just(""))


def new_values(original: object, ring: KeyRing, *, any_type: bool) -> st.SearchStrategy[object]:
    """Values near the original and, where the column takes any type, anything at all."""
    near = near_values(original, ring)
    if not any_type:
        return st.one_of(near, st.none())
    anything = st.one_of(
        st.none(), _INT64, st.floats(allow_nan=False), st.text(max_size=30), st.binary(max_size=70)
    )
    if isinstance(original, int):
        near = st.one_of(near, st.just(str(original)), st.just(original + 0.5))
    elif isinstance(original, str):
        near = st.one_of(near, st.just(original.encode()))
    return st.one_of(near, anything)


class Rows:
    """The three rows every example starts from, on one database, and a store open on it."""

    def __init__(self, store: ConsentStore, ring: KeyRing) -> None:
        self.store = store
        self.ring = ring
        self.active: ConsentRecord
        self.revoked: ConsentRecord

    async def build(self) -> Rows:
        store = self.store
        self.active = await approve(store, "alice", resource="https://api.example")
        revoked = await approve(store, "bob")
        await store.revoke(id=revoked.id)
        found = await store.get(revoked.id)
        assert found is not None
        self.revoked = found
        await store.upsert_client(
            {
                "client_id": "client-1",
                "client_name": "Example",
                "redirect_uris": [CB],
                "logo_uri": "https://app.example/logo.png",
            }
        )
        assert (await store.verify_all()).ok
        return self


@pytest.fixture
async def rows(database: StoreDatabase, clock: FakeClock) -> Any:
    ring = KeyRing.generate().rotated()  # two keys: key_id can be changed to a known one
    store = await database.open(ring, clock=clock)
    try:
        yield await Rows(store, ring).build()
    finally:
        await store.close()


@pytest.mark.parametrize("which", ["active", "revoked", "client"])
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.function_scoped_fixture,
    ],
)
@given(data=st.data())
async def test_every_single_field_edit_of_a_stored_row_is_detected(
    database: StoreDatabase, rows: Rows, which: str, data: st.DataObject
) -> None:
    store = rows.store
    if which == "client":
        table, columns, key_column, key = "clients", CLIENT_COLUMNS, "client_id", "client-1"
        record = None
    else:
        record = rows.active if which == "active" else rows.revoked
        table, columns, key_column, key = "consents", CONSENT_COLUMNS, "id", record.id
    position = POSITION[database.name]
    [(where,)] = await database.read(
        f"SELECT {position} FROM {table} WHERE {key_column} = ?",  # noqa: S608 - constants
        key,
    )
    column = data.draw(st.sampled_from(columns), label="column")
    read = f"SELECT {column} FROM {table} WHERE {position} = ?"  # noqa: S608 - constants
    update = f"UPDATE {table} SET {column} = ? WHERE {position} = ?"  # noqa: S608 - constants
    [(before,)] = await database.read(read, where)
    value = data.draw(
        new_values(before, rows.ring, any_type=database.name == "sqlite"), label="value"
    )
    await store.flush_audit()  # the tamper rows of the example before, written
    try:
        await database.edit(update, value, where)
    except REFUSED[database.name]:
        reject()  # NOT NULL, a duplicate key, a value the column refuses: no edit
    try:
        [(after,)] = await database.read(read, where)
        # SQLite's affinity may store the same value (5.0 -> 5): no edit either.
        assume(type(after) is not type(before) or after != before)
        tampered = store.tamper_events
        if record is None:
            assert await store.get_client("client-1") is None, (column, value)
            kind = "client"
        else:
            assert not await approved(store, record), (column, value)
            assert record.id not in {r.id for r in await store.list()}, (column, value)
            kind = "consent"
        report = await store.verify_all()
        assert [f.kind for f in report.failures] == [kind], (column, value)
        assert report.checked == 3
        assert store.tamper_events > tampered
    finally:
        await store.flush_audit()  # the store's own writes first: SQLite's edit blocks
        await database.edit(update, before, where)
    assert (await store.verify_all()).ok
