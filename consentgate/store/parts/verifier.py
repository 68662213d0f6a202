"""Record verification, shared by every part of the store: a row is honoured only
when it parses and its Ed25519 signature verifies under a key of the ring
(:func:`consentgate.core.signed.records.verification_failure`, one rule for the
consent, client and pending records and a client's first sighting); anything else is a
tamper event.

A row that fails is treated as absent, logged on ``consentgate.audit`` as a tamper
event and counted (:attr:`Verifier.tamper_events`); it is reported each time it is
read, so the count also tells tests whether an answer came from the cache.
Signatures detect edited and forged rows, not deleted ones (docs/store.md, Limits).
"""

from __future__ import annotations

import builtins
import functools
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from consentgate.audit.integrity import RecordKind, Tamper
from consentgate.core.signed.records import (
    ClientRecord,
    ConsentRecord,
    MalformedRecord,
    PendingRecord,
    verification_failure,
)
from consentgate.core.signed.sightings import SightingRecord
from consentgate.store.parts.context import StoreContext
from consentgate.store.parts.listing import PAGE, every_row
from consentgate.store.protocol import Page, Row

_R = TypeVar("_R", ConsentRecord, ClientRecord, PendingRecord, SightingRecord)


@dataclass(frozen=True, slots=True)
class VerificationFailure:
    """A stored row that is not honoured, and why."""

    kind: RecordKind
    id: str
    reason: str


@dataclass(frozen=True, slots=True)
class VerificationReport:
    """What :meth:`~consentgate.store.facade.ConsentStore.verify_all` checked and
    which rows failed: ``checked`` rows in all, ``counts`` of them per kind."""

    checked: int
    failures: tuple[VerificationFailure, ...]
    counts: Mapping[RecordKind, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failures


#: Where a listing collects the rows it skipped, when the caller asks.
Failures = builtins.list[VerificationFailure]


def _text_or_repr(value: object) -> str:
    return value if isinstance(value, str) else repr(value)[:80]


class Verifier:
    """Parses and verifies rows with the store's current key ring; reports tamper."""

    __slots__ = ("_ctx", "tamper_events")

    def __init__(self, ctx: StoreContext) -> None:
        self._ctx = ctx
        self.tamper_events = 0

    def tamper(self, kind: RecordKind, ident: object, reason: str) -> VerificationFailure:
        """Count and emit one tamper event."""
        self.tamper_events += 1
        failure = VerificationFailure(kind, _text_or_repr(ident), reason)
        self._ctx.audit.emit(Tamper(kind=kind, id=failure.id, reason=reason))
        return failure

    def _verified(
        self,
        kind: RecordKind,
        parse: Callable[[Sequence[Any]], _R],
        row: Row,
        failures: Failures | None,
    ) -> _R | None:
        """The record in ``row`` if it verifies; else a tamper event, and None."""
        try:
            record = parse(row)
            reason = verification_failure(record, self._ctx.keyring)
        except MalformedRecord as exc:
            reason = f"malformed row: {exc}"
        if reason is None:
            return record
        failure = self.tamper(kind, row[0] if row else None, reason)
        if failures is not None:
            failures.append(failure)
        return None

    def consent(self, row: Row, failures: Failures | None = None) -> ConsentRecord | None:
        return self._verified("consent", ConsentRecord.from_row, row, failures)

    def client(self, row: Row, failures: Failures | None = None) -> ClientRecord | None:
        return self._verified("client", ClientRecord.from_row, row, failures)

    def pending(self, row: Row, failures: Failures | None = None) -> PendingRecord | None:
        """A pending row an older version left behind (the gate writes none now: its
        consent pages are sealed, :mod:`consentgate.core.signed.pending`), checked by
        ``consents verify`` until the purge deletes it."""
        return self._verified("pending", PendingRecord.from_row, row, failures)

    def sighting(self, row: Row, failures: Failures | None = None) -> SightingRecord | None:
        """A client's first sighting (:mod:`consentgate.store.parts.first_sightings`):
        a row edited to make a look-alike seem old is not honoured."""
        return self._verified("sighting", SightingRecord.from_row, row, failures)

    async def verify_all(self) -> VerificationReport:
        """Check the signature of every consent, client, pending and first-sighting row;
        report failures."""
        failures: Failures = []
        counts: dict[RecordKind, int] = {}
        backend = self._ctx.backend
        verifiers: tuple[
            tuple[RecordKind, Callable[..., Awaitable[Page]], Callable[..., object]], ...
        ] = (
            ("consent", backend.consent_page, self.consent),
            ("client", backend.client_page, self.client),
            ("pending", backend.pending_page, self.pending),
            ("sighting", backend.sighting_page, self.sighting),
        )
        for kind, pages, verify in verifiers:
            counts[kind] = 0
            async for row in every_row(functools.partial(pages, limit=PAGE)):
                counts[kind] += 1
                verify(row, failures)
        return VerificationReport(sum(counts.values()), tuple(failures), counts)
