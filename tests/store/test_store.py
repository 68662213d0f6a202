"""The consent store against real SQLite files: answers, tampering, rotation, revocation,
expiry, concurrency, migration, startup errors and the gate's single-use rows.

No mocks: every test opens a real file under tmp_path; time comes from FakeClock.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, reject, settings
from hypothesis import strategies as st

from consentgate import ClientRecord, ConsentRecord, ConsentStore, KeyRing
from consentgate.core.errors import StartupError
from consentgate.core.keys import load_keyring, rotate_keys
from consentgate.core.records import (
    CLIENT_COLUMNS,
    CONSENT_COLUMNS,
    MAX_PENDING_PAYLOAD,
    sign_record,
)
from consentgate.store import PendingFull
from consentgate.store.sqlite.backend import LOOKUP as _LOOKUP
from consentgate.store.sqlite.schema import SCHEMA_VERSION

REPO = Path(__file__).resolve().parents[2]
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


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def ring() -> KeyRing:
    return KeyRing.generate()


@pytest.fixture
async def store(tmp_path: Path, ring: KeyRing, clock: FakeClock) -> AsyncIterator[ConsentStore]:
    opened = await ConsentStore.open(tmp_path / "store.sqlite3", ring, clock=clock)
    yield opened
    await opened.close()


def file_of(store: ConsentStore) -> Path:
    assert store.path is not None
    return store.path


def edit(path: Path | None, sql: str, *params: object) -> None:
    """Change the file behind the store's back, as an attacker with write access would."""
    assert path is not None
    with sqlite3.connect(path) as conn:
        conn.execute(sql, params)
    conn.close()


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


# --- round trip and the matching rules ------------------------------------------------


async def test_a_recorded_approval_is_answered_listed_and_read_back(store: ConsentStore) -> None:
    record = await approve(store)
    assert record.granted_at == int(T0)
    assert record.expires_at == int(T0) + 3600
    assert record.key_id == store.keyring.active_kid
    assert await approved(store, record)
    assert await store.get(record.id) == record
    assert await store.list() == [record]
    report = await store.verify_all()
    assert report.ok
    assert report.checked == 1


async def test_every_lookup_field_must_match_exactly(store: ConsentStore) -> None:
    record = await approve(store, resource="https://api.example")
    scopes = {"openid"}
    assert await store.is_approved("alice", "client-1", CB, scopes, "https://api.example")
    assert not await store.is_approved("bob", "client-1", CB, scopes, "https://api.example")
    assert not await store.is_approved("alice", "client-2", CB, scopes, "https://api.example")
    assert not await store.is_approved("alice", "client-1", CB + "/", scopes, "https://api.example")
    assert not await store.is_approved(
        "alice", "client-1", CB.upper(), scopes, "https://api.example"
    )
    assert not await store.is_approved("alice", "client-1", CB, scopes, "")
    assert not await store.is_approved("alice", "client-1", CB, scopes, "https://api.example/")
    assert record.resource == "https://api.example"


async def test_the_requested_scopes_must_be_a_subset_of_the_approved_ones(
    store: ConsentStore,
) -> None:
    record = await approve(store, scopes={"openid", "profile"})
    assert await approved(store, record, {"openid"})
    assert await approved(store, record, {"openid", "profile"})
    assert not await approved(store, record, {"openid", "email"})
    assert not await approved(store, record, {"admin"})


async def test_a_request_without_scope_is_covered_only_by_an_approval_without_scope(
    store: ConsentStore,
) -> None:
    """Hardening #10.7: the upstream decides what "no scope" means, so ``read`` does
    not cover it; only an approval that itself had no scope does."""
    scoped = await approve(store, scopes={"read"})
    assert not await approved(store, scoped, set())
    scopeless = await approve(store, scopes=set())
    assert await approved(store, scopeless, set())
    assert not await approved(store, scopeless, {"read", "write"})


async def test_any_one_of_several_records_may_cover_the_request(store: ConsentStore) -> None:
    await approve(store, scopes={"openid"})
    await approve(store, scopes={"email"})
    assert await store.is_approved("alice", "client-1", CB, {"email"})
    assert await store.is_approved("alice", "client-1", CB, {"openid"})
    assert not await store.is_approved("alice", "client-1", CB, {"openid", "email"})


async def test_invalid_input_is_refused_when_recording(store: ConsentStore) -> None:
    with pytest.raises(TypeError, match="not a single string"):
        await store.record("alice", "client-1", CB, "openid", ttl=60)
    with pytest.raises(ValueError, match="subject must not be empty"):
        await store.record("", "client-1", CB, {"openid"}, ttl=60)
    with pytest.raises(ValueError, match="ttl must be at least one second"):
        await store.record("alice", "client-1", CB, {"openid"}, ttl=0)
    with pytest.raises(ValueError, match="NUL"):
        await store.record("alice", "client-1", CB + "\x00", {"openid"}, ttl=60)
    assert await store.list() == []


async def test_a_lookup_for_an_unstorable_value_is_simply_no(store: ConsentStore) -> None:
    await approve(store)
    assert not await store.is_approved("alice", "client-1", CB + "\x00", {"openid"})
    assert not await store.is_approved("alice", "client-1", "\ud800", {"openid"})
    with pytest.raises(TypeError):
        await store.is_approved("alice", "client-1", CB, "openid")


# --- expiry -----------------------------------------------------------------------------


async def test_an_approval_expires_at_its_expiry_second(
    store: ConsentStore, clock: FakeClock
) -> None:
    record = await approve(store, ttl=60)
    clock.advance(59.9)
    assert await approved(store, record)  # cached from here on
    assert await approved(store, record)
    clock.advance(0.1)
    assert not await approved(store, record)
    assert (await store.list())[0].status(clock()) == "expired"
    assert await store.list(include_expired=False) == []


