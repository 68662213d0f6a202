"""Readiness of the store: can it be read *and written* now?

A write probe (the heartbeat row) whose success is kept :data:`HEALTH_INTERVAL`
seconds, so a probe every second costs one small write every few seconds; a store
that can be read but not written (a full disk, a read-only file system, a lock held
by another process) is not ready. Only success is kept: a store that failed is asked
again at the next probe, so readiness returns as soon as the store does.
"""

from __future__ import annotations

import asyncio
import time
from typing import Final

from consentgate.store.parts.context import StoreContext
from consentgate.store.store_errors import StoreUnavailable

#: Seconds a readiness write probe's result is kept; and how long one may take.
HEALTH_INTERVAL: Final = 3.0
HEALTH_TIMEOUT: Final = 2.0


class Readiness:
    """The store's health probe and its kept success."""

    __slots__ = ("_ctx", "_healthy_at")

    def __init__(self, ctx: StoreContext) -> None:
        self._ctx = ctx
        self._healthy_at: float | None = None

    def mark_unhealthy(self) -> None:
        """Forget the last successful probe (a request just found the store unusable)."""
        self._healthy_at = None

    async def health(self) -> StoreUnavailable | None:
        """None when the store can be read and written now; else why not."""
        backend = self._ctx.backend
        try:
            backend.check_identity()  # a stat: every time, cached or not
        except StoreUnavailable as exc:
            return exc
        if self._healthy_at is not None and time.monotonic() - self._healthy_at < HEALTH_INTERVAL:
            return None
        problem: StoreUnavailable | None = None
        try:
            async with asyncio.timeout(HEALTH_TIMEOUT):
                await backend.heartbeat(str(self._ctx.now()))
        except StoreUnavailable as exc:
            problem = exc
        except TimeoutError:
            problem = StoreUnavailable(
                f"the consent store did not answer within {HEALTH_TIMEOUT:g} s", "locked"
            )
        self._healthy_at = time.monotonic() if problem is None else None
        return problem
