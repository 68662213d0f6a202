"""The consent store's behaviour, against every backend: answers, tampering, rotation,
revocation, expiry, concurrency and the gate's single-use rows.

Every test here runs through the ``database`` and ``store`` fixtures of conftest.py,
so a second backend runs this whole suite by adding one fixture parameter. The
SQLite backend's own machinery (file checks, PRAGMAs, migrations, the query plan,
the statement trace) is tested in test_sqlite_backend.py.

No mocks: every test opens a real database under tmp_path; time comes from FakeClock.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import pytest

from consentgate import ConsentRecord, ConsentStore, KeyRing
from consentgate.core.oauth.authorization_requests import (
    ConsentQuestion,
    parse_authorization_request,
)
from consentgate.core.signed.keyring import jwk_text
from consentgate.core.signed.records import sign_record
from consentgate.signing.key_directory import load_keyring, rotate_keys
from consentgate.store import StoreClosed
from consentgate.store.parts.page_marks import PAGE_MARK_MARGIN
from consentgate.store.parts.publication import AnnouncedKeys, StoredKeys
from tests.store.conftest import (
    CB,
    T0,
    FakeClock,
    StoreDatabase,
    approve,
    approved,
    leave_pending_row,
)

# --- round trip and the matching rules --------------------------------------------------


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


async def test_a_consent_question_gets_the_answer_its_values_get(store: ConsentStore) -> None:
    await approve(store, scopes={"openid", "profile"}, resource="https://api.example")
    asked = ConsentQuestion("alice", "client-1", CB, ("openid",), "https://api.example")
    assert await store.is_approved(asked)
    assert not await store.is_approved(dataclasses.replace(asked, scopes=("email",)))
    assert not await store.is_approved(dataclasses.replace(asked, resource=""))
    assert not await store.is_approved(dataclasses.replace(asked, subject="bob"))


async def test_the_question_of_a_loopback_request_ignores_its_port(store: ConsentStore) -> None:
    """RFC 8252 §7.3: a native app's loopback port changes from run to run; the
    question the request asks is keyed without it, as the approval was."""
    loopback = "http://127.0.0.1/callback"
    await approve(store, redirect_uri=loopback, scopes={"openid"})
    parameters = (
        ("response_type", "code"),
        ("client_id", "client-1"),
        ("redirect_uri", "http://127.0.0.1:53111/callback"),
        ("scope", "openid"),
    )
    request = parse_authorization_request(
        parameters, allow_request_uri=False, allow_request_object=False
    )
    assert request.question("alice").redirect_key == loopback
    assert await store.is_approved(request.question("alice"))
    assert not await store.is_approved(request.question("bob"))


async def test_is_approved_without_a_question_needs_all_its_values(store: ConsentStore) -> None:
    with pytest.raises(TypeError, match="needs subject, client_id, redirect_uri and scopes"):
        await store.is_approved("alice", "client-1", CB)  # type: ignore[call-overload]


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
    database: StoreDatabase, ring: KeyRing, clock: FakeClock
) -> None:
    async with await database.open(ring, clock=clock, cache_size=0) as store:
        record = await approve(store, ttl=60)
        clock.advance(59)
        assert await approved(store, record)
        clock.advance(1)
        assert not await approved(store, record)


# --- revocation -------------------------------------------------------------------------


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
    database: StoreDatabase,
) -> None:
    record = await approve(store)
    await store.revoke(id=record.id)
    await database.edit("UPDATE consents SET revoked_at = NULL WHERE id = ?", record.id)
    assert not await approved(store, record)
    assert store.tamper_events == 1
    report = await store.verify_all()
    assert [(f.kind, f.id) for f in report.failures] == [("consent", record.id)]


async def test_a_tampered_row_is_never_revoked_and_so_never_re_signed(
    store: ConsentStore,
    database: StoreDatabase,
) -> None:
    record = await approve(store)
    await database.edit("UPDATE consents SET scopes = '[\"admin\"]' WHERE id = ?", record.id)
    assert await store.revoke(id=record.id) == 0
    assert not (await store.verify_all()).ok  # still reported, not laundered


# --- tampering and the answer cache -----------------------------------------------------


async def test_a_record_edited_in_the_file_is_not_honoured(
    store: ConsentStore, database: StoreDatabase, caplog: pytest.LogCaptureFixture
) -> None:
    record = await approve(store, scopes={"openid"})
    await database.edit(
        'UPDATE consents SET scopes = \'["admin","openid"]\' WHERE id = ?', record.id
    )
    with caplog.at_level(logging.WARNING, logger="consentgate.audit"):
        assert not await store.is_approved("alice", "client-1", CB, {"admin"})
    assert store.tamper_events == 1
    [line] = [r for r in caplog.records if r.name == "consentgate.audit"]
    assert line.levelno == logging.WARNING
    assert record.id in line.getMessage()
    assert "signature does not match" in line.getMessage()
    assert await store.list() == []
    assert await store.get(record.id) is None


async def test_a_forged_row_is_not_honoured(
    store: ConsentStore, database: StoreDatabase, ring: KeyRing
) -> None:
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
    insert = f"INSERT INTO consents VALUES ({', '.join('?' * 11)})"  # noqa: S608
    await database.edit(insert, *forged.to_row())
    # the same row labelled with the store's own kid
    relabelled = (*forged.to_row()[:9], ring.active_kid, genuine.signature)
    await database.edit(insert, "forged-2", *relabelled[1:])
    assert not await store.is_approved("mallory", "client-1", CB, {"openid"})
    reasons = sorted(f.reason for f in (await store.verify_all()).failures)
    assert reasons == [
        "signature does not match the fields (edited or forged)",
        f"signed with unknown key {forged.key_id!r}",
    ]


async def test_the_cache_answers_repeated_lookups_without_re_reading(
    store: ConsentStore,
    database: StoreDatabase,
) -> None:
    # A tampered row is reported each time it is read from the file, so the
    # number of tamper events counts reads: one for many lookups means cached.
    record = await approve(store)
    await database.edit("UPDATE consents SET expires_at = expires_at + 1 WHERE id = ?", record.id)
    for _ in range(5):
        assert not await approved(store, record)
    assert store.tamper_events == 1


async def test_without_a_cache_every_lookup_reads_the_file(
    database: StoreDatabase, ring: KeyRing, clock: FakeClock
) -> None:
    async with await database.open(ring, clock=clock, cache_size=0) as store:
        record = await approve(store)
        await database.edit(
            "UPDATE consents SET expires_at = expires_at + 1 WHERE id = ?", record.id
        )
        for _ in range(3):
            assert not await approved(store, record)
        assert store.tamper_events == 3


async def test_an_edit_after_the_answer_was_cached_takes_effect_at_once(
    store: ConsentStore,
    database: StoreDatabase,
) -> None:
    record = await approve(store)
    assert await approved(store, record)
    await database.edit("UPDATE consents SET expires_at = expires_at + 1 WHERE id = ?", record.id)
    assert not await approved(store, record)


async def test_writes_of_page_marks_and_bindings_do_not_empty_the_cache(
    store: ConsentStore, database: StoreDatabase
) -> None:
    record = await approve(store)
    await database.edit("UPDATE consents SET expires_at = expires_at + 1 WHERE id = ?", record.id)
    assert not await approved(store, record)
    assert await store.use_page("0" * 32, int(T0) + 60)
    assert await store.use_binding("b1", int(T0) + 60)
    assert not await approved(store, record)
    assert store.tamper_events == 1


async def test_the_cache_is_bounded(
    database: StoreDatabase, ring: KeyRing, clock: FakeClock
) -> None:
    async with await database.open(ring, clock=clock, cache_size=3) as store:
        records = [await approve(store, f"s{index}") for index in range(10)]
        for record in records:
            assert await approved(store, record)
        assert len(store._ctx.cache) == 3
        for record in records:
            assert await approved(store, record)


# --- key rotation -----------------------------------------------------------------------


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


async def test_rotation_through_the_key_directory(
    tmp_path: Path, database: StoreDatabase, clock: FakeClock
) -> None:
    keys = tmp_path / "keys"
    first = load_keyring(keys)
    async with await database.open(first, clock=clock) as store:
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


# --- another process --------------------------------------------------------------------


async def test_a_revocation_by_another_process_takes_effect_at_once(
    store: ConsentStore, database: StoreDatabase, ring: KeyRing, clock: FakeClock
) -> None:
    record = await approve(store)
    assert await approved(store, record)  # cached
    async with await database.open(ring, clock=clock) as cli:
        assert await cli.revoke(client_id="client-1") == 1
    await database.settle()  # PostgreSQL: the notification has arrived
    assert not await approved(store, record)


async def test_an_approval_by_another_process_is_seen_at_once(
    store: ConsentStore, database: StoreDatabase, ring: KeyRing, clock: FakeClock
) -> None:
    assert not await store.is_approved("alice", "client-1", CB, {"openid"})  # cached "no"
    async with await database.open(ring, clock=clock) as other:
        await approve(other)
    await database.settle()
    assert await store.is_approved("alice", "client-1", CB, {"openid"})


async def test_200_concurrent_writers_and_readers_never_hit_database_is_locked(
    database: StoreDatabase, ring: KeyRing
) -> None:
    first = await database.open(ring)
    second = await database.open(ring)  # another "process" on the same database
    try:

        async def worker(index: int) -> None:
            mine, other = (first, second) if index % 2 else (second, first)
            args = (f"s{index}", f"c{index % 7}", f"https://c{index % 7}.example/cb", {"openid"})
            record = await mine.record(*args, ttl=600)
            assert await mine.is_approved(*args)
            assert await other.is_approved(*args)
            if index % 3 == 0:
                assert await mine.revoke(id=record.id) == 1
                await database.settle()  # other may have cached the "yes" just above
                assert not await other.is_approved(*args)
                assert not await mine.is_approved(*args)
            assert await mine.use_page(f"{index:032x}", 2**40)
            assert not await other.use_page(f"{index:032x}", 2**40)

        await asyncio.gather(*(worker(index) for index in range(200)))
        report = await first.verify_all()
        assert report.ok
        assert report.checked == 200
        assert len(await second.list(include_revoked=False)) == 200 - 67
    finally:
        await first.close()
        await second.close()


async def test_a_cancelled_write_completes_and_leaves_the_store_usable(
    database: StoreDatabase, ring: KeyRing, clock: FakeClock
) -> None:
    """The write runs to its commit although its caller was cancelled. When it commits
    is the backend's: SQLite's one connection runs it before the next statement, a
    pool may run a later read first, so the check comes after close(), which waits
    for writes in flight."""
    store = await database.open(ring, clock=clock)
    task = asyncio.ensure_future(approve(store))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await approve(store, "bob")  # no transaction was left open
    await store.close()
    async with await database.open(ring, clock=clock) as reopened:
        assert await reopened.is_approved("alice", "client-1", CB, {"openid"})
        assert len(await reopened.list()) == 2


async def test_close_waits_for_writes_in_flight_and_is_idempotent(
    database: StoreDatabase, ring: KeyRing
) -> None:
    store = await database.open(ring)
    writes = [asyncio.ensure_future(approve(store, f"s{index}")) for index in range(20)]
    await asyncio.sleep(0)
    await store.close()
    await store.close()
    await asyncio.gather(*writes)
    with pytest.raises(StoreClosed, match="closed"):
        await store.list()
    async with await database.open(ring) as reopened:
        assert len(await reopened.list()) == 20


async def test_the_same_approval_from_two_processes_at_once_makes_one_record(
    database: StoreDatabase, ring: KeyRing, clock: FakeClock
) -> None:
    """Read-then-write is isolated across processes: of concurrent identical approvals
    one inserts and every other one refreshes it."""
    first = await database.open(ring, clock=clock)
    second = await database.open(ring, clock=clock)
    try:
        made = await asyncio.gather(
            *(approve(first if index % 2 else second) for index in range(20))
        )
        assert len({record.id for record in made}) == 1
        assert len(await first.list()) == 1
    finally:
        await first.close()
        await second.close()


async def test_single_use_rows_are_taken_once_across_three_processes(
    database: StoreDatabase, ring: KeyRing, clock: FakeClock
) -> None:
    """50 concurrent answers to one consent page and 50 replays of one callback, spread
    over three stores on one database: exactly one of each wins."""
    stores = [await database.open(ring, clock=clock) for _ in range(3)]
    try:
        taken = await asyncio.gather(
            *(stores[index % 3].use_page("0" * 32, int(T0) + 60) for index in range(50))
        )
        used = await asyncio.gather(
            *(stores[index % 3].use_binding("b1", int(T0) + 60) for index in range(50))
        )
        assert taken.count(True) == 1
        assert used.count(True) == 1
    finally:
        for store in stores:
            await store.close()


# --- clients ----------------------------------------------------------------------------


async def test_a_client_registration_round_trips_without_its_secrets(
    store: ConsentStore,
    database: StoreDatabase,
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
    raw = await asyncio.to_thread(database.contents)
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


async def test_a_tampered_client_is_unknown(store: ConsentStore, database: StoreDatabase) -> None:
    await store.upsert_client({"client_id": "client-1", "client_name": "Example"})
    await database.edit("UPDATE clients SET client_name = 'Your Bank' WHERE client_id = 'client-1'")
    assert await store.get_client("client-1") is None
    assert store.tamper_events == 1
    assert [c async for c in store.iter_clients()] == []
    [failure] = (await store.verify_all()).failures
    assert (failure.kind, failure.id) == ("client", "client-1")


# --- pending consent pages and bindings -------------------------------------------------


PAGE = "0190a1b2c3d4" + "ab" * 10


async def test_a_sealed_page_is_answered_once_and_its_mark_goes_when_the_page_expires(
    store: ConsentStore, clock: FakeClock
) -> None:
    results = await asyncio.gather(*(store.use_page(PAGE, int(T0) + 60) for _ in range(10)))
    assert sorted(results) == [False] * 9 + [True]
    assert await store.use_page("0" * 32, int(T0) + 60)  # another page is its own
    assert await store.count_pending() == 0  # a mark is no pending row
    clock.advance(60)
    assert await store.purge_expired() == 0  # kept a margin past the page's expiry
    assert not await store.use_page(PAGE, int(T0) + 60)
    clock.advance(PAGE_MARK_MARGIN)
    assert await store.purge_expired() == 2


async def test_approving_a_sealed_page_marks_it_and_records_in_one_commit(
    store: ConsentStore,
) -> None:
    """The page is used up only together with the approval, once, whoever asks."""

    def approve_page() -> Awaitable[ConsentRecord | None]:
        return store.approve_page(
            PAGE,
            int(T0) + 60,
            "alice",
            client_id="c",
            redirect_uri="https://c.example/cb",
            scopes=["a"],
            ttl=60,
        )

    results = await asyncio.gather(*(approve_page() for _ in range(10)))
    assert sum(result is not None for result in results) == 1
    assert len(await store.list()) == 1
    assert await store.is_approved("alice", "c", "https://c.example/cb", ["a"])
    assert not await store.use_page(PAGE, int(T0) + 60)  # a deny after it is refused too
    assert await approve_page() is None


async def test_a_binding_can_be_used_once(store: ConsentStore) -> None:
    assert await store.use_binding("b1", int(T0) + 60)
    assert not await store.use_binding("b1", int(T0) + 60)
    assert await store.use_binding("b2", int(T0) + 60)


async def test_a_used_binding_stays_used_across_stores_on_one_file(
    database: StoreDatabase, ring: KeyRing, clock: FakeClock
) -> None:
    async with (
        await database.open(ring, clock=clock) as first,
        await database.open(ring, clock=clock) as second,
    ):
        assert await first.use_binding("b1", int(T0) + 60)
        assert not await second.use_binding("b1", int(T0) + 60)


async def test_concurrent_uses_of_one_binding_let_exactly_one_through(
    store: ConsentStore,
) -> None:
    results = await asyncio.gather(*(store.use_binding("b1", int(T0) + 60) for _ in range(20)))
    assert results.count(True) == 1


async def test_purge_deletes_only_expired_pending_rows_and_bindings(
    store: ConsentStore, database: StoreDatabase, ring: KeyRing, clock: FakeClock
) -> None:
    """Pending rows an older version left behind go once expired, like the marks."""
    record = await approve(store, ttl=10)
    await leave_pending_row(database, ring, "old", "alice", int(T0) + 10)
    await leave_pending_row(database, ring, "new", "alice", int(T0) + 100)
    assert await store.count_pending() == 2
    await store.use_binding("old", int(T0) + 10)
    await store.use_binding("new", int(T0) + 100)
    clock.advance(50)
    assert await store.purge_expired() == 2
    assert await store.count_pending() == 1
    assert (await store.verify_all()).ok
    assert not await store.use_binding("new", int(T0) + 100)  # still remembered as used
    assert [r.id for r in await store.list()] == [record.id]  # consents are the audit trail


# --- readiness --------------------------------------------------------------------------


async def test_ping_answers_while_open(store: ConsentStore) -> None:
    await store.ping()


# --- hardening issue #10: bounded rows, rows that cannot be moved, retention ------------


async def test_a_pending_payload_swapped_onto_another_row_fails_verification(
    store: ConsentStore, database: StoreDatabase, ring: KeyRing
) -> None:
    """#10.2: a payload (and its signature) copied from the attacker's row over the
    victim's does not verify: ``consents verify`` names the row an older version left."""
    victim, attacker = '{"redirect_uri": "https://ok"}', '{"redirect_uri": "https://evil"}'
    await leave_pending_row(database, ring, "victim", "alice", int(T0) + 60, payload=victim)
    await leave_pending_row(database, ring, "attacker", "mallory", int(T0) + 60, payload=attacker)
    await database.edit(
        "UPDATE pending SET (payload, key_id, signature) = "
        "(SELECT payload, key_id, signature FROM pending WHERE id = 'attacker') "
        "WHERE id = 'victim'",
    )
    report = await store.verify_all()
    assert [(f.kind, f.id) for f in report.failures] == [("pending", "victim")]


