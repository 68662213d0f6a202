"""What every part of the store shares: the backend, the key ring, the clock, the
audit trail and the answer cache, in one mutable place.

One object, not copies: :meth:`~consentgate.store.facade.ConsentStore.reload_keys`
swaps the key ring and :meth:`~consentgate.store.facade.ConsentStore.time_operations`
wraps the backend, and every part must see the new one at once.
"""

from __future__ import annotations

import asyncio
import enum
from typing import Final

from consentgate.audit.events import AuditTrail
from consentgate.core.clock import Clock
from consentgate.core.signed.keyring import KeyRing
from consentgate.store.cache import DecisionCache
from consentgate.store.protocol import StoreBackend


class _NotRead(enum.Enum):
    NOT_READ = "not read"


_NOT_READ: Final = _NotRead.NOT_READ


class StoreContext:
    """The backend, key ring, clock, trail and cache of one store."""

    __slots__ = ("_counter_now", "audit", "backend", "cache", "clock", "keyring")

    def __init__(
        self,
        backend: StoreBackend,
        keyring: KeyRing,
        clock: Clock,
        audit: AuditTrail,
        cache: DecisionCache,
    ) -> None:
        self.backend = backend
        self.keyring = keyring
        self.clock = clock
        self.audit = audit
        self.cache = cache
        #: The change counter read in the current step of the running task (see
        #: :meth:`current_counter`); ``_NOT_READ`` outside such a step.
        self._counter_now: int | _NotRead | None = _NOT_READ

    def now(self) -> int:
        """The clock's time in whole seconds, as rows keep it."""
        return int(self.clock())

    def current_counter(self) -> int | None:
        """The backend's change counter, read once per step of the event loop.

        An authorization looks its client up and then its approval, with no ``await``
        between them when both are cached: one check of the counter (SQLite: a
        ``stat`` and ``PRAGMA data_version``, ~10 µs) answers both. The value is
        forgotten by a callback scheduled when it is read, which runs before any task
        resumes from an ``await``: a read after a suspension always checks again, so
        a change made by another process while this one waited is always seen.
        """
        counter = self._counter_now
        if counter is not _NOT_READ:
            return counter
        counter = self.backend.current_counter()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # pragma: no cover - the store's methods are coroutines
            return counter
        self._counter_now = counter
        loop.call_soon(self._forget_counter)
        return counter

    def _forget_counter(self) -> None:
        self._counter_now = _NOT_READ

    def use_cache(self) -> bool:
        """Whether cached answers may be used now: the cache is on and no consent or
        client row changed since it was filled, in any process (None from the
        backend, "cannot tell", empties it and answers from the database)."""
        return self.cache.enabled and self.cache.observe(self.current_counter())
