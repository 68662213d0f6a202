"""Finding the audit rows of one request (the id every page shows the person), on
every backend: an exact match on the ``request_id`` column, through its index."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from consentgate import ConsentStore
from tests.store.conftest import SQLiteDatabase, StoreDatabase
from tests.store.test_audit_table import approved_event


async def test_a_listing_filters_by_request_id_and_an_unknown_id_finds_nothing(
    store: ConsentStore,
) -> None:
    for n in range(4):
        store.audit.emit(approved_event(n, subject=f"digest-{n}"))
    store.audit.emit(approved_event(2, subject="digest-again"))
    await store.flush_audit()
    found = [record async for record in store.iter_audit(request_id="req-2")]
    assert [(r.seq, r.subject) for r in found] == [(3, "digest-2"), (5, "digest-again")]
    page, cursor = await store.page_audit(request_id="req-2", cursor=None, limit=1)
    assert [r.seq for r in page] == [3] and cursor is not None
    rest, end = await store.page_audit(request_id="req-2", cursor=cursor, limit=1)
    assert [r.seq for r in rest] == [5]
    assert await store.page_audit(request_id="req-2", cursor=end, limit=1) == ([], None)
    assert [r async for r in store.iter_audit(request_id="0123456789abcdef")] == []
    assert [r async for r in store.iter_audit(request_id="req-2", event="denied")] == []


async def test_the_audit_table_has_an_index_by_request_id(
    database: StoreDatabase, store: ConsentStore
) -> None:
    rows = await database.read(
        "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = 'audit' "
        "AND sql LIKE '%(request_id%'"
        if isinstance(database, SQLiteDatabase)
        else "SELECT count(*) FROM pg_indexes WHERE tablename = 'audit' "
        "AND indexdef LIKE '%(request_id%'"
    )
    assert rows == [(1,)]


def test_a_request_id_lookup_uses_the_index_on_sqlite(tmp_path: Path) -> None:
    from consentgate.store.sqlite.sqlite_schema import MIGRATIONS

    with sqlite3.connect(tmp_path / "plan.db") as conn:
        for migration in MIGRATIONS:
            for statement in migration:
                conn.execute(statement)
        plan = conn.execute(
            "EXPLAIN QUERY PLAN SELECT seq FROM audit WHERE seq > 0 AND request_id = ? "
            "ORDER BY seq LIMIT 10",
            ("req-1",),
        ).fetchall()
    assert any("INDEX audit_by_request (request_id=?" in str(row[-1]) for row in plan), plan