async def test_expiry_is_enforced_without_the_cache_too(
    tmp_path: Path, ring: KeyRing, clock: FakeClock
) -> None:
    async with await ConsentStore.open(
        tmp_path / "s.sqlite3", ring, clock=clock, cache_size=0
    ) as store:
        record = await approve(store, ttl=60)
        clock.advance(59)
        assert await approved(store, record)
        clock.advance(1)
        assert not await approved(store, record)


# --- revocation ------------------------------------------------------------------------


@pytest.fixture
async def three(store: ConsentStore) -> list[ConsentRecord]:
    return [
        await approve(store, "alice", client_id="client-1", redirect_uri="https://one/cb"),
        await approve(store, "bob", client_id="client-1", redirect_uri="https://two/cb"),
        await approve(store, "alice", client_id="client-2", redirect_uri="https://two/cb"),
    ]


@pytest.mark.parametrize(
    ("selector", "revoked"),
    [
        ({"id": 0}, [0]),
        ({"client_id": "client-1"}, [0, 1]),
        ({"redirect_uri": "https://two/cb"}, [1, 2]),
        ({"subject": "alice"}, [0, 2]),
        ({"all": True}, [0, 1, 2]),
    ],
)
async def test_each_revoke_variant_revokes_exactly_what_it_names(
    store: ConsentStore,
    three: list[ConsentRecord],
    clock: FakeClock,
    selector: dict[str, Any],
    revoked: list[int],
) -> None:
    for record in three:
        assert await approved(store, record)  # fill the cache first
    if "id" in selector:
        selector = {"id": three[selector["id"]].id}
    clock.advance(10)
    assert await store.revoke(**selector) == len(revoked)
    for index, record in enumerate(three):
        assert await approved(store, record) is (index not in revoked)
    listed = {record.id: record for record in await store.list()}
    for index in revoked:
        assert listed[three[index].id].revoked_at == int(T0) + 10
        assert listed[three[index].id].status(clock()) == "revoked"
    assert await store.revoke(**selector) == 0  # nothing newly revoked
    assert (await store.verify_all()).ok  # revocations are re-signed


@pytest.mark.parametrize(
    "selector",
    [{}, {"id": "x", "subject": "alice"}, {"all": True, "client_id": "client-1"}],
)
async def test_revoke_needs_exactly_one_selector(
    store: ConsentStore, selector: dict[str, Any]
) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        await store.revoke(**selector)


async def test_revoking_many_records_works_in_batches(store: ConsentStore) -> None:
    for index in range(1203):
        await approve(store, f"s{index}")
    assert await store.revoke(client_id="client-1") == 1203
    assert await store.list(include_revoked=False) == []


async def test_an_undone_revocation_is_detected_and_not_honoured(
    store: ConsentStore,
) -> None:
    record = await approve(store)
    await store.revoke(id=record.id)
    edit(store.path, "UPDATE consents SET revoked_at = NULL WHERE id = ?", record.id)
    assert not await approved(store, record)
    assert store.tamper_events == 1
    report = await store.verify_all()
    assert [(f.kind, f.id) for f in report.failures] == [("consent", record.id)]


async def test_a_tampered_row_is_never_revoked_and_so_never_re_signed(
    store: ConsentStore,
) -> None:
    record = await approve(store)
    edit(store.path, "UPDATE consents SET scopes = '[\"admin\"]' WHERE id = ?", record.id)
    assert await store.revoke(id=record.id) == 0
    assert not (await store.verify_all()).ok  # still reported, not laundered


# --- tampering ---------------------------------------------------------------------------


async def test_a_record_edited_in_the_file_is_not_honoured(
    store: ConsentStore, caplog: pytest.LogCaptureFixture
) -> None:
    record = await approve(store, scopes={"openid"})
    edit(store.path, 'UPDATE consents SET scopes = \'["admin","openid"]\' WHERE id = ?', record.id)
    with caplog.at_level(logging.WARNING, logger="consentgate.audit"):
        assert not await store.is_approved("alice", "client-1", CB, {"admin"})
    assert store.tamper_events == 1
    [line] = [r for r in caplog.records if r.name == "consentgate.audit"]
    assert line.levelno == logging.WARNING
    assert record.id in line.getMessage()
    assert "signature does not match" in line.getMessage()
    assert await store.list() == []
    assert await store.get(record.id) is None


async def test_a_forged_row_is_not_honoured(store: ConsentStore, ring: KeyRing) -> None:
    genuine = await approve(store)
    forged = sign_record(
        ConsentRecord(
            id="forged",
            subject="mallory",
            client_id="client-1",
            redirect_uri=CB,
            scopes=frozenset({"openid"}),
            resource="",
            granted_at=int(T0),
            expires_at=int(T0) + 3600,
            revoked_at=None,
            key_id="",
            signature=b"",
        ),
        KeyRing.generate(),  # not the store's key
    )
    with sqlite3.connect(file_of(store)) as conn:
        insert = f"INSERT INTO consents VALUES ({', '.join('?' * 11)})"  # noqa: S608
        conn.execute(insert, forged.to_row())
        # the same row labelled with the store's own kid
        relabelled = (*forged.to_row()[:9], ring.active_kid, genuine.signature)
        conn.execute(insert, ("forged-2", *relabelled[1:]))
    conn.close()
    assert not await store.is_approved("mallory", "client-1", CB, {"openid"})
    reasons = sorted(f.reason for f in (await store.verify_all()).failures)
    assert reasons == [
        "signature does not match the fields (edited or forged)",
        f"signed with unknown key {forged.key_id!r}",
    ]


async def test_the_cache_answers_repeated_lookups_without_re_reading(
    store: ConsentStore,
) -> None:
    # A tampered row is reported each time it is read from the file, so the
    # number of tamper events counts reads: one for many lookups means cached.
    record = await approve(store)
    edit(store.path, "UPDATE consents SET expires_at = expires_at + 1 WHERE id = ?", record.id)
    for _ in range(5):
        assert not await approved(store, record)
    assert store.tamper_events == 1


