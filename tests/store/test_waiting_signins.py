"""Authorization requests waiting for a sign-in at the gate: kept server-side, signed,
bound to the browser that started it, taken once (both backends)."""

from __future__ import annotations

import asyncio

from consentgate import ConsentStore
from tests.store.conftest import T0, FakeClock, StoreDatabase

KEY = "signin:abc"


async def test_a_waiting_request_is_taken_once_by_its_own_browser(store: ConsentStore) -> None:
    await store.signins.hold(KEY, "browser-1", '{"q":"x"}', int(T0) + 600)
    assert await store.signins.take(KEY, "browser-2") is None  # another browser: nothing
    assert await store.signins.take(KEY, "browser-1") == '{"q":"x"}'
    assert await store.signins.take(KEY, "browser-1") is None  # a replay: nothing


async def test_concurrent_takes_get_it_once(store: ConsentStore) -> None:
    await store.signins.hold(KEY, "browser-1", "p", int(T0) + 600)
    taken = await asyncio.gather(*(store.signins.take(KEY, "browser-1") for _ in range(5)))
    assert taken.count("p") == 1


async def test_an_expired_waiting_request_is_not_resumed(
    store: ConsentStore, clock: FakeClock
) -> None:
    await store.signins.hold(KEY, "browser-1", "p", int(T0) + 600)
    clock.advance(601)
    assert await store.signins.take(KEY, "browser-1") is None


async def test_an_edited_payload_is_refused_as_tampered(
    store: ConsentStore, database: StoreDatabase
) -> None:
    await store.signins.hold(KEY, "browser-1", "p", int(T0) + 600)
    await database.edit("UPDATE pending SET payload = 'evil' WHERE id = ?", KEY)
    assert await store.signins.take(KEY, "browser-1") is None