@pytest.mark.parametrize(
    ("column", "value"),
    [("subject", "'alice'"), ("expires_at", "expires_at + 86400"), ("id", "'renamed'")],
)
async def test_a_pending_row_whose_id_subject_or_expiry_was_edited_fails_verification(
    store: ConsentStore, database: StoreDatabase, ring: KeyRing, column: str, value: str
) -> None:
    await leave_pending_row(database, ring, "p1", "mallory", int(T0) + 60)
    assert (await store.verify_all()).ok
    await database.edit(f"UPDATE pending SET {column} = {value}")  # noqa: S608 - test constants
    assert not (await store.verify_all()).ok


async def test_a_whole_consent_row_copied_to_another_subject_is_not_honoured(
    store: ConsentStore,
    database: StoreDatabase,
) -> None:
    """#10.2, the same review for consent rows: a signature is never movable."""
    await approve(store, subject="mallory")
    await database.edit("UPDATE consents SET subject = 'alice'")
    assert not await store.is_approved("alice", "client-1", CB, {"openid"})
    assert not await store.is_approved("mallory", "client-1", CB, {"openid"})


async def test_a_client_row_moved_to_another_client_id_is_not_honoured(
    store: ConsentStore,
    database: StoreDatabase,
) -> None:
    await store.upsert_client({"client_id": "evil", "redirect_uris": ["https://evil/cb"]})
    await store.upsert_client({"client_id": "good", "redirect_uris": [CB]})
    await database.edit("DELETE FROM clients WHERE client_id = 'good'")
    await database.edit("UPDATE clients SET client_id = 'good' WHERE client_id = 'evil'")
    assert await store.get_client("good") is None


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