async def test_without_a_cache_every_lookup_reads_the_file(
    tmp_path: Path, ring: KeyRing, clock: FakeClock
) -> None:
    async with await ConsentStore.open(
        tmp_path / "s.sqlite3", ring, clock=clock, cache_size=0
    ) as store:
        record = await approve(store)
        edit(store.path, "UPDATE consents SET expires_at = expires_at + 1 WHERE id = ?", record.id)
        for _ in range(3):
            assert not await approved(store, record)
        assert store.tamper_events == 3


async def test_an_edit_after_the_answer_was_cached_takes_effect_at_once(
    store: ConsentStore,
) -> None:
    record = await approve(store)
    assert await approved(store, record)
    edit(store.path, "UPDATE consents SET expires_at = expires_at + 1 WHERE id = ?", record.id)
    assert not await approved(store, record)


async def test_writes_to_pending_rows_do_not_empty_the_cache(store: ConsentStore) -> None:
    record = await approve(store)
    edit(store.path, "UPDATE consents SET expires_at = expires_at + 1 WHERE id = ?", record.id)
    assert not await approved(store, record)
    await store.put_pending("p1", "alice", "{}", int(T0) + 60)
    assert await store.use_binding("b1", int(T0) + 60)
    assert not await approved(store, record)
    assert store.tamper_events == 1


async def test_the_cache_is_bounded(tmp_path: Path, ring: KeyRing, clock: FakeClock) -> None:
    async with await ConsentStore.open(
        tmp_path / "s.sqlite3", ring, clock=clock, cache_size=3
    ) as store:
        records = [await approve(store, f"s{index}") for index in range(10)]
        for record in records:
            assert await approved(store, record)
        assert len(store._cache) == 3
        for record in records:
            assert await approved(store, record)


def test_the_lookup_is_served_by_the_lookup_index(tmp_path: Path, ring: KeyRing) -> None:
    async def create() -> None:
        async with await ConsentStore.open(tmp_path / "s.sqlite3", ring):
            pass

    asyncio.run(create())
    with sqlite3.connect(tmp_path / "s.sqlite3") as conn:
        plan = conn.execute("EXPLAIN QUERY PLAN " + _LOOKUP, ("s", "c", "r", "", 0)).fetchall()
    conn.close()
    assert "USING INDEX consents_lookup" in " ".join(str(row[-1]) for row in plan)


# --- every single-field edit is detected (property test) ---------------------------------


@dataclass(frozen=True)
class Golden:
    path: Path
    ring: KeyRing
    active: ConsentRecord
    revoked: ConsentRecord
    client: ClientRecord


@pytest.fixture(scope="module")
def golden(tmp_path_factory: pytest.TempPathFactory) -> Golden:
    """One store file with an active record, a revoked one and a client, built once."""
    path = tmp_path_factory.mktemp("golden") / "golden.sqlite3"
    ring = KeyRing.generate().rotated()  # two keys: key_id can be changed to a known one

    async def build() -> Golden:
        async with await ConsentStore.open(path, ring, clock=FakeClock()) as store:
            active = await approve(store, "alice", resource="https://api.example")
            revoked = await approve(store, "bob")
            await store.revoke(id=revoked.id)
            revoked = await store.get(revoked.id)  # type: ignore[assignment]
            client = await store.upsert_client(
                {
                    "client_id": "client-1",
                    "client_name": "Example",
                    "redirect_uris": [CB],
                    "logo_uri": "https://app.example/logo.png",
                }
            )
            assert await approved(store, active)
            assert await store.get_client("client-1") == client
            return Golden(path, ring, active, revoked, client)

    return asyncio.run(build())


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


def new_values(column: str, original: object, ring: KeyRing) -> st.SearchStrategy[object]:
    """Values near the original (the edits an attacker would make) and anything at all."""
    anything = st.one_of(
        st.none(),
        st.integers(min_value=-(2**63), max_value=2**63 - 1),
        st.floats(allow_nan=False),
        st.text(max_size=30),
        st.binary(max_size=70),
    )
    near: st.SearchStrategy[object]
    if isinstance(original, int):
        near = st.one_of(
            st.integers(-2, 2).map(lambda delta: original + delta),
            st.just(str(original)),
            st.just(original + 0.5),
            st.just(2**62),
        )
    elif isinstance(original, str):
        near = st.one_of(
            st.text(min_size=1, max_size=3).map(lambda extra: original + extra),
            st.just(original.upper()),
            st.just(original[:-1]),
            st.just(" " + original),
            st.just(original.encode()),
            st.sampled_from(_JSON_VARIANTS),
            st.sampled_from(ring.kids),
        )
    elif isinstance(original, bytes):
        near = st.one_of(
            st.integers(0, len(original) * 8 - 1).map(
                lambda bit: bytes(
                    b ^ (1 << (bit % 8)) if i == bit // 8 else b for i, b in enumerate(original)
                )
            ),
            st.just(original[:-1]),
            st.just(original + b"\x00"),
            st.just(bytes(64)),
        )
    else:  # NULL: revoked_at of an unrevoked record, or an absent client field
        near = st.one_of(st.integers(int(T0) - 10, int(T0) + 10), st.just(""))
    return st.one_of(near, anything)


#: Every column of every kind of row: an active record, a revoked one, a client.
EDITS = [
    *((which, column) for which in ("active", "revoked") for column in CONSENT_COLUMNS),
    *(("client", column) for column in CLIENT_COLUMNS),
]


