"""The hash-chained audit table, against every backend.

Each test writes real rows through the store, then edits the database behind the
store's back the way someone with write access would, and checks that
``verify_audit`` names the first row that breaks the chain.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging

import pytest

from consentgate import ConsentStore, KeyRing
from consentgate.audit.events import AuditEvent
from consentgate.audit.trail import HEAD_SETTING, AuditRecord
from consentgate.store import auditlog
from tests.store.conftest import CB, FakeClock, StoreDatabase, approve

DAY = 86400


def approved_event(n: int, subject: str = "subject-digest") -> AuditEvent:
    return AuditEvent(
        "consent_approved",
        "consent approved",
        f"req-{n}",
        fields={
            "client_id": f"client-{n}",
            "redirect_uri": CB,
            "scopes": "openid profile",
            "subject": subject,
            "pending": "p",
            "remembered": True,
            "upstream_status": 302,
            "bound": True,
        },
    )


async def rows_of(store: ConsentStore) -> list[AuditRecord]:
    return [record async for record in store.iter_audit()]


@pytest.fixture
async def trail(store: ConsentStore) -> ConsentStore:
    """A store with five approvals audited, one revocation and one denial."""
    for n in range(5):
        store.audit.emit(approved_event(n))
    await approve(store, subject="bob")
    assert await store.revoke(subject="bob", by="admin") == 1
    store.audit.emit(
        AuditEvent(
            "consent_denied",
            "consent denied",
            "req-d",
            fields={"client_id": "client-x", "redirect_uri": CB, "subject": "s", "scopes": ""},
        )
    )
    await store.flush_audit()
    return store


async def test_decisions_are_appended_in_order_and_the_chain_verifies(
    trail: ConsentStore,
) -> None:
    records = await rows_of(trail)
    assert [r.event for r in records] == ["approved"] * 5 + ["revoked", "denied"]
    assert [r.seq for r in records] == list(range(1, 8))
    first = records[0]
    assert (first.client_id, first.redirect_uri, first.scopes) == ("client-0", CB, "openid profile")
    assert (first.request_id, first.subject, first.actor) == ("req-0", "subject-digest", "person")
    assert first.details() == {"remembered": True, "upstream_status": 302, "bound": True}
    revoked = records[5]
    assert (revoked.actor, revoked.subject, revoked.details()["count"]) == ("admin", "bob", 1)
    report = await trail.verify_audit()
    assert report.ok, report
    assert (report.checked, report.first_seq, report.last_seq) == (7, 1, 7)


async def test_a_listing_filters_by_event_client_and_time(
    trail: ConsentStore, clock: FakeClock
) -> None:
    assert [r.seq for r in (await trail.audit_page(event="approved", limit=2))[0]] == [1, 2]
    assert [r.client_id async for r in trail.iter_audit(client_id="client-3")] == ["client-3"]
    clock.advance(10)
    trail.audit.emit(approved_event(9))
    await trail.flush_audit()
    since = int(clock()) - 5
    assert [r.client_id async for r in trail.iter_audit(since=since)] == ["client-9"]
    page, cursor = await trail.audit_page(limit=3)
    assert len(page) == 3 and cursor is not None
    rest, end = await trail.audit_page(after=cursor, limit=100)
    assert [r.seq for r in page + rest] == list(range(1, 9)) and end is None


async def test_an_edited_row_is_named_as_the_first_broken_row(
    trail: ConsentStore, database: StoreDatabase
) -> None:
    await database.edit("UPDATE audit SET client_id = 'someone-else' WHERE seq = 3")
    report = await trail.verify_audit()
    assert not report.ok
    assert report.broken_seq == 3
    assert "do not match its hash" in (report.problem or "")


async def test_a_row_rehashed_without_the_key_is_named_by_its_signature(
    trail: ConsentStore, database: StoreDatabase
) -> None:
    records = await rows_of(trail)
    # The attacker rewrites row 4 and recomputes its hash and every later prev/hash,
    # but cannot sign: the first row they touched fails its signature.
    prev = records[2].hash
    for record in records[3:]:
        client = "forged" if record.seq == 4 else record.client_id
        changed = dataclasses.replace(record, client_id=client, prev=prev)
        digest = changed.computed_hash()
        await database.edit(
            "UPDATE audit SET client_id = ?, prev = ?, hash = ? WHERE seq = ?",
            client,
            prev,
            digest,
            record.seq,
        )
        prev = digest
    report = await trail.verify_audit()
    assert (report.broken_seq, report.ok) == (4, False)
    assert "signature" in (report.problem or "")


async def test_a_row_deleted_in_the_middle_is_detected_at_the_next_row(
    trail: ConsentStore, database: StoreDatabase
) -> None:
    await database.edit("DELETE FROM audit WHERE seq = 4")
    report = await trail.verify_audit()
    assert report.broken_seq == 5
    assert "rows 4..4 are missing" in (report.problem or "")


async def test_rows_cut_off_the_end_are_detected_by_the_signed_head(
    trail: ConsentStore, database: StoreDatabase
) -> None:
    await database.edit("DELETE FROM audit WHERE seq >= 6")
    report = await trail.verify_audit()
    assert not report.ok
    assert "rows after 5 up to 7 were deleted" in (report.problem or "")


async def test_an_edited_head_is_detected(trail: ConsentStore, database: StoreDatabase) -> None:
    await database.edit("DELETE FROM audit WHERE seq = 7")
    head = json.loads((await trail_settings(trail))[HEAD_SETTING])
    head["seq"] = 6
    await database.edit(
        "UPDATE settings SET value = ? WHERE name = ?", json.dumps(head), HEAD_SETTING
    )
    report = await trail.verify_audit()
    assert "head setting was edited" in (report.problem or "")


async def trail_settings(store: ConsentStore) -> dict[str, str]:
    return await store._backend.settings(HEAD_SETTING)


async def test_rows_deleted_from_the_start_are_detected(
    trail: ConsentStore, database: StoreDatabase
) -> None:
    await database.edit("DELETE FROM audit WHERE seq <= 2")
    report = await trail.verify_audit()
    assert report.broken_seq == 3
    assert "should start at row 1" in (report.problem or "")


async def test_retention_purges_old_rows_with_a_checkpoint_the_chain_verifies_from(
    store: ConsentStore, clock: FakeClock, database: StoreDatabase
) -> None:
    for n in range(3):
        store.audit.emit(approved_event(n))
    await store.flush_audit()
    clock.advance(10 * DAY)
    for n in range(3, 5):
        store.audit.emit(approved_event(n))
    await store.flush_audit()
    assert await store.purge_audit(5 * DAY) == 3
    records = await rows_of(store)
    assert [r.seq for r in records] == [4, 5, 6]
    assert records[-1].event == "audit_purged"
    assert records[-1].details()["first_kept_seq"] == 4
    assert (await store.verify_audit()).ok
    assert await store.purge_audit(5 * DAY) == 0  # nothing more is old enough
    # Deleting the first kept row as well is not a purge:
    await database.edit("DELETE FROM audit WHERE seq = 4")
    report = await store.verify_audit()
    assert report.broken_seq == 5 and "should start at row 4" in (report.problem or "")


async def test_a_purge_keeps_the_newest_row_even_when_every_row_is_old(
    store: ConsentStore, clock: FakeClock
) -> None:
    for n in range(3):
        store.audit.emit(approved_event(n))
    await store.flush_audit()
    clock.advance(30 * DAY)
    assert await store.purge_audit(DAY) == 2
    assert [r.seq for r in await rows_of(store)] == [3, 4]
    assert (await store.verify_audit()).ok


async def test_two_stores_appending_at_once_keep_one_unbroken_chain(
    database: StoreDatabase, ring: KeyRing, clock: FakeClock
) -> None:
    first = await database.open(ring, clock=clock)
    second = await database.open(ring, clock=clock)
    try:
        for n in range(40):
            (first if n % 2 else second).audit.emit(approved_event(n))
            if n % 7 == 0:
                await asyncio.sleep(0)
        await asyncio.gather(first.flush_audit(), second.flush_audit())
        records = await rows_of(first)
        assert [r.seq for r in records] == list(range(1, 41))
        assert sorted(r.client_id for r in records) == sorted(f"client-{n}" for n in range(40))
        assert (await second.verify_audit()).ok
    finally:
        await first.close()
        await second.close()


async def test_rows_queued_at_close_are_written_before_the_store_closes(
    database: StoreDatabase, ring: KeyRing, clock: FakeClock
) -> None:
    store = await database.open(ring, clock=clock)
    for n in range(3):
        store.audit.emit(approved_event(n))
    await store.close()  # no flush: close writes what is queued
    reopened = await database.open(ring, clock=clock)
    try:
        assert [r.seq for r in await rows_of(reopened)] == [1, 2, 3]
        assert (await reopened.verify_audit()).ok
    finally:
        await reopened.close()


async def test_a_tampered_record_is_appended_once_not_at_every_read(
    store: ConsentStore, database: StoreDatabase
) -> None:
    record = await approve(store)
    await database.edit("UPDATE consents SET scopes = 'openid admin' WHERE id = ?", record.id)
    for _ in range(3):
        await store.get(record.id)
    await store.flush_audit()
    tampered = [r async for r in store.iter_audit(event="tampered")]
    assert len(tampered) == 1
    assert tampered[0].details()["id"] == record.id


async def test_a_revocation_that_changed_nothing_adds_no_row(store: ConsentStore) -> None:
    assert await store.revoke(client_id="nobody", by="cli") == 0
    await store.flush_audit()
    assert await rows_of(store) == []
    assert (await store.verify_audit()).ok  # an empty table with no head verifies


async def test_a_key_rotation_is_on_the_record_and_old_rows_still_verify(
    store: ConsentStore,
) -> None:
    store.audit.emit(approved_event(1))
    await store.flush_audit()
    rotated = store.keyring.rotated()
    store.reload_keys(rotated)
    store.key_rotated("old-kid", rotated.active_kid)
    await store.flush_audit()
    records = await rows_of(store)
    assert [r.event for r in records] == ["approved", "key_rotated"]
    assert records[0].key_id != records[1].key_id
    assert (await store.verify_audit()).ok


async def test_a_flood_beyond_the_queue_is_counted_in_one_dropped_row(
    store: ConsentStore, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(auditlog, "MAX_QUEUED", 5)
    with caplog.at_level(logging.WARNING, logger="consentgate"):
        for n in range(8):  # queued synchronously: the writer has not run yet
            store.audit.emit(approved_event(n))
    await store.flush_audit()
    records = await rows_of(store)
    assert [r.event for r in records] == ["approved"] * 5 + ["audit_dropped"]
    assert records[-1].details() == {"count": 3}
    assert "further audit rows are counted, not kept" in caplog.text
    assert (await store.verify_audit()).ok


async def test_the_table_holds_no_secret_of_the_request(
    store: ConsentStore, database: StoreDatabase
) -> None:
    store.audit.emit(
        AuditEvent(
            "callback_refused",
            "callback expired or replayed",
            "req-c",
            fields={"subject": "digest", "reason": "replayed", "code": "SECRET-CODE"},
        )
    )
    await store.flush_audit()
    (record,) = await rows_of(store)
    assert (record.event, record.subject) == ("callback_refused", "digest")
    assert b"SECRET-CODE" not in database.contents()


def refused_event(n: int, source: str = "192.0.2.7") -> AuditEvent:
    return AuditEvent(
        "callback_refused",
        "malformed callback",
        f"req-r{n}",
        fields={
            "refusal": "malformed",
            "reason": f"The parameter {'x' * 2000!r} is given more than once.",
            "source": source,
        },
    )


async def test_a_flood_of_refused_callbacks_is_counted_in_a_few_rows_and_decisions_keep_theirs(
    store: ConsentStore, database: StoreDatabase
) -> None:
    for n in range(2000):
        store.audit.emit(refused_event(n))
        if n == 1000:
            store.audit.emit(approved_event(1))
        if n % 250 == 0:
            await asyncio.sleep(0)  # let the writer append what is queued
    await store.flush_audit()
    records = await rows_of(store)
    refused = [r for r in records if r.event == "callback_refused"]
    assert [r.details()["count"] for r in refused] == [1, 1999]
    assert all(len(r.hashed_input()) < 400 for r in refused)
    assert refused[0].details() == {"reason": "malformed", "source": "192.0.2.7", "count": 1}
    assert [r.client_id for r in records if r.event == "approved"] == ["client-1"]
    assert b"x" * 100 not in database.contents()
    assert (await store.verify_audit()).ok


async def test_refused_callbacks_from_more_networks_than_the_buckets_share_one_more(
    store: ConsentStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(auditlog, "MAX_BUCKETS", 3)
    for n in range(40):
        store.audit.emit(refused_event(n, source=f"198.51.100.{n % 10}"))
    await store.flush_audit()
    refused = [r.details() for r in await rows_of(store)]
    assert sum(d["count"] for d in refused) == 40
    assert {d["source"] for d in refused} == {
        "198.51.100.0",
        "198.51.100.1",
        "198.51.100.2",
        auditlog.OTHER_SOURCES,
    }
    assert len(refused) == 8  # each bucket: its first row, then one counting the rest
