"""A serving gate's row among the store's attached gates: written before it serves,
refreshed from its own task while it serves, deleted when it stops (in-process; the
refresh interval is shortened here, the clock is the test's)."""

from __future__ import annotations

import asyncio
import os

import pytest

from consentgate.core.schema_versions import SQLITE_SCHEMA
from consentgate.serving import store_presence
from consentgate.store.sqlite import SQLiteBackend
from consentgate.web.appkeys import STORE
from tests.conftest import FakeClock, StartStack


async def test_a_serving_gate_is_attached_refreshes_its_row_and_leaves_when_it_stops(
    start_stack: StartStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_presence, "REFRESH_EVERY", 0.05)
    clock = FakeClock()
    stack = await start_stack(clock=clock)
    store = stack.gate.runner.app[STORE]

    (row,) = await store.gates.attached()
    assert (row.pid, row.schema_version) == (os.getpid(), SQLITE_SCHEMA)
    assert row.seen_at == row.started_at == int(clock.now)

    clock.advance(30)
    async with asyncio.timeout(10):
        for _ in range(500):  # the refresh task writes the row again within a few turns
            (refreshed,) = await store.gates.attached()
            if refreshed.seen_at != row.seen_at:
                break
            await asyncio.sleep(0.02)
    assert refreshed.seen_at == row.seen_at + 30
    assert (refreshed.instance, refreshed.started_at) == (row.instance, row.started_at)

    await stack.gate.runner.cleanup()  # a stop
    backend = await SQLiteBackend.open(stack.gate.config.store.path, create=False)
    try:
        assert await backend.attached_gates() == []
    finally:
        await backend.close()
