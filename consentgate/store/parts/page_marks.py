"""Consent-page marks and flow bindings: the store remembers which sealed consent
pages were answered and which flow bindings were used, so that neither is
accepted twice by any gate sharing the store; and the purge of what expired.

The page and the binding travel sealed or MAC-protected with the browser
(:mod:`consentgate.core.signed.pending`); only their use leaves a row, one atomic
insert-if-absent each. The purge rule is written here, once: which rows expired,
and which consent records are past ``[store] keep_expired``.
"""

from __future__ import annotations

from typing import Final

from consentgate.audit.decisions import ConsentsPurged
from consentgate.core.signed.records import check_length, check_text
from consentgate.store.parts.context import StoreContext
from consentgate.store.protocol import StoreTransaction

#: Used-marks of answered consent pages share the table of used flow bindings; a
#: binding key is base64url (no ``:``), so the prefix keeps the two apart.
_PAGE_MARK_PREFIX: Final = "page:"
#: A page's mark is kept this long past the page's own expiry, so a gate whose clock
#: runs a little behind the purging one never sees an unexpired page without its mark.
PAGE_MARK_MARGIN: Final = 300


def page_mark(pending_id: str) -> str:
    """The used-binding key that marks the sealed consent page ``pending_id`` answered."""
    check_length("pending_id", check_text("pending_id", pending_id), 64)
    return _PAGE_MARK_PREFIX + pending_id


class PageClaim:
    """Uses up one consent page inside the transaction that records its answer."""

    __slots__ = ("_expires_at", "_key")

    def __init__(self, pending_id: str, page_expires_at: int) -> None:
        self._key = page_mark(pending_id)
        self._expires_at = int(page_expires_at) + PAGE_MARK_MARGIN

    async def __call__(self, tx: StoreTransaction) -> bool:
        """True when this call used the page up; False when it was used already."""
        return await tx.use_binding(self._key, self._expires_at)


class PageMarks:
    """Answered pages, used bindings, leftover pending rows, and the purge."""

    __slots__ = ("_ctx",)

    def __init__(self, ctx: StoreContext) -> None:
        self._ctx = ctx

    async def count_pending(self) -> int:
        """Unexpired pending rows an older version left behind."""
        return await self._ctx.backend.count_pending(self._ctx.now())

    async def use_page(self, pending_id: str, expires_at: int) -> bool:
        """Mark the sealed consent page answered; False when it already was.

        Nothing is stored while the page is shown, so a flood of pages spends no store
        budget; only its answer leaves a mark, kept until the page has expired (plus
        :data:`PAGE_MARK_MARGIN`), so one page is answered once by any gate sharing the
        store. One insert-if-absent, atomic, in the table of used flow bindings under a
        key no binding can have."""
        mark_expires_at = int(expires_at) + PAGE_MARK_MARGIN
        return await self._ctx.backend.use_binding(page_mark(pending_id), mark_expires_at)

    async def use_binding(self, key: str, expires_at: int) -> bool:
        """Mark the flow binding ``key`` used; False when it already was.

        The binding itself travels in a MAC-protected cookie (it proves the browser,
        the state and when it was issued); the store only remembers which bindings
        were used, until ``expires_at``, so a callback cannot be replayed, by this gate
        or by another process sharing the database. One insert-if-absent, atomic."""
        check_text("key", key)
        return await self._ctx.backend.use_binding(key, int(expires_at))

    async def purge_expired(self, *, keep_records: float | None) -> int:
        """Delete expired pending rows and used-binding marks; returns how many rows went.

        With ``keep_records`` (seconds), consent records that expired or were revoked
        longer ago than that are deleted too (``[store] keep_expired``): until then they
        are the trail of who approved what; after it they only grow the file. Each
        deletion of records is one audit line."""
        now = self._ctx.now()
        cutoff = None if keep_records is None else now - int(keep_records)
        transient, records = await self._ctx.backend.purge(now, records_before=cutoff)
        if records:
            self._ctx.cache.clear()
            self._ctx.audit.emit(ConsentsPurged(count=records, keep_seconds=int(keep_records or 0)))
        return transient + records