@pytest.mark.parametrize(("which", "column"), EDITS)
@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(data=st.data())
def test_every_single_field_edit_of_a_stored_row_is_detected(
    golden: Golden, which: str, column: str, data: st.DataObject
) -> None:
    if which == "client":
        table, columns, key = "clients", CLIENT_COLUMNS, golden.client.client_id
    else:
        table, columns = "consents", CONSENT_COLUMNS
        key = golden.active.id if which == "active" else golden.revoked.id
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "store.sqlite3"
        shutil.copyfile(golden.path, path)
        conn = sqlite3.connect(path)
        try:
            read = f"SELECT {column}, typeof({column}) FROM {table} WHERE rowid = ?"  # noqa: S608
            [(rowid,)] = conn.execute(
                f"SELECT rowid FROM {table} WHERE {columns[0]} = ?",  # noqa: S608
                (key,),
            ).fetchall()
            before = conn.execute(read, (rowid,)).fetchone()
            value = data.draw(new_values(column, before[0], golden.ring), label="value")
            try:
                with conn:
                    conn.execute(f"UPDATE {table} SET {column} = ? WHERE rowid = ?", (value, rowid))  # noqa: S608
            except sqlite3.IntegrityError:
                reject()  # NOT NULL or a duplicate key: the file refused the edit
            after = conn.execute(read, (rowid,)).fetchone()
        finally:
            conn.close()
        assume(after != before)  # affinity may store the same value (5.0 -> 5)

        async def check() -> None:
            async with await ConsentStore.open(path, golden.ring, clock=FakeClock()) as store:
                if which == "client":
                    assert await store.get_client(golden.client.client_id) is None
                    kind = "client"
                else:
                    record = golden.active if which == "active" else golden.revoked
                    assert not await approved(store, record)
                    assert record.id not in {r.id for r in await store.list()}
                    kind = "consent"
                report = await store.verify_all()
                assert [f.kind for f in report.failures] == [kind]
                assert report.checked == 3
                assert store.tamper_events >= 1

        asyncio.run(check())


# --- key rotation ----------------------------------------------------------------------


async def test_after_rotation_old_records_verify_and_new_ones_use_the_new_key(
    store: ConsentStore, ring: KeyRing
) -> None:
    old = await approve(store, "alice")
    rotated = ring.rotated()
    store.reload_keys(rotated)
    new = await approve(store, "bob")
    assert old.key_id == ring.active_kid
    assert new.key_id == rotated.active_kid != ring.active_kid
    assert await approved(store, old)
    assert await approved(store, new)
    assert (await store.verify_all()).ok


async def test_a_removed_key_makes_its_records_absent(store: ConsentStore, ring: KeyRing) -> None:
    old = await approve(store, "alice")
    rotated = ring.rotated()
    store.reload_keys(rotated)
    new = await approve(store, "bob")
    assert await approved(store, old)  # cached answer ...
    store.reload_keys(rotated.without(ring.active_kid))
    assert not await approved(store, old)  # ... dropped with the key
    assert await approved(store, new)
    [failure] = (await store.verify_all()).failures
    assert failure.id == old.id
    assert failure.reason == f"signed with unknown key {ring.active_kid!r}"


async def test_rotation_through_the_key_directory(tmp_path: Path, clock: FakeClock) -> None:
    keys = tmp_path / "keys"
    first = load_keyring(keys)
    async with await ConsentStore.open(tmp_path / "s.sqlite3", first, clock=clock) as store:
        old = await approve(store, "alice")
        rotate_keys(keys)
        store.reload_keys(load_keyring(keys))
        new = await approve(store, "bob")
        assert new.key_id != old.key_id
        assert await approved(store, old)
        (keys / f"ed25519-{old.key_id}.pem").unlink()
        store.reload_keys(load_keyring(keys))
        assert not await approved(store, old)
        assert await approved(store, new)


async def test_revoking_re_signs_with_the_active_key(store: ConsentStore, ring: KeyRing) -> None:
    record = await approve(store)
    rotated = ring.rotated()
    store.reload_keys(rotated)
    await store.revoke(id=record.id)
    revoked = await store.get(record.id)
    assert revoked is not None
    assert revoked.key_id == rotated.active_kid


# --- another process ---------------------------------------------------------------------


async def test_a_revocation_by_another_process_takes_effect_at_once(
    store: ConsentStore, ring: KeyRing, clock: FakeClock
) -> None:
    record = await approve(store)
    assert await approved(store, record)  # cached
    async with await ConsentStore.open(file_of(store), ring, clock=clock) as cli:
        assert await cli.revoke(client_id="client-1") == 1
    assert not await approved(store, record)


async def test_an_approval_by_another_process_is_seen_at_once(
    store: ConsentStore, ring: KeyRing, clock: FakeClock
) -> None:
    assert not await store.is_approved("alice", "client-1", CB, {"openid"})  # cached "no"
    async with await ConsentStore.open(file_of(store), ring, clock=clock) as other:
        await approve(other)
    assert await store.is_approved("alice", "client-1", CB, {"openid"})


async def test_200_concurrent_writers_and_readers_never_hit_database_is_locked(
    tmp_path: Path, ring: KeyRing
) -> None:
    path = tmp_path / "busy.sqlite3"
    first = await ConsentStore.open(path, ring)
    second = await ConsentStore.open(path, ring)  # another "process" on the same file
    try:

        async def worker(index: int) -> None:
            mine, other = (first, second) if index % 2 else (second, first)
            args = (f"s{index}", f"c{index % 7}", f"https://c{index % 7}.example/cb", {"openid"})
            record = await mine.record(*args, ttl=600)
            assert await mine.is_approved(*args)
            assert await other.is_approved(*args)
            if index % 3 == 0:
                assert await mine.revoke(id=record.id) == 1
                assert not await other.is_approved(*args)
                assert not await mine.is_approved(*args)
            await mine.put_pending(f"p{index}", f"s{index}", "{}", 2**40)
            taken = await other.take_pending(f"p{index}", f"s{index}")
            assert taken is not None
            assert taken.id == f"p{index}"

        await asyncio.gather(*(worker(index) for index in range(200)))
        report = await first.verify_all()
        assert report.ok
        assert report.checked == 200
        assert len(await second.list(include_revoked=False)) == 200 - 67
    finally:
        await first.close()
        await second.close()


