"""A record put back from before its revocation, against every backend.

Revoking re-signs the record with ``revoked_at``; someone with write access to the
database who kept the row as it was signed before (a backup, a copy) can put it back,
and its signature verifies: the approval is honoured again. The signed ``revoked``
row of the audit trail still says what was revoked and when, so ``consents verify``
cross-checks every unrevoked record against it.
"""

from __future__ import annotations

from consentgate import ConsentRecord, ConsentStore
from tests.store.conftest import T0, FakeClock, StoreDatabase, approve, approved


async def put_back(database: StoreDatabase, record: ConsentRecord) -> None:
    """The attacker's edit: the row as it was signed before its revocation."""
    await database.edit(
        "UPDATE consents SET revoked_at = NULL, expires_at = ?, key_id = ?, signature = ? "
        "WHERE id = ?",
        record.expires_at,
        record.key_id,
        record.signature,
        record.id,
    )


async def test_a_record_put_back_from_before_its_revocation_is_named_by_the_cross_check(
    store: ConsentStore, database: StoreDatabase, clock: FakeClock
) -> None:
    alice = await approve(store)
    bob = await approve(store, subject="bob", client_id="client-2")
    carol = await approve(store, subject="carol", client_id="client-3")
    clock.advance(60)
    assert await store.revoke(client_id="client-1", by="admin") == 1
    assert await store.revoke(id=bob.id, owner="bob", by="self") == 1
    clock.advance(60)
    again = await approve(store)  # alice approves client-1 again: a new record, not reported
    await store.flush_audit()
    assert await store.restored_revocations() == []
    await put_back(database, alice)
    await put_back(database, bob)
    # The documented limit: the lookup honours a validly signed row as it finds it,
    assert await approved(store, alice)
    assert (await store.verify_all()).ok
    # but the cross-check names each record a signed revocation covers.
    found = await store.restored_revocations()
    assert sorted((record.id, when) for record, when in found) == sorted(
        [(alice.id, int(T0) + 60), (bob.id, int(T0) + 60)]
    )
    assert {record.id for record, _ in found}.isdisjoint({carol.id, again.id})
