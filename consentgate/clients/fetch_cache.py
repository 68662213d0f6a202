"""What the fetcher remembers: documents, failures, and how often it asked each host.

Three bounded, clock-driven structures (every time is read from the caller's
injected clock; nothing here sleeps or schedules):

* :class:`DocumentCache`: validated documents keyed by the exact client_id (the
  identity is the exact text, MCP 2025-11-25), each with its expiry from
  ``cache_policy.time_to_live`` and the validators of its response (``ETag``,
  ``Last-Modified``) for a conditional revalidation once stale (RFC 9111 §4.3.1).
  Least recently used entries go first beyond ``size`` (FastMCP keeps 1,000). A stale
  entry stays (for its validators) until it is revalidated, replaced or pushed out;
  :meth:`DocumentCache.fresh` never returns it.
* :class:`FailureCache`: a failed fetch is remembered for a short time, so that
  nobody can make the gate fetch the same URL in a loop by sending requests
  (the same reasoning as ``cache_policy``'s floor).
* :class:`HostBudget`: at most ``limit`` fetches to one host in any ``window``
  seconds (a sliding log per host), so that many client_ids on one host (``/a1``,
  ``/a2``...) cannot make the gate hammer it. Hosts with no fetch in the window are
  forgotten; the number of hosts remembered is bounded too, and when it is full a
  new host is refused rather than an old one forgotten (failing closed).

Pure module: no I/O, no event loop.
"""

from __future__ import annotations

import collections
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Final, Generic, TypeVar

from consentgate.clients.metadata_documents import ClientMetadataDocument

#: Most hosts :class:`HostBudget` tracks at once.
MAX_TRACKED_HOSTS: Final = 10_000
_V = TypeVar("_V")


@dataclass(frozen=True)
class CachedDocument:
    """A validated document and what its response said about caching it."""

    document: ClientMetadataDocument
    expires_at: float
    etag: str | None = None
    last_modified: str | None = None
    cache_control: str | None = None

    def fresh(self, now: float) -> bool:
        return now < self.expires_at

    @property
    def revalidatable(self) -> bool:
        return self.etag is not None or self.last_modified is not None


class _Bounded(Generic[_V]):
    """An LRU mapping of at most ``size`` entries."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"a cache holds at least one entry, got size={size}")
        self.size = size
        self._entries: OrderedDict[str, _V] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def _get(self, key: str) -> _V | None:
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
        return entry

    def _put(self, key: str, value: _V) -> None:
        self._entries[key] = value
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def discard(self, key: str) -> None:
        self._entries.pop(key, None)


class DocumentCache(_Bounded[CachedDocument]):
    """Validated documents by exact client_id, least recently used out first."""

    def entry(self, client_id: str) -> CachedDocument | None:
        """The entry, fresh or stale (a stale one's validators revalidate it)."""
        return self._get(client_id)

    def fresh(self, client_id: str, now: float) -> CachedDocument | None:
        """The entry if still fresh at ``now``; a stale one is kept, not returned."""
        entry = self._entries.get(client_id)
        if entry is None or not entry.fresh(now):
            return None
        self._entries.move_to_end(client_id)
        return entry

    def store(self, entry: CachedDocument) -> None:
        self._put(entry.document.client_id, entry)

    def extend(
        self, client_id: str, expires_at: float, cache_control: str | None
    ) -> CachedDocument | None:
        """A 304 confirmed the entry: keep it until ``expires_at`` (RFC 9111 §4.3.4:
        the 304's Cache-Control, when it sent one, replaces the stored one)."""
        entry = self._entries.get(client_id)
        if entry is None:
            return None
        renewed = replace(
            entry,
            expires_at=expires_at,
            cache_control=cache_control if cache_control is not None else entry.cache_control,
        )
        self._put(client_id, renewed)
        return renewed


class FailureCache(_Bounded[tuple[float, _V]], Generic[_V]):
    """Failures by client_id, each until its time; the oldest go first beyond ``size``."""

    def remembered(self, client_id: str, now: float) -> tuple[float, _V] | None:
        """(until, failure) while it is remembered at ``now``."""
        found = self._entries.get(client_id)
        if found is None:
            return None
        if now >= found[0]:
            del self._entries[client_id]
            return None
        return found

    def remember(self, client_id: str, until: float, failure: _V) -> None:
        self._put(client_id, (until, failure))


class HostBudget:
    """At most ``limit`` fetches per host in any ``window`` seconds."""

    def __init__(self, limit: int, window: float = 60.0, max_hosts: int = MAX_TRACKED_HOSTS):
        if limit < 1 or window <= 0 or max_hosts < 1:
            raise ValueError(f"expected limit >= 1 and window > 0, got {limit}, {window}")
        self.limit = limit
        self.window = window
        self.max_hosts = max_hosts
        self._times: dict[str, collections.deque[float]] = {}

    def _forget_idle(self, now: float) -> None:
        idle = [host for host, times in self._times.items() if now - times[-1] >= self.window]
        for host in idle:
            del self._times[host]

    def take(self, host: str, now: float) -> float | None:
        """Count a fetch to ``host`` at ``now`` and answer None, or answer when the next
        one may be made (the budget is spent; nothing is counted)."""
        times = self._times.get(host)
        if times is None:
            if len(self._times) >= self.max_hosts:
                self._forget_idle(now)
                if len(self._times) >= self.max_hosts:
                    return now + self.window
            times = self._times[host] = collections.deque()
        while times and now - times[0] >= self.window:
            times.popleft()
        if len(times) >= self.limit:
            return times[0] + self.window
        times.append(now)
        return None