async def test_a_cancelled_write_completes_and_leaves_the_store_usable(
    store: ConsentStore,
) -> None:
    task = asyncio.ensure_future(approve(store))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await store.is_approved("alice", "client-1", CB, {"openid"})
    await approve(store, "bob")  # no transaction was left open
    assert len(await store.list()) == 2


async def test_close_waits_for_writes_in_flight_and_is_idempotent(
    tmp_path: Path, ring: KeyRing
) -> None:
    store = await ConsentStore.open(tmp_path / "s.sqlite3", ring)
    writes = [asyncio.ensure_future(approve(store, f"s{index}")) for index in range(20)]
    await asyncio.sleep(0)
    await store.close()
    await store.close()
    await asyncio.gather(*writes)
    with pytest.raises(RuntimeError, match="closed"):
        await store.list()
    async with await ConsentStore.open(tmp_path / "s.sqlite3", ring) as reopened:
        assert len(await reopened.list()) == 20


# --- migration ---------------------------------------------------------------------------

#: The first schema exactly as it shipped (schema version 1), frozen here on purpose.
SCHEMA_V1 = """
CREATE TABLE consents (
    id TEXT NOT NULL PRIMARY KEY,
    subject TEXT NOT NULL,
    client_id TEXT NOT NULL,
    redirect_uri TEXT NOT NULL,
    scopes TEXT NOT NULL,
    resource TEXT NOT NULL,
    granted_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER,
    key_id TEXT NOT NULL,
    signature BLOB NOT NULL
);
CREATE INDEX consents_lookup ON consents (subject, client_id, redirect_uri, resource, expires_at);
CREATE INDEX consents_by_client ON consents (client_id);
CREATE INDEX consents_by_redirect_uri ON consents (redirect_uri);
CREATE TABLE clients (
    client_id TEXT NOT NULL PRIMARY KEY,
    client_name TEXT,
    redirect_uris TEXT NOT NULL,
    client_uri TEXT,
    logo_uri TEXT,
    tos_uri TEXT,
    policy_uri TEXT,
    registered_at INTEGER NOT NULL,
    registration TEXT NOT NULL,
    key_id TEXT NOT NULL,
    signature BLOB NOT NULL
);
PRAGMA user_version = 1;
"""


async def test_a_store_of_the_first_schema_is_migrated_and_its_rows_still_verify(
    tmp_path: Path, ring: KeyRing, clock: FakeClock
) -> None:
    path = tmp_path / "v1.sqlite3"
    record = sign_record(
        ConsentRecord(
            id="old-1",
            subject="alice",
            client_id="client-1",
            redirect_uri=CB,
            scopes=frozenset({"openid"}),
            resource="",
            granted_at=int(T0) - 100,
            expires_at=int(T0) + 3600,
            revoked_at=None,
            key_id="",
            signature=b"",
        ),
        ring,
    )
    client = sign_record(ClientRecord.from_registration({"client_id": "client-1"}, 1), ring)
    with sqlite3.connect(path) as conn:
        conn.executescript(SCHEMA_V1)
        values = ", ".join("?" * 11)
        conn.execute(f"INSERT INTO consents VALUES ({values})", record.to_row())  # noqa: S608
        conn.execute(f"INSERT INTO clients VALUES ({values})", client.to_row())  # noqa: S608
    conn.close()

    async with await ConsentStore.open(path, ring, clock=clock) as store:
        assert await approved(store, record)
        assert await store.get_client("client-1") == client
        assert (await store.verify_all()).ok
        await store.put_pending("p1", "alice", "{}", int(T0) + 60)
        assert await store.take_pending("p1", "alice") is not None
        assert await store.use_binding("b1", int(T0) + 60)
        assert await store.revoke(id="old-1") == 1
        assert not await approved(store, record)
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    conn.close()
    assert {"consents", "clients", "pending", "used_bindings", "counters"} <= tables


# --- startup errors ----------------------------------------------------------------------


def open_unprivileged(path: Path) -> subprocess.CompletedProcess[str]:
    """Open a store in a child process that file modes apply to.

    Root ignores file modes, so when the tests run as root the child drops its
    capabilities with setpriv (util-linux) and stays uid 0 without them.
    """
    code = textwrap.dedent(
        """
        import asyncio, sys
        from consentgate.core.errors import StartupError
        from consentgate.core.keys import KeyRing
        from consentgate.store import ConsentStore

        async def main():
            store = await ConsentStore.open(sys.argv[1], KeyRing.generate())
            await store.close()

        try:
            asyncio.run(main())
        except StartupError as exc:
            print(exc)
            sys.exit(3)
        """
    )
    command = [sys.executable, "-c", code, str(path)]
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv: root ignores file modes")
        command = [setpriv, "--inh-caps=-all", "--bounding-set=-all", *command]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(command, capture_output=True, text=True, timeout=60, env=env, check=False)


async def test_a_missing_directory_is_a_clear_startup_error(tmp_path: Path, ring: KeyRing) -> None:
    path = tmp_path / "missing" / "store.sqlite3"
    with pytest.raises(StartupError) as caught:
        await ConsentStore.open(path, ring)
    assert str(caught.value) == (
        f"the directory of the consent store {path} does not exist: {path.parent}"
    )


async def test_a_corrupt_file_is_a_clear_startup_error(tmp_path: Path, ring: KeyRing) -> None:
    path = tmp_path / "store.sqlite3"
    path.write_bytes(b"this is not SQLite, just some bytes\n" * 200)
    with pytest.raises(StartupError) as caught:
        await ConsentStore.open(path, ring)
    assert str(caught.value) == (
        f"the consent store {path} is not a SQLite database (corrupt, or another kind of file)"
    )


async def test_a_file_that_is_a_directory_is_a_clear_startup_error(
    tmp_path: Path, ring: KeyRing
) -> None:
    with pytest.raises(StartupError, match="is a directory, not a file"):
        await ConsentStore.open(tmp_path, ring)


