"""The audit trail's high-water mark in the keys directory, against every backend.

Someone with write access to the database can delete every audit row and the chain's
head setting: the chain alone then verifies as an empty trail, and the gate begins a
new one. The keys directory (kept apart from the data, as the store's birth record
is) remembers how far the chain reached; a trail that went back to empty or behind
that mark is named, by the store, the verify commands and readiness.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from consentgate import ConsentStore, KeyRing
from consentgate.audit.trail import HEAD_SETTING
from consentgate.store.auditmark import MARK_NAME, read_mark
from tests.store.conftest import FakeClock, StoreDatabase
from tests.store.test_audit_table import DAY, approved_event, rows_of


@pytest.fixture
def keys_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "keys"
    directory.mkdir(mode=0o700)
    return directory


async def gate_store(
    database: StoreDatabase, ring: KeyRing, clock: FakeClock, keys_dir: Path
) -> ConsentStore:
    """A store as the gate opens it: keeping the mark in ``keys_dir``."""
    store = await database.open(ring, clock=clock)
    assert await store.keep_audit_mark(keys_dir) is None
    return store


async def appended(store: ConsentStore, count: int, start: int = 0) -> None:
    for n in range(start, start + count):
        store.audit.emit(approved_event(n))
    await store.flush_audit()


async def test_a_trail_wiped_to_empty_is_named_against_the_mark(
    database: StoreDatabase, ring: KeyRing, clock: FakeClock, keys_dir: Path
) -> None:
    store = await gate_store(database, ring, clock, keys_dir)
    await appended(store, 5)
    await store.close()  # the mark is written at the latest when the store closes
    mark = read_mark(keys_dir)
    assert mark is not None and not isinstance(mark, str) and mark.seq == 5
    await database.edit("DELETE FROM audit")
    await database.edit("DELETE FROM settings WHERE name = ?", HEAD_SETTING)
    again = await database.open(ring, clock=clock)
    try:
        assert (await again.verify_audit()).ok  # the chain alone cannot tell
        problem = await again.keep_audit_mark(keys_dir)
        assert problem is not None
        assert "reached row 5" in problem and "the trail is empty" in problem
        # The gate goes on appending: a new chain from row 1 is still behind the mark,
        await appended(again, 2, start=10)
        assert "no row from 5 on" in (await again.audit_mark_problem() or "")
        # and once it passes the mark, its row 5 is not the one recorded.
        await appended(again, 4, start=20)
        assert "was replaced" in (await again.audit_mark_problem() or "")
    finally:
        await again.close()
    still = read_mark(keys_dir)
    assert still is not None and not isinstance(still, str)
    assert (still.seq, still.hash) == (mark.seq, mark.hash)  # never moved by the new chain


async def test_a_tail_cut_back_to_an_older_signed_head_is_named_against_the_mark(
    database: StoreDatabase, ring: KeyRing, clock: FakeClock, keys_dir: Path
) -> None:
    store = await gate_store(database, ring, clock, keys_dir)
    try:
        await appended(store, 3)
        older_head = (await store._backend.settings(HEAD_SETTING))[HEAD_SETTING]
        await appended(store, 4, start=3)
        await store.flush_audit_mark()
        # Rows 4..7 deleted and the head of row 3 put back (from an older copy):
        await database.edit("DELETE FROM audit WHERE seq > 3")
        await database.edit(
            "UPDATE settings SET value = ? WHERE name = ?", older_head, HEAD_SETTING
        )
        assert (await store.verify_audit()).ok  # the chain alone cannot tell
        problem = await store.audit_mark_problem()
        assert problem is not None and "reached row 7" in problem
        assert "no row from 7 on" in problem
    finally:
        await store.close()


async def test_no_false_alarm_after_a_restart_a_retention_cut_or_another_instance(
    database: StoreDatabase, ring: KeyRing, clock: FakeClock, tmp_path: Path, keys_dir: Path
) -> None:
    store = await gate_store(database, ring, clock, keys_dir)
    await appended(store, 3)
    await store.close()
    restarted = await gate_store(database, ring, clock, keys_dir)  # asserts no problem
    other_keys = tmp_path / "keys-copy"
    other_keys.mkdir(mode=0o700)
    (other_keys / MARK_NAME).write_bytes((keys_dir / MARK_NAME).read_bytes())
    stale = read_mark(other_keys)  # row 3, which retention will remove
    assert stale is not None and not isinstance(stale, str) and stale.seq == 3
    other = await gate_store(database, ring, clock, other_keys)  # an older copy of the mark
    try:
        clock.advance(10 * DAY)
        await appended(other, 4, start=3)  # the other instance moves the shared trail on
        await other.flush_audit_mark()
        assert await restarted.audit_mark_problem() is None  # its mark is a lower bound
        await appended(restarted, 1, start=9)
        await restarted.flush_audit_mark()
        assert await restarted.purge_audit(5 * DAY) == 3  # retention cuts the head end
        assert next(r.seq for r in await rows_of(restarted)) == 4
        assert await restarted.audit_mark_problem() is None
        assert await restarted.audit_mark_problem(stale) is None
        assert await other.audit_mark_problem() is None
        assert (await restarted.verify_audit()).ok
    finally:
        await restarted.close()
        await other.close()
    marked = json.loads((keys_dir / MARK_NAME).read_text())
    assert marked["seq"] == 9  # the purge's own row moved it on at close
    again = await gate_store(database, ring, clock, keys_dir)
    await again.close()
