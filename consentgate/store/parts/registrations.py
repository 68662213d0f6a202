"""Client registrations: stored from the registration response (RFC 7591 §3.2.1),
signed, verified on every read, and cached like the consent answers (the gate looks
its client up on every authorization)."""

from __future__ import annotations

import builtins
import dataclasses
import functools
from collections.abc import AsyncIterator, Mapping
from typing import Any

from consentgate.core.signed.records import ClientRecord, sign_record
from consentgate.store.cache import MISSING
from consentgate.store.parts.context import StoreContext
from consentgate.store.parts.listing import PAGE, check_limit, every_row, next_cursor, position
from consentgate.store.parts.publication import Publication
from consentgate.store.parts.verifier import Failures, Verifier
from consentgate.store.protocol import StoreTransaction


class Registrations:
    """The clients table, through the verifier and the answer cache."""

    __slots__ = ("_ctx", "_publication", "_verifier")

    def __init__(self, ctx: StoreContext, verifier: Verifier, publication: Publication) -> None:
        self._ctx = ctx
        self._verifier = verifier
        self._publication = publication

    async def upsert_client(self, metadata: Mapping[str, Any]) -> ClientRecord:
        """Store a client (secrets removed); an update keeps the first ``registered_at``
        if the existing row verifies (a row that fails is never carried over)."""
        ctx = self._ctx
        unsigned = ClientRecord.from_registration(metadata, ctx.now())
        ring = ctx.keyring

        async def upsert(tx: StoreTransaction) -> tuple[ClientRecord, int, int]:
            before = await tx.change_counter()
            await self._publication.keep_key(tx, ring)
            row = await tx.client(unsigned.client_id)
            base = unsigned
            if row is not None:
                existing = self._verifier.client(row)
                if existing is not None:
                    base = dataclasses.replace(unsigned, registered_at=existing.registered_at)
            record = sign_record(base, ring)
            await tx.put_client(record.to_row())
            return record, before, await tx.change_counter()

        record, before, after = await ctx.backend.transaction(upsert)
        self._publication.kept(ring)
        ctx.cache.after_own_write(before, after, client_id=record.client_id)
        return record

    async def get_client(self, client_id: str) -> ClientRecord | None:
        """The verified client registration, or None (unknown, or failed verification).

        Answers are cached like the consent answers, and dropped whenever any client
        or consent row changes in any process: the gate looks its client up on every
        authorization, and an Ed25519 verification per request is not free."""
        ctx = self._ctx
        cache = ctx.cache
        use_cache = ctx.use_cache()
        if use_cache:
            cached = cache.client(client_id)
            if cached is not MISSING:
                return cached
        generation = cache.generation
        row = await ctx.backend.client(client_id)
        record = self._verifier.client(row) if row is not None else None
        if use_cache:
            cache.put_client(client_id, record, generation)
        return record

    async def iter_clients(self, *, failures: Failures | None) -> AsyncIterator[ClientRecord]:
        """Every verified client registration, oldest first."""
        page = functools.partial(self._ctx.backend.client_page, limit=PAGE)
        async for row in every_row(page):
            record = self._verifier.client(row, failures)
            if record is not None:
                yield record

    async def page_clients(
        self, *, cursor: str | None, limit: int, failures: Failures | None
    ) -> tuple[builtins.list[ClientRecord], str | None]:
        """One page of :meth:`iter_clients` behind an opaque cursor."""
        check_limit(limit)
        rows, following = await self._ctx.backend.client_page(
            after=position("clients", cursor), limit=limit
        )
        records = [
            record
            for record in (self._verifier.client(row, failures) for row in rows)
            if record is not None
        ]
        return records, next_cursor("clients", following)