async def test_a_newer_schema_is_a_clear_startup_error(tmp_path: Path, ring: KeyRing) -> None:
    path = tmp_path / "store.sqlite3"
    async with await ConsentStore.open(path, ring):
        pass
    edit(path, "PRAGMA user_version = 99")
    with pytest.raises(StartupError) as caught:
        await ConsentStore.open(path, ring)
    assert str(caught.value) == (
        f"the consent store {path} has schema version 99, newer than the {SCHEMA_VERSION} "
        "this consentgate knows; upgrade consentgate"
    )


async def test_another_applications_database_is_refused(tmp_path: Path, ring: KeyRing) -> None:
    path = tmp_path / "other.sqlite3"
    edit(path, "CREATE TABLE users (name TEXT)")
    with pytest.raises(StartupError, match=r"SQLite database of something else .* 'users'"):
        await ConsentStore.open(path, ring)
    with sqlite3.connect(path) as conn:  # and it was left alone
        assert [row[0] for row in conn.execute("SELECT name FROM sqlite_master")] == ["users"]
    conn.close()


async def test_a_missing_file_is_refused_when_creation_is_off(
    tmp_path: Path, ring: KeyRing
) -> None:
    path = tmp_path / "store.sqlite3"
    with pytest.raises(StartupError, match="does not exist; the gate creates it"):
        await ConsentStore.open(path, ring, create=False)
    assert not path.exists()


async def test_a_new_store_file_is_private(tmp_path: Path, ring: KeyRing) -> None:
    path = tmp_path / "store.sqlite3"
    async with await ConsentStore.open(path, ring):
        assert path.stat().st_mode & 0o777 == 0o600


def test_a_read_only_directory_is_a_clear_startup_error(tmp_path: Path) -> None:
    directory = tmp_path / "ro"
    directory.mkdir()
    directory.chmod(0o500)
    try:
        result = open_unprivileged(directory / "store.sqlite3")
    finally:
        directory.chmod(0o700)
    assert result.returncode == 3, result.stderr
    assert result.stdout.strip() == (
        f"cannot create the consent store {directory / 'store.sqlite3'}: Permission denied "
        f"(is {directory} writable?)"
    )


def test_an_existing_store_in_a_read_only_directory_is_a_clear_startup_error(
    tmp_path: Path, ring: KeyRing
) -> None:
    directory = tmp_path / "ro"
    directory.mkdir()
    path = directory / "store.sqlite3"

    async def create() -> None:
        async with await ConsentStore.open(path, ring):
            pass

    asyncio.run(create())
    directory.chmod(0o500)
    try:
        result = open_unprivileged(path)
    finally:
        directory.chmod(0o700)
    assert result.returncode == 3, result.stderr
    assert re.fullmatch(
        rf"the consent store {re.escape(str(path))} is read-only \(.*\); the gate must be able "
        rf"to write it and to create store.sqlite3-wal and store.sqlite3-shm in "
        rf"{re.escape(str(directory))}\n",
        result.stdout,
    ), result.stdout


def test_a_read_only_store_file_is_a_clear_startup_error(tmp_path: Path, ring: KeyRing) -> None:
    path = tmp_path / "store.sqlite3"

    async def create() -> None:
        async with await ConsentStore.open(path, ring):
            pass

    asyncio.run(create())
    path.chmod(0o400)
    result = open_unprivileged(path)
    assert result.returncode == 3, result.stderr
    assert result.stdout.startswith(
        f"the consent store {path} is read-only (attempt to write a readonly database)"
    )


def test_a_writable_store_opens_in_the_unprivileged_child(tmp_path: Path) -> None:
    # The control for the three tests above: the same child succeeds when allowed.
    result = open_unprivileged(tmp_path / "store.sqlite3")
    assert result.returncode == 0, result.stdout + result.stderr


# --- clients -------------------------------------------------------------------------------


async def test_a_client_registration_round_trips_without_its_secrets(
    store: ConsentStore,
) -> None:
    stored = await store.upsert_client(
        {
            "client_id": "client-1",
            "client_secret": "s3cr3t",
            "registration_access_token": "t0k3n",
            "client_name": "Example",
            "redirect_uris": [CB],
            "tos_uri": "https://app.example/tos",
        }
    )
    assert await store.get_client("client-1") == stored
    assert stored.registered_at == int(T0)
    assert stored.client_name == "Example"
    assert stored.tos_uri == "https://app.example/tos"
    raw = await asyncio.to_thread(
        lambda: file_of(store).read_bytes() + Path(f"{store.path}-wal").read_bytes()
    )
    assert b"s3cr3t" not in raw
    assert b"t0k3n" not in raw
    assert await store.get_client("client-2") is None


async def test_an_update_keeps_the_first_registration_time(
    store: ConsentStore, clock: FakeClock
) -> None:
    await store.upsert_client({"client_id": "client-1", "client_name": "One"})
    clock.advance(100)
    updated = await store.upsert_client({"client_id": "client-1", "client_name": "Two"})
    assert updated.registered_at == int(T0)
    assert updated.client_name == "Two"
    assert await store.get_client("client-1") == updated


async def test_a_tampered_client_is_unknown(store: ConsentStore) -> None:
    await store.upsert_client({"client_id": "client-1", "client_name": "Example"})
    edit(store.path, "UPDATE clients SET client_name = 'Your Bank' WHERE client_id = 'client-1'")
    assert await store.get_client("client-1") is None
    assert store.tamper_events == 1
    assert [c async for c in store.iter_clients()] == []
    [failure] = (await store.verify_all()).failures
    assert (failure.kind, failure.id) == ("client", "client-1")


# --- pending consent pages and bindings --------------------------------------------------