async def test_the_longest_allowed_fields_are_stored_and_answered(
    store: ConsentStore, database: StoreDatabase
) -> None:
    """Every field at its bound, in characters of four UTF-8 bytes: nothing the store
    accepts is too long for an index of its backend."""
    wide = "\U0001f600"
    resource = "https://api.example/" + wide * (2048 - 20)
    redirect_uri = "https://app.example/" + wide * (2048 - 20)
    client_id = wide * 512
    record = await store.record(
        wide * 128, client_id, redirect_uri, {wide * 2047}, resource, ttl=60
    )
    assert await approved(store, record)
    assert [r.id for r in await store.list(client_id=client_id)] == [record.id]
    assert [r.id for r in await store.list(redirect_uri=redirect_uri)] == [record.id]
    assert await store.revoke(redirect_uri=redirect_uri) == 1
    assert not await approved(store, record)


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


# --- the seams: the own-write rule, pagination, a store over an opened backend ----------


async def test_an_own_approval_keeps_the_other_cached_answers(
    store: ConsentStore, database: StoreDatabase
) -> None:
    """#10.3 without looking at SQL: a tampered row is reported each time it is read,
    so the tamper count tells whether bob's cached answer survived carol's approval."""
    record = await approve(store, subject="bob")
    await database.edit("UPDATE consents SET expires_at = expires_at + 1 WHERE id = ?", record.id)
    assert not await approved(store, record)  # read once, cached as "no"
    assert store.tamper_events == 1
    await approve(store, subject="carol")  # our own write, nobody else's in between
    assert not await approved(store, record)
    assert store.tamper_events == 1  # bob's answer came from the cache
    assert await store.is_approved("carol", "client-1", CB, {"openid"})


