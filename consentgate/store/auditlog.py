"""The audit table's writer: a sink of the audit trail that appends in batches.

Decisions are audited where they are made, synchronously (``AuditTrail.emit``); the
table is written by one task per store, in batches: every event that arrived while
the previous batch committed goes into the next commit. So a burst of refused
callbacks (anyone can send them) costs one durable commit per batch, not one per
request, and a decision never waits for the audit table.

Bounded: at most :data:`MAX_QUEUED` rows wait; beyond that, rows are counted and not
kept, and the count is appended as one ``audit_dropped`` row once the table accepts
writes again (and logged at once), so a gap is itself on the record. A store that
is unavailable (a lock, a full disk) keeps the rows queued and is retried with a
back-off. :meth:`AuditWriter.close` (the store's close, at every graceful stop)
writes what is queued; what a ``kill -9`` catches in the queue is lost, and the
``consentgate.audit`` log line of each event was written already.

A tampered record is found again at every read until someone repairs it: each
(kind, id, reason) is appended once per process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Final

from consentgate.core.audit import KEPT, AuditEntry, entry_for
from consentgate.core.clock import Clock
from consentgate.core.events import AuditEvent
from consentgate.store.errors import StoreUnavailable

_log = logging.getLogger("consentgate")

#: Rows waiting for the table at most; more are counted as dropped.
MAX_QUEUED: Final = 10_000
#: Rows per commit at most.
BATCH: Final = 500
#: Seconds between attempts while the store is unavailable (doubling up to the last).
RETRY: Final = (0.5, 1.0, 2.0, 5.0, 10.0)
#: Tampered (kind, id, reason) remembered, to append each once per process.
_SEEN_TAMPER_MAX: Final = 10_000

Append = Callable[[Sequence[AuditEntry]], Awaitable[None]]


class AuditWriter:
    """Queue audit events for the table and append them in batches (see the module)."""

    def __init__(self, append: Append, clock: Clock) -> None:
        self._append = append
        self._clock = clock
        self._queue: list[AuditEntry] = []
        self._dropped = 0
        self._seen_tamper: set[tuple[str, ...]] = set()
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._closed = False

    @property
    def queued(self) -> int:
        return len(self._queue)

    def sink(self, event: AuditEvent) -> None:
        """An :class:`~consentgate.core.events.AuditTrail` sink: queue the event's row."""
        if event.event not in KEPT or self._closed:
            return  # the hot path (a remembered approval) stops here
        entry = entry_for(event, int(self._clock()))
        if entry is None:
            return
        if entry.event == "tampered":
            key = tuple(str(entry.detail.get(name)) for name in ("kind", "id", "reason"))
            if key in self._seen_tamper:
                return
            if len(self._seen_tamper) < _SEEN_TAMPER_MAX:
                self._seen_tamper.add(key)
        if len(self._queue) >= MAX_QUEUED:
            if not self._dropped:
                _log.warning(
                    "audit table writes are behind; further audit rows are counted, not kept",
                    extra={"fields": {"queued": len(self._queue)}},
                )
            self._dropped += 1
            return
        self._queue.append(entry)
        self._idle.clear()
        self._wake.set()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        failures = 0
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue or self._dropped:
                batch = self._queue[:BATCH]
                if self._dropped:
                    batch = [
                        *batch,
                        AuditEntry(
                            int(self._clock()),
                            "audit_dropped",
                            actor="gate",
                            detail={"count": self._dropped},
                        ),
                    ]
                dropped = self._dropped
                try:
                    await self._append(batch)
                except StoreUnavailable as exc:
                    failures += 1
                    if failures == 1:
                        _log.warning(
                            "audit rows wait for the store",
                            extra={"fields": {"queued": len(self._queue), "kind": exc.kind}},
                        )
                    await asyncio.sleep(RETRY[min(failures, len(RETRY)) - 1])
                    continue
                except Exception:
                    # A bug, not an outage: say so once per batch, keep the rows for
                    # the next attempt rather than lose them silently.
                    _log.exception("the audit table could not be written")
                    failures += 1
                    await asyncio.sleep(RETRY[min(failures, len(RETRY)) - 1])
                    continue
                if failures:
                    _log.info("audit rows written again")
                failures = 0
                del self._queue[: len(batch) - (1 if dropped else 0)]
                self._dropped -= dropped
            self._idle.set()

    async def flush(self) -> None:
        """Wait until every queued row is in the table."""
        if self._queue or self._dropped:
            await self._idle.wait()

    async def close(self, grace: float) -> None:
        """Write what is queued (at most ``grace`` seconds), then stop."""
        self._closed = True
        task = self._task
        if task is None:
            return
        if self._queue or self._dropped:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(grace):
                    await self._idle.wait()
        left = len(self._queue) + self._dropped
        if left:
            _log.error(
                "audit rows not written before the store closed",
                extra={"fields": {"lost": left}},
            )
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
