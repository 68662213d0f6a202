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

Anyone can cause a refused callback (:data:`~consentgate.audit.rows.AGGREGATED`), and
one unauthenticated client sent over 3,000 a second, each a signed row: the table
grew by about 3 KB a request. So those rows are **aggregated**: the first of a
(event, reason, source network) bucket is appended at once, as its own row with
``count`` 1 (a lone refusal is on the record as promptly as a decision); the others
of the next :data:`WINDOW` seconds are counted and appended as one row with their
``count`` when the window closes (or at :meth:`AuditWriter.flush` and close). At
most :data:`MAX_BUCKETS` networks are told apart per window, the rest share one
bucket, so a flood costs a bounded number of rows a minute whatever it sends. The
``consentgate.audit`` log line and the metrics still count each one.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Final

from consentgate.audit.events import AuditEvent
from consentgate.audit.rows import KEPT, aggregation_key, entry_for
from consentgate.audit.trail import AuditEntry
from consentgate.core.clock import Clock
from consentgate.store.store_errors import StoreUnavailable

_log = logging.getLogger("consentgate")

#: Rows waiting for the table at most; more are counted as dropped.
MAX_QUEUED: Final = 10_000
#: Rows per commit at most.
BATCH: Final = 500
#: Seconds between attempts while the store is unavailable (doubling up to the last).
RETRY: Final = (0.5, 1.0, 2.0, 5.0, 10.0)
#: Tampered (kind, id, reason) remembered, to append each once per process.
_SEEN_TAMPER_MAX: Final = 10_000
#: Seconds an aggregated bucket counts before its row is appended.
WINDOW: Final = 60.0
#: Buckets (source networks times reasons) told apart per window; beyond, one more.
MAX_BUCKETS: Final = 64
#: The source of the bucket that counts what arrives beyond :data:`MAX_BUCKETS`.
OTHER_SOURCES: Final = "other"

Append = Callable[[Sequence[AuditEntry]], Awaitable[None]]
Bucket = tuple[str, str, str]


class _Counted:
    """What a bucket counted since its first row: how many, from when to when, and
    the subject when every one of them had the same (else empty)."""

    __slots__ = ("count", "first_at", "last_at", "request_id", "subject")

    def __init__(self) -> None:
        self.count = 0
        self.first_at = 0
        self.last_at = 0
        self.request_id = ""
        self.subject: str | None = None

    def add(self, entry: AuditEntry) -> None:
        if not self.count:
            self.first_at, self.request_id, self.subject = entry.at, entry.request_id, entry.subject
        elif self.subject != entry.subject:
            self.subject = ""
        self.count += 1
        self.last_at = entry.at

    def entry(self, bucket: Bucket) -> AuditEntry:
        event, reason, source = bucket
        return AuditEntry(
            self.first_at,
            event,
            request_id=self.request_id,
            actor="gate",
            subject=self.subject or "",
            detail={"reason": reason, "source": source, "count": self.count, "until": self.last_at},
        )


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
        #: Aggregated buckets of the open window: None once its first row was queued
        #: and nothing more came, else what was counted since.
        self._buckets: dict[Bucket, _Counted | None] = {}
        self._window: asyncio.TimerHandle | None = None

    @property
    def queued(self) -> int:
        return len(self._queue)

    def sink(self, event: AuditEvent) -> None:
        """An :class:`~consentgate.audit.events.AuditTrail` sink: queue the event's row."""
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
        bucket = aggregation_key(entry)
        if bucket is not None:
            first = self._aggregate(bucket, entry)
            if first is None:
                return
            entry = first
        self._enqueue(entry)

    def _aggregate(self, bucket: Bucket, entry: AuditEntry) -> AuditEntry | None:
        """Count ``entry`` in its bucket of the open window (None), or, when it is the
        bucket's first, open the bucket and return the row to queue at once."""
        buckets = self._buckets
        if bucket not in buckets and len(buckets) >= MAX_BUCKETS:
            bucket = (bucket[0], bucket[1], OTHER_SOURCES)
            entry = dataclasses.replace(entry, detail={**entry.detail, "source": OTHER_SOURCES})
        if bucket not in buckets:
            buckets[bucket] = None
            if self._window is None:
                self._window = asyncio.get_running_loop().call_later(WINDOW, self._close_window)
            return entry
        counted = buckets[bucket]
        if counted is None:
            counted = buckets[bucket] = _Counted()
        counted.add(entry)
        return None

    def _close_window(self) -> None:
        """Queue one row per bucket that counted anything since its first row."""
        if self._window is not None:
            self._window.cancel()
            self._window = None
        buckets, self._buckets = self._buckets, {}
        for bucket, counted in buckets.items():
            if counted is not None:
                self._enqueue(counted.entry(bucket))

    def _enqueue(self, entry: AuditEntry) -> None:
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
        """Wait until every queued row is in the table (closing the aggregation window:
        what it counted is queued first)."""
        self._close_window()
        if self._queue or self._dropped:
            await self._idle.wait()

    async def close(self, grace: float) -> None:
        """Write what is queued (at most ``grace`` seconds), then stop."""
        self._close_window()
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