async def test_a_revocation_by_another_process_before_an_own_write_is_not_hidden_by_it(
    store: ConsentStore, database: StoreDatabase, ring: KeyRing, clock: FakeClock
) -> None:
    """The other half of the own-write rule: when another process changed something
    since the cache was filled, an own write empties the whole cache, or bob's revoked
    approval would still be answered from it."""
    bob = await approve(store, subject="bob")
    assert await approved(store, bob)  # cached "yes"
    async with await database.open(ring, clock=clock) as cli:
        assert await cli.revoke(subject="bob") == 1
    await approve(store, subject="carol")  # before any cached answer noticed the revocation
    assert not await approved(store, bob)


async def test_listing_crosses_page_boundaries_without_losing_or_repeating_a_record(
    store: ConsentStore,
) -> None:
    made = [await approve(store, f"s{index}") for index in range(1000)]  # two full pages
    listed = await store.list()
    assert [r.id for r in listed] == [r.id for r in made]  # oldest first, each once
    report = await store.verify_all()
    assert report.ok
    assert report.checked == 1000
    assert len(await store.list(subject="s999")) == 1


async def test_a_store_is_built_on_an_opened_backend_and_closes_it(
    database: StoreDatabase, ring: KeyRing, clock: FakeClock
) -> None:
    backend = await database.backend()
    with pytest.raises(ValueError, match="cache_size must not be negative"):
        ConsentStore(backend, ring, cache_size=-1)
    async with ConsentStore(backend, ring, clock=clock) as store:
        record = await approve(store)
        assert await approved(store, record)
        assert store.path == backend.path
    with pytest.raises(StoreClosed, match="closed"):
        await backend.ping()


