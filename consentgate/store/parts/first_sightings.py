"""When the gate first saw each client named by a URL: the age its consent page shows.

A client named by a URL (MCP 2025-11-25, "Client ID Metadata Documents") never
registers, so its age is the first time anyone used it at a gate on this store: the
first consent page shown for it, after its document was fetched and verified
(``web/consent_flow/authorize.py``; a silent relay or a program's request reads
nothing). A look-alike made for the attack this gate exists for is minutes old then,
which the consent page warns about (docs/clients.md).

The row is written once, by whichever gate saw the client first (``INSERT ... ON
CONFLICT DO NOTHING``), and signed (:mod:`consentgate.core.signed.sightings`): a row
edited to look old is a tamper event and not honoured (None: the caller treats the
client as new). Every gate on the store reads the same row, so a restart or a second
gate keeps the first time.

Cached in memory per process, like client registrations, but never invalidated by
the change counter: the row never changes once written, so a known time stays true
and a consent page shown again pays a dictionary lookup, not a round trip (a
remembered sign-in reads no sighting at all). The cache is
bounded by the store's ``cache_size`` (oldest first out) and off when it is 0.
"""

from __future__ import annotations

import dataclasses

from consentgate.core.signed.sightings import SightingRecord
from consentgate.store.cache import MISSING, Missing
from consentgate.store.parts.context import StoreContext
from consentgate.store.parts.verifier import Verifier


class FirstSightings:
    """Record (once) and read the first time each URL-named client was seen."""

    __slots__ = ("_ctx", "_known", "_verifier")

    def __init__(self, ctx: StoreContext, verifier: Verifier) -> None:
        self._ctx = ctx
        self._verifier = verifier
        self._known: dict[str, int | None] = {}

    async def first_seen(self, client_id: str) -> int | None:
        """When a gate on this store first saw ``client_id``, recording now when none
        did; None when the stored row does not verify (edited or forged)."""
        size = self._ctx.cache.size
        cached: int | Missing | None = self._known.get(client_id, MISSING) if size else MISSING
        if cached is not MISSING:
            return cached
        backend = self._ctx.backend
        row = await backend.sighting(client_id)
        if row is None:
            mine = self._signed(SightingRecord(client_id, self._ctx.now()))
            if await backend.record_sighting(mine.to_row()):
                return self._keep(client_id, mine.first_seen_at)
            row = await backend.sighting(client_id)  # another gate's write came first
            if row is None:  # not storable here: nothing to trust
                return None
        record = self._verifier.sighting(row)  # the rule `consents verify` applies too
        return self._keep(client_id, None if record is None else record.first_seen_at)

    def _signed(self, record: SightingRecord) -> SightingRecord:
        """``record`` labelled with the ring's active key and signed by it."""
        ring = self._ctx.keyring
        labelled = dataclasses.replace(record, key_id=ring.active_kid)
        _kid, signature = ring.sign(labelled.signing_input())
        return dataclasses.replace(labelled, signature=signature)

    def _keep(self, client_id: str, first_seen_at: int | None) -> int | None:
        size = self._ctx.cache.size
        if size:
            if len(self._known) >= size:
                del self._known[next(iter(self._known))]  # oldest first
            self._known[client_id] = first_seen_at
        return first_seen_at