async def test_a_pending_row_is_taken_once_and_only_by_its_subject(
    store: ConsentStore, clock: FakeClock
) -> None:
    await store.put_pending("p1", "alice", '{"q": 1}', int(T0) + 60)
    row = await store.get_pending("p1")
    assert row is not None
    assert (row.subject, row.payload, row.created_at, row.expires_at) == (
        "alice",
        '{"q": 1}',
        int(T0),
        int(T0) + 60,
    )
    assert await store.get_pending("p1") == row  # reading does not consume
    assert await store.take_pending("p1", "mallory") is None
    assert await store.take_pending("p1", "alice") == row
    assert await store.take_pending("p1", "alice") is None
    assert await store.get_pending("p1") is None


async def test_an_expired_pending_row_is_neither_read_nor_taken(
    store: ConsentStore, clock: FakeClock
) -> None:
    await store.put_pending("p1", "alice", "{}", int(T0) + 60)
    clock.advance(60)
    assert await store.get_pending("p1") is None
    assert await store.take_pending("p1", "alice") is None
    assert await store.purge_expired() == 1


async def test_two_concurrent_answers_take_a_pending_row_once(store: ConsentStore) -> None:
    await store.put_pending("p1", "alice", "{}", int(T0) + 60)
    results = await asyncio.gather(*(store.take_pending("p1", "alice") for _ in range(10)))
    assert sum(result is not None for result in results) == 1


async def test_a_duplicate_pending_id_is_refused(store: ConsentStore) -> None:
    await store.put_pending("p1", "alice", "{}", int(T0) + 60)
    with pytest.raises(ValueError, match="exists"):
        await store.put_pending("p1", "bob", "{}", int(T0) + 60)


async def test_pending_rows_beyond_the_limit_evict_the_subjects_oldest(
    store: ConsentStore, clock: FakeClock
) -> None:
    for index in range(5):
        await store.put_pending(f"p{index}", "alice", "{}", int(T0) + 600, max_per_subject=3)
        await store.put_pending(f"q{index}", "bob", "{}", int(T0) + 600)
        clock.advance(1)
    kept = [index for index in range(5) if await store.get_pending(f"p{index}")]
    assert kept == [2, 3, 4]
    assert all([await store.get_pending(f"q{index}") for index in range(5)])


async def test_a_binding_can_be_used_once(store: ConsentStore) -> None:
    assert await store.use_binding("b1", int(T0) + 60)
    assert not await store.use_binding("b1", int(T0) + 60)
    assert await store.use_binding("b2", int(T0) + 60)


async def test_a_used_binding_stays_used_across_stores_on_one_file(
    tmp_path: Path, ring: KeyRing, clock: FakeClock
) -> None:
    path = tmp_path / "shared.sqlite3"
    async with (
        await ConsentStore.open(path, ring, clock=clock) as first,
        await ConsentStore.open(path, ring, clock=clock) as second,
    ):
        assert await first.use_binding("b1", int(T0) + 60)
        assert not await second.use_binding("b1", int(T0) + 60)


async def test_concurrent_uses_of_one_binding_let_exactly_one_through(
    store: ConsentStore,
) -> None:
    results = await asyncio.gather(*(store.use_binding("b1", int(T0) + 60) for _ in range(20)))
    assert results.count(True) == 1


async def test_purge_deletes_only_expired_pending_rows_and_bindings(
    store: ConsentStore, clock: FakeClock
) -> None:
    record = await approve(store, ttl=10)
    await store.put_pending("old", "alice", "{}", int(T0) + 10)
    await store.put_pending("new", "alice", "{}", int(T0) + 100)
    await store.use_binding("old", int(T0) + 10)
    await store.use_binding("new", int(T0) + 100)
    clock.advance(50)
    assert await store.purge_expired() == 2
    assert await store.get_pending("new") is not None
    assert not await store.use_binding("new", int(T0) + 100)  # still remembered as used
    assert [r.id for r in await store.list()] == [record.id]  # consents are the audit trail


# --- readiness and the documented example ------------------------------------------------


async def test_ping_answers_while_open(store: ConsentStore) -> None:
    await store.ping()


def test_the_documented_library_example_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    text = (REPO / "docs" / "store.md").read_text(encoding="utf-8")
    match = re.search(r"```python\n(.*?)```", text, re.DOTALL)
    assert match is not None
    monkeypatch.chdir(tmp_path)
    exec(compile(match.group(1), "docs/store.md", "exec"), {"__name__": "__main__"})  # noqa: S102
    assert capsys.readouterr().out == "approved: True\nafter revocation: False\n"


# --- hardening issue #10: bounded rows, rows that cannot be moved, retention -------------


async def test_a_pending_payload_swapped_onto_another_row_is_not_honoured(
    store: ConsentStore,
) -> None:
    """#10.2: copying the attacker's sealed payload (and its signature) over the victim's
    row must not make the victim's Allow approve the attacker's request."""
    await store.put_pending("victim", "alice", '{"redirect_uri": "https://ok"}', int(T0) + 60)
    await store.put_pending("attacker", "mallory", '{"redirect_uri": "https://evil"}', int(T0) + 60)
    edit(
        store.path,
        "UPDATE pending SET (payload, key_id, signature) = "
        "(SELECT payload, key_id, signature FROM pending WHERE id = 'attacker') "
        "WHERE id = 'victim'",
    )
    assert await store.get_pending("victim") is None
    report = await store.verify_all()
    assert [(f.kind, f.id) for f in report.failures] == [("pending", "victim")]
    assert await store.take_pending("victim", "alice") is None
    assert store.tamper_events == 3


@pytest.mark.parametrize(
    ("column", "value"),
    [("subject", "'alice'"), ("expires_at", "expires_at + 86400"), ("id", "'renamed'")],
)
async def test_a_pending_row_whose_id_subject_or_expiry_was_edited_is_not_honoured(
    store: ConsentStore, column: str, value: str
) -> None:
    await store.put_pending("p1", "mallory", "{}", int(T0) + 60)
    edit(store.path, f"UPDATE pending SET {column} = {value}")  # noqa: S608 - test constants
    for pending_id in ("p1", "renamed"):
        assert await store.get_pending(pending_id) is None
    assert not (await store.verify_all()).ok
    assert await store.take_pending("p1", "alice") is None


