"""The audit table: the store's events as a hash-chained, signed trail
(:mod:`consentgate.audit.trail` maps, chains, signs and checks the rows;
:mod:`consentgate.store.auditlog` queues and batches them), appended in one durable
transaction, purged past its retention behind a signed checkpoint, and watched by a
high-water mark kept in the keys directory (:mod:`consentgate.store.auditmark`)."""

from __future__ import annotations

import builtins
import contextlib
import functools
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Final, Literal, TypedDict

from consentgate.audit.chain import AuditMark, ChainCheck, ChainReport, mark_problem
from consentgate.audit.events import AuditEvent
from consentgate.audit.integrity import KeyRotated
from consentgate.audit.trail import (
    GENESIS,
    HEAD_SETTING,
    AuditEntry,
    AuditRecord,
    MalformedAuditRow,
    head_value,
)
from consentgate.store.auditlog import AuditWriter
from consentgate.store.auditmark import MarkKeeper, read_mark
from consentgate.store.parts.context import StoreContext
from consentgate.store.parts.listing import PAGE, check_limit, every_row, next_cursor, position
from consentgate.store.parts.publication import Publication
from consentgate.store.protocol import Cursor, StoreTransaction

#: Seconds :meth:`AuditChain.close` waits for queued audit rows to be written.
AUDIT_CLOSE_TIMEOUT: Final = 5.0
#: Seconds a readiness check of the trail's mark is kept.
MARK_CHECK_INTERVAL: Final = 3.0

#: Who acted, as the audit trail names it.
RevokedBy = Literal["cli", "admin", "self", "library"]


class AuditFilters(TypedDict, total=False):
    """The filters of an audit listing; each given one must match (``at >= since``,
    equality for the others)."""

    since: int | None
    event: str | None
    client_id: str | None
    request_id: str | None
    subject: str | None


