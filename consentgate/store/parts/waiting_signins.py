"""Authorization requests waiting for their person to sign in at the gate ([identity]).

While the browser is away at the identity provider, the request it came with waits
here, never in the browser or the provider's round trip (docs/references.md,
Cloudflare's lesson: keep the pending request server-side). It is a signed pending
record (``source`` ``signin``), the kind the store kept for consent pages before they
were sealed into the page: its id is a digest of the sign-in's ``state``
(:func:`consentgate.core.identity.transaction.state_key`), its subject the browser
that started the sign-in, its payload what the gate needs to resume.

Taking it is one ``DELETE ... RETURNING`` matching the id *and* the browser: a
callback is used once (a replay finds nothing), and a ``state`` swapped into another
browser finds nothing either (and leaves the owner's row in place). The purge of
expired pending rows removes sign-ins never completed.
"""

from __future__ import annotations

from consentgate.core.identity.transaction import SIGNIN_SOURCE
from consentgate.core.signed.records import PendingRecord, check_length, check_text, sign_record
from consentgate.store.parts.context import StoreContext
from consentgate.store.parts.verifier import Verifier


class WaitingSignIns:
    """Hold and take the authorization requests waiting for a sign-in."""

    __slots__ = ("_ctx", "_verifier")

    def __init__(self, ctx: StoreContext, verifier: Verifier) -> None:
        self._ctx = ctx
        self._verifier = verifier

    async def hold(self, key: str, subject: str, payload: str, expires_at: int) -> None:
        """Keep ``payload`` for the browser ``subject`` under ``key`` until ``expires_at``."""
        check_length("key", check_text("key", key), 128)
        check_length("subject", check_text("subject", subject), 128)
        record = PendingRecord(
            id=key,
            subject=subject,
            source=SIGNIN_SOURCE,
            payload=payload,
            created_at=self._ctx.now(),
            expires_at=int(expires_at),
            key_id="",
            signature=b"",
        )
        await self._ctx.backend.put_pending(sign_record(record, self._ctx.keyring).to_row())

    async def take(self, key: str, subject: str) -> str | None:
        """The payload kept under ``key`` for this browser, removed as it is read; None
        when there is none (never held, already taken, another browser's), it expired,
        or its signature fails (a tamper event)."""
        row = await self._ctx.backend.take_pending(key, subject)
        if row is None:
            return None
        record = self._verifier.pending(row)
        if record is None or record.source != SIGNIN_SOURCE:
            return None
        if record.expires_at <= self._ctx.now() or record.subject != subject:
            return None
        return record.payload
