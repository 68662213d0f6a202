"""The store histogram's timing wrapper: every protocol coroutine is timed, success or
failure, and the synchronous hot-path methods are handed through untouched."""

from __future__ import annotations

from pathlib import Path

import pytest

from consentgate import ConsentStore, KeyRing
from consentgate.store import StoreClosed
from consentgate.store.timing import TimedBackend
from tests.store.conftest import CB, FakeClock, StoreDatabase, approve


async def test_each_round_trip_is_reported_by_name_and_a_cached_answer_reports_none(
    database: StoreDatabase, ring: KeyRing, clock: FakeClock
) -> None:
    seen: list[tuple[str, float]] = []
    store = await database.open(ring, clock=clock)
    try:
        store.time_operations(lambda name, seconds: seen.append((name, seconds)))
        record = await approve(store)
        assert await store.is_approved("alice", "client-1", CB, {"openid"})
        names = [name for name, _ in seen]
        assert names[0] == "transaction"
        assert "active_consents" in names
        assert all(seconds >= 0 for _, seconds in seen)
        before = len(seen)
        assert await store.is_approved("alice", "client-1", CB, {"openid"})  # cached
        assert len(seen) == before
        assert (await store.get(record.id)) == record
        assert seen[-1][0] == "consent"
    finally:
        await store.close()


async def test_a_failed_operation_is_timed_too(tmp_path: Path, ring: KeyRing) -> None:
    seen: list[str] = []
    store = await ConsentStore.open(f"{tmp_path}/s.sqlite3", ring)
    store.time_operations(lambda name, seconds: seen.append(name))
    await store.close()
    with pytest.raises(StoreClosed, match="closed"):
        await store.get("x")
    assert seen == ["close", "consent"]


async def test_synchronous_methods_and_properties_pass_through(
    database: StoreDatabase,
) -> None:
    backend = await database.backend()
    try:
        timed = TimedBackend.wrap(backend, lambda name, seconds: None)
        assert timed.current_counter == backend.current_counter  # the same bound method
        assert timed.path == backend.path
    finally:
        await backend.close()
