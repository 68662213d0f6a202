"""This gate's presence in the store: the row that says a gate of which schema is
attached, refreshed while it serves and deleted when it stops, so that a migration
that would break it refuses instead (:mod:`consentgate.core.attached_gates`, docs/
store.md "Two versions on one store").

The row carries what an operator needs to find the gate (host, pid, software version)
and what a migration needs to decide (the schema version the backend's code runs, when
it was last seen and how often it promised to refresh). A random instance id per
process keeps two workers, or two gates in one container image, apart. Commands that
only read (``consents list``) never announce: they hold the store for a moment, not
for a deploy.
"""

from __future__ import annotations

import os
import secrets
import socket

from consentgate.core.attached_gates import FORGET_AFTER, REFRESH_EVERY, AttachedGate
from consentgate.store.parts.context import StoreContext


class GatePresence:
    """Announce, refresh and withdraw this process's row; list every gate's."""

    __slots__ = ("_ctx", "_started_at", "instance")

    def __init__(self, ctx: StoreContext) -> None:
        self._ctx = ctx
        #: Random per process (and per store opened in it): never reused by a restart.
        self.instance = secrets.token_urlsafe(12)
        self._started_at: int | None = None

    def this_gate(self, software: str) -> AttachedGate:
        """The row this process announces, as of now."""
        now = self._ctx.now()
        if self._started_at is None:
            self._started_at = now
        return AttachedGate(
            instance=self.instance,
            schema_version=self._ctx.backend.schema_version,
            software=software,
            host=socket.gethostname(),
            pid=os.getpid(),
            started_at=self._started_at,
            seen_at=now,
            refresh_every=REFRESH_EVERY,
        )

    async def announce(self, software: str) -> AttachedGate:
        """Write (or refresh) this process's row; at start, then every
        :data:`~consentgate.core.attached_gates.REFRESH_EVERY` seconds."""
        gate = self.this_gate(software)
        await self._ctx.backend.announce_gate(gate.to_row())
        return gate

    async def withdraw(self) -> None:
        """Delete this process's row (a clean stop)."""
        await self._ctx.backend.leave_gate(self.instance)

    async def forget_stale(self) -> int:
        """Delete the rows of gates not seen for
        :data:`~consentgate.core.attached_gates.FORGET_AFTER` seconds (killed, never
        back); a starting gate does it once. Returns how many."""
        return await self._ctx.backend.forget_gates(self._ctx.now() - FORGET_AFTER)

    async def attached(self) -> list[AttachedGate]:
        """Every gate's row, stale ones included, oldest start first."""
        return [AttachedGate.from_row(row) for row in await self._ctx.backend.attached_gates()]