# --- settings shared by every process of the store ---------------------------------------


async def test_the_first_gate_claims_the_cookie_fingerprint_and_later_ones_learn_it(
    database: StoreDatabase, ring: KeyRing, clock: FakeClock
) -> None:
    first = await database.open(ring, clock=clock)
    second = await database.open(ring, clock=clock)
    try:
        claims = await asyncio.gather(
            first.claim_cookie_fingerprint("aaaa"), second.claim_cookie_fingerprint("bbbb")
        )
        assert claims[0] == claims[1]  # concurrent claims agree on one winner
        winner = claims[0]
        assert await first.claim_cookie_fingerprint("cccc") == winner
        await second.adopt_cookie_fingerprint("dddd")
        assert await first.claim_cookie_fingerprint("eeee") == "dddd"
        with pytest.raises(ValueError, match="fingerprint"):
            await first.claim_cookie_fingerprint("x" * 65)
    finally:
        await first.close()
        await second.close()


# --- public keys kept in the store -----------------------------------


async def test_a_key_is_kept_in_the_store_before_its_first_record(
    database: StoreDatabase, ring: KeyRing, clock: FakeClock
) -> None:
    store = await database.open(ring, clock=clock)
    try:
        assert (await store.stored_keys()).keys == {}
        await approve(store)
        stored = await store.stored_keys()
        assert dict(stored.keys) == {ring.active_kid: ring.public_key(ring.active_kid)}
        rotated = ring.rotated()
        store.reload_keys(rotated)
        await approve(store, "bob")
        stored = await store.stored_keys()
        assert sorted(stored.keys) == sorted(rotated.kids)
        assert stored.unreadable == ()
    finally:
        await store.close()