async def test_a_whole_consent_row_copied_to_another_subject_is_not_honoured(
    store: ConsentStore,
) -> None:
    """#10.2, the same review for consent rows: a signature is never movable."""
    await approve(store, subject="mallory")
    edit(store.path, "UPDATE consents SET subject = 'alice'")
    assert not await store.is_approved("alice", "client-1", CB, {"openid"})
    assert not await store.is_approved("mallory", "client-1", CB, {"openid"})


async def test_a_client_row_moved_to_another_client_id_is_not_honoured(
    store: ConsentStore,
) -> None:
    await store.upsert_client({"client_id": "evil", "redirect_uris": ["https://evil/cb"]})
    await store.upsert_client({"client_id": "good", "redirect_uris": [CB]})
    edit(store.path, "DELETE FROM clients WHERE client_id = 'good'")
    edit(store.path, "UPDATE clients SET client_id = 'good' WHERE client_id = 'evil'")
    assert await store.get_client("good") is None


async def test_pending_rows_per_source_are_capped_whatever_the_subject(
    store: ConsentStore, clock: FakeClock
) -> None:
    """#10.1: a client without a cookie gets a new subject per request, not a new address."""
    for index in range(8):
        await store.put_pending(
            f"p{index}", f"fresh-{index}", "{}", int(T0) + 600, source="10.0.0.1", max_per_source=3
        )
        clock.advance(1)
    await store.put_pending(
        "other", "bob", "{}", int(T0) + 600, source="10.0.0.2", max_per_source=3
    )
    kept = [index for index in range(8) if await store.get_pending(f"p{index}")]
    assert kept == [5, 6, 7]
    assert await store.get_pending("other") is not None
    assert await store.count_pending() == 4


async def test_a_full_pending_table_refuses_new_rows_and_keeps_the_old(
    store: ConsentStore, clock: FakeClock
) -> None:
    for index in range(3):
        await store.put_pending(f"p{index}", "alice", "{}", int(T0) + 60, max_total=3)
    with pytest.raises(PendingFull):
        await store.put_pending("p3", "bob", "{}", int(T0) + 60, max_total=3)
    assert await store.get_pending("p3") is None
    assert all([await store.get_pending(f"p{index}") for index in range(3)])
    clock.advance(60)  # expired rows do not count
    await store.put_pending("p4", "bob", "{}", int(T0) + 600, max_total=3)


async def test_a_pending_payload_larger_than_the_bound_is_refused(store: ConsentStore) -> None:
    with pytest.raises(ValueError, match="larger than"):
        await store.put_pending("p1", "alice", "x" * (MAX_PENDING_PAYLOAD + 1), int(T0) + 60)
    assert await store.count_pending() == 0


async def test_approving_the_same_thing_again_refreshes_the_record_instead_of_adding_one(
    store: ConsentStore, clock: FakeClock
) -> None:
    """#10.3: identical active approvals are refreshed, so the table does not grow."""
    first = await approve(store, ttl=100)
    clock.advance(50)
    second = await approve(store, ttl=100)
    assert second.id == first.id
    assert second.granted_at == first.granted_at
    assert second.expires_at == int(T0) + 150
    records = await store.list()
    assert [r.id for r in records] == [first.id]
    assert records[0].expires_at == int(T0) + 150  # signed with the new expiry
    assert (await store.verify_all()).ok
    different = await approve(store, scopes={"openid"})  # not identical: a new record
    assert different.id != first.id
    assert len(await store.list()) == 2


async def test_an_approval_does_not_empty_the_cache_of_other_answers(
    store: ConsentStore,
) -> None:
    """#10.3: a new approval forgets only its own key, not everyone's cached answers."""
    await approve(store, subject="bob")
    assert await store.is_approved("bob", "client-1", CB, {"openid"})  # cached now
    edit(store.path, "UPDATE consents SET client_id = 'sneaky'")  # behind the cache
    # the edit is visible to the next check (another connection committed) ...
    assert not await store.is_approved("bob", "client-1", CB, {"openid"})
    await approve(store, subject="bob", client_id="client-2")
    assert await store.is_approved("bob", "client-2", CB, {"openid"})
    lookups = 0

    def count(statement: str) -> None:
        nonlocal lookups
        lookups += statement.startswith("SELECT id, subject")

    db = store._backend._db  # type: ignore[attr-defined]
    await db.set_trace_callback(count)
    await approve(store, subject="carol")
    assert await store.is_approved("bob", "client-2", CB, {"openid"})
    assert lookups == 1  # the one inside carol's write; bob's answer came from the cache
    await db.set_trace_callback(None)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("redirect_uri", "https://app.example/" + "x" * 8192),
        ("scopes", {"s" * 4096}),
        ("resource", "https://api.example/" + "r" * 4096),
        ("client_id", "c" * 1024),
    ],
)
async def test_oversized_fields_are_not_stored(
    store: ConsentStore, field: str, value: object
) -> None:
    with pytest.raises(ValueError, match=field.rstrip("s") if field == "scopes" else field):
        await approve(store, **{field: value})  # type: ignore[arg-type]
    assert await store.list() == []


async def test_records_past_the_retention_period_are_purged_and_others_kept(
    store: ConsentStore, clock: FakeClock
) -> None:
    day = 86400
    expired = await approve(store, subject="old", ttl=day)
    revoked = await approve(store, subject="gone", ttl=400 * day)
    recent = await approve(store, subject="recent", ttl=10 * day)
    active = await approve(store, subject="active", ttl=400 * day)
    await store.revoke(id=revoked.id)
    clock.advance(95 * day)
    assert await store.purge_expired(keep_records=90 * day) == 2
    kept = {r.id for r in await store.list()}
    assert kept == {recent.id, active.id}
    assert expired.id not in kept
    assert await store.purge_expired() == 0  # without retention, records stay