class AuditChain:
    """Appends the store's events to the audit table, reads, verifies and purges it."""

    def __init__(self, ctx: StoreContext, publication: Publication) -> None:
        self._ctx = ctx
        self._publication = publication
        #: The table's writer, fed by the trail.
        self._writer = AuditWriter(self._append, ctx.clock)
        ctx.audit.add_sink(self._sink)
        #: The trail's high-water mark in the keys directory (:meth:`keep_mark`).
        self._mark: MarkKeeper | None = None
        self._mark_unreadable: str | None = None
        self._mark_checked: tuple[float, str | None] | None = None

    async def close(self) -> None:
        """Write what is queued (at most :data:`AUDIT_CLOSE_TIMEOUT` seconds) and the mark."""
        await self._writer.close(AUDIT_CLOSE_TIMEOUT)
        if self._mark is not None:
            await self._mark.close()

    def _sink(self, event: AuditEvent) -> None:
        """Queue the table's row of ``event`` (a store that cannot sign keeps none: a
        verifying-only CLI run, whose own events are on its output)."""
        if self._ctx.keyring.can_sign:
            self._writer.sink(event)

    async def _chained(
        self, tx: StoreTransaction, entries: Sequence[AuditEntry]
    ) -> tuple[int, str]:
        """Append ``entries`` after the chain's tail and sign the new head."""
        ring = self._ctx.keyring
        tail = await tx.audit_tail()
        seq, prev = tail if tail is not None else (0, GENESIS)
        await self._publication.keep_key(tx, ring)
        rows = []
        for entry in entries:
            seq += 1
            record = AuditRecord.chain(entry, seq, prev, ring)
            rows.append(record.to_row())
            prev = record.hash
        await tx.insert_audit(rows)
        await tx.put_setting(HEAD_SETTING, head_value(seq, prev, ring))
        return seq, prev

    async def _append(self, entries: Sequence[AuditEntry]) -> None:
        """Append ``entries`` to the chain in one durable transaction."""
        ring = self._ctx.keyring

        async def append(tx: StoreTransaction) -> tuple[int, str]:
            return await self._chained(tx, entries)

        seq, digest = await self._ctx.backend.transaction(append, durable=True)
        self._publication.kept(ring)
        if self._mark is not None:
            self._mark.noted(seq, digest)

    async def flush(self) -> None:
        """Wait until every audit row queued so far is in the table."""
        await self._writer.flush()

    async def audit_page(
        self,
        *,
        after: Cursor | None = None,
        limit: int = PAGE,
        since: int | None = None,
        event: str | None = None,
        client_id: str | None = None,
        request_id: str | None = None,
        subject: str | None = None,
    ) -> tuple[builtins.list[AuditRecord], Cursor | None]:
        """One page of audit rows, oldest first; unreadable rows are skipped here
        (:meth:`verify` names them)."""
        rows, following = await self._ctx.backend.audit_page(
            after=after,
            limit=limit,
            since=since,
            event=event,
            client_id=client_id,
            request_id=request_id,
            subject=subject,
        )
        records: builtins.list[AuditRecord] = []
        for row in rows:
            with contextlib.suppress(MalformedAuditRow):
                records.append(AuditRecord.from_row(row))
        return records, following

    async def page_audit(
        self,
        *,
        since: int | None = None,
        event: str | None = None,
        client_id: str | None = None,
        request_id: str | None = None,
        subject: str | None = None,
        cursor: str | None,
        limit: int,
    ) -> tuple[builtins.list[AuditRecord], str | None]:
        """:meth:`audit_page` behind an opaque cursor (:mod:`consentgate.core.paging`)."""
        check_limit(limit)
        records, following = await self.audit_page(
            after=position("audit", cursor),
            limit=limit,
            since=since,
            event=event,
            client_id=client_id,
            request_id=request_id,
            subject=subject,
        )
        return records, next_cursor("audit", following)

    async def iter_audit(
        self,
        *,
        since: int | None = None,
        event: str | None = None,
        client_id: str | None = None,
        request_id: str | None = None,
        subject: str | None = None,
    ) -> AsyncIterator[AuditRecord]:
        """Every audit row matching the filters, oldest first, page by page."""
        cursor: Cursor | None = None
        while True:
            records, cursor = await self.audit_page(
                after=cursor,
                since=since,
                event=event,
                client_id=client_id,
                request_id=request_id,
                subject=subject,
            )
            for record in records:
                yield record
            if cursor is None:
                return

    async def verify(self) -> ChainReport:
        """Check the whole chain, oldest row first: each row's hash and signature, that
        it follows the row before it, where it starts (the last retention checkpoint)
        and that the signed head names its last row. Names the first broken row."""
        await self._writer.flush()
        check = ChainCheck(self._ctx.keyring)
        backend = self._ctx.backend
        async for row in every_row(functools.partial(backend.audit_page, limit=PAGE)):
            check.add(row)
        head = (await backend.settings(HEAD_SETTING)).get(HEAD_SETTING)
        return check.finish(head)

    async def purge(self, keep: float) -> int:
        """Delete audit rows older than ``keep`` seconds, keeping at least the newest,
        and append an ``audit_purged`` row naming the first row kept, so the remaining
        chain verifies from there; returns how many rows went.

        The retention rule is here, once: the backend only names where the cut
        leaves the chain (:meth:`~consentgate.store.protocol.StoreTransaction.
        audit_first_kept`) and deletes below it."""
        if not keep >= 1:
            raise ValueError(f"keep must be at least one second, got {keep!r}")
        ring = self._ctx.keyring
        now = self._ctx.now()

        async def purge(tx: StoreTransaction) -> tuple[int, tuple[int, str] | None]:
            kept = await tx.audit_first_kept(now - int(keep))
            if kept is None or kept[2] == 0:
                return 0, None
            first_seq, first_prev, _older = kept
            deleted = await tx.delete_audit_before(first_seq)
            checkpoint = AuditEntry(
                now,
                "audit_purged",
                actor="gate",
                detail={
                    "deleted": deleted,
                    "first_kept_seq": first_seq,
                    "first_kept_prev": first_prev,
                    "keep_seconds": int(keep),
                },
            )
            return deleted, await self._chained(tx, [checkpoint])

        deleted, appended = await self._ctx.backend.transaction(purge, durable=True)
        self._publication.kept(ring)
        if appended is not None and self._mark is not None:
            self._mark.noted(*appended)
        return deleted

    async def keep_mark(self, keys_dir: Path) -> str | None:
        """Keep the trail's high-water mark in ``keys_dir`` from now on (the gate, and
        the CLI's commands that write), and return why the trail is behind the mark
        found there (None: it is not). Without a mark yet (a new keys directory, or a
        store older than the mark), the trail's newest row is recorded now."""
        found = read_mark(keys_dir)
        if isinstance(found, str):
            self._mark_unreadable = found
            return found
        self._mark = MarkKeeper(keys_dir, found, self._mark_problem, self._ctx.clock)
        if found is not None:
            return await self._mark_problem(found)

        async def tail(tx: StoreTransaction) -> tuple[int, str] | None:
            return await tx.audit_tail()

        newest = await self._ctx.backend.transaction(tail)
        if newest is not None:
            self._mark.noted(*newest)
        return None

    async def flush_mark(self) -> None:
        """Write the mark for every row appended so far now."""
        await self._writer.flush()
        if self._mark is not None:
            await self._mark.flush()

    async def mark_problem(self, mark: AuditMark | None = None) -> str | None:
        """Why the trail is behind ``mark`` (by default the one kept), or None: two
        small reads (the row at the mark, and the oldest row when that one is not
        there). The verify commands pass the mark they read themselves."""
        if mark is None:
            if self._mark_unreadable is not None:
                return self._mark_unreadable
            mark = None if self._mark is None else self._mark.mark
            if mark is None:
                return None
        return await self._mark_problem(mark)

    async def trail_problem(self) -> str | None:
        """:meth:`mark_problem` for readiness, kept :data:`MARK_CHECK_INTERVAL` seconds."""
        checked = self._mark_checked
        if checked is not None and time.monotonic() - checked[0] < MARK_CHECK_INTERVAL:
            return checked[1]
        problem = await self.mark_problem()
        self._mark_checked = (time.monotonic(), problem)
        return problem

    async def _mark_problem(self, mark: AuditMark) -> str | None:
        backend = self._ctx.backend
        rows, _ = await backend.audit_page(after=mark.seq - 1, limit=1)
        found: AuditRecord | None = None
        if rows:
            try:
                found = AuditRecord.from_row(rows[0])
            except MalformedAuditRow:
                return f"the audit row at or after row {mark.seq} is malformed"
        first_seq: int | None = None
        if found is None:
            oldest, _ = await backend.audit_page(after=None, limit=1)
            first_seq = oldest[0][0] if oldest and isinstance(oldest[0][0], int) else None
        return mark_problem(mark, found, first_seq)

    def key_rotated(self, previous: str, active: str, *, by: RevokedBy) -> None:
        """Audit a key rotation: the log line and the table's ``key_rotated`` row."""
        self._ctx.audit.emit(KeyRotated(previous_key=previous, active_key=active, by=by))
