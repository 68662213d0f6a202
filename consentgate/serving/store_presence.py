"""``cleanup_ctx``: this gate announces itself in its store while it serves.

A serving gate writes its row among the store's attached gates at start (after the
store opened), refreshes it every :data:`~consentgate.core.attached_gates.REFRESH_EVERY`
seconds from a task of its own (no request pays for it) and deletes it when it stops
cleanly. A migration that would break a gate still attached then refuses, naming it,
instead of leaving it answering with statements for a schema that is gone (docs/
store.md, "Two versions on one store"). A gate killed without stopping leaves its row,
which goes stale and is ignored after a few missed refreshes.

Best effort, and safe either way: a gate that cannot write its row (the store down)
serves as before and tries again at the next refresh; a migration that went ahead
because the row was missing is still noticed by the gate (not ready, ``store:
upgraded by a newer consentgate; restart``). One WARNING when announcing starts to
fail, one INFO when it works again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Final

from aiohttp import web

from consentgate import __version__
from consentgate.core.attached_gates import REFRESH_EVERY
from consentgate.store import ConsentStore
from consentgate.store.store_errors import StoreError
from consentgate.web.appkeys import STORE

log = logging.getLogger("consentgate")

#: How long a stopping gate waits for its row to be deleted (then it goes stale).
WITHDRAW_TIMEOUT: Final = 2.0


class _Announcer:
    """Writes the row and remembers whether the last write failed (for the log)."""

    __slots__ = ("attached", "failing", "store")

    def __init__(self, store: ConsentStore) -> None:
        self.store = store
        self.failing = False
        self.attached = False

    async def announce(self) -> None:
        try:
            gate = await self.store.gates.announce(__version__)
        except (StoreError, OSError) as exc:
            if not self.failing:
                log.warning(
                    "this gate could not announce itself in the store; a migration will "
                    "not see it until it can",
                    extra={"fields": {"reason": str(exc)}},
                )
            self.failing = True
            return
        if not self.attached:  # the first write that went through, at start or later
            self.attached = True
            log.info(
                "this gate is attached to the store",
                extra={"fields": {"instance": gate.instance, "schema": gate.schema_version}},
            )
            # The next start tries again; a stale row blocks nothing.
            with contextlib.suppress(StoreError, OSError):
                await self.store.gates.forget_stale()
        elif self.failing:
            log.info("this gate announces itself in the store again")
        self.failing = False

    async def forever(self) -> None:
        while True:
            await asyncio.sleep(REFRESH_EVERY)
            await self.announce()


async def store_presence(app: web.Application) -> AsyncIterator[None]:
    """Announce at start, refresh while serving, withdraw at the stop."""
    store = app[STORE]
    announcer = _Announcer(store)
    await announcer.announce()
    refresh = asyncio.create_task(announcer.forever())
    try:
        yield
    finally:
        refresh.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await refresh
        try:
            async with asyncio.timeout(WITHDRAW_TIMEOUT):
                await store.gates.withdraw()
        except (StoreError, OSError, TimeoutError) as exc:
            log.warning(
                "this gate's row among the store's attached gates was not deleted; it is "
                "ignored once stale",
                extra={"fields": {"reason": str(exc)}},
            )