async def test_the_announced_keys_are_seen_by_every_process_and_are_not_stored_keys(
    database: StoreDatabase, ring: KeyRing, clock: FakeClock
) -> None:
    first = await database.open(ring, clock=clock)
    second = await database.open(ring, clock=clock)
    try:
        assert await second.announced_keys() == AnnouncedKeys("", "")
        await first.announce_key("staged", "staged-kid")
        await first.announce_key("active", ring.active_kid)
        assert await second.announced_keys() == AnnouncedKeys(ring.active_kid, "staged-kid")
        assert (await second.stored_keys()) == StoredKeys({}, ())  # named, not kept
        with pytest.raises(ValueError, match="kid"):
            await first.announce_key("active", "x" * 65)
    finally:
        await first.close()
        await second.close()


async def test_a_verifying_ring_from_the_stored_keys_checks_every_record(
    database: StoreDatabase, ring: KeyRing, clock: FakeClock
) -> None:
    writer = await database.open(ring, clock=clock)
    reader = await database.open(KeyRing.verifying(()), clock=clock)
    try:
        first = await approve(writer)
        writer.reload_keys(ring.rotated())
        second = await approve(writer, client_id="other")
        unkeyed = await reader.verify_all()  # an empty verifying ring honours nothing
        assert [failure.id for failure in unkeyed.failures] == [first.id, second.id]
        reader.reload_keys(KeyRing.verifying((await reader.stored_keys()).keys.values()))
        report = await reader.verify_all()
        assert report.ok
        assert report.checked == 2
        assert {first.key_id, second.key_id} == set(reader.keyring.kids)
        with pytest.raises(RuntimeError, match="only verify"):
            await reader.record("bob", "c", CB, {"openid"}, ttl=60)
    finally:
        await writer.close()
        await reader.close()


async def test_an_edited_stored_key_is_unreadable_and_named_at_publication(
    database: StoreDatabase, ring: KeyRing, clock: FakeClock
) -> None:
    store = await database.open(ring, clock=clock)
    try:
        assert await store.publish_keys() == ()
        impostor = KeyRing.generate()
        name = "signing_key:" + ring.active_kid
        impostor_key = impostor.public_key(impostor.active_kid)
        assert impostor_key is not None
        text = jwk_text(impostor_key)
        await database.edit("UPDATE settings SET value = ? WHERE name = ?", text, name)
        stored = await store.stored_keys()
        assert stored.keys == {}
        assert stored.unreadable == (name,)
        assert await store.publish_keys() == (ring.active_kid,)
    finally:
        await store.close()


def test_record_ids_never_start_with_a_dash() -> None:
    """``consents revoke --id -abc`` would read the id as an option: about one random
    base64url id in 64 starts with a dash, so 2,000 draws would all but surely hit one."""
    from consentgate.store.parts.consents import new_record_id

    ids = {new_record_id() for _ in range(2000)}
    assert len(ids) == 2000
    assert not any(ident.startswith("-") for ident in ids)
    assert {len(ident) for ident in ids} == {22}
