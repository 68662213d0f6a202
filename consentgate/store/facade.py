"""The consent store: who approved which client, signed, in a backend's rows.

The store answers one question on every authorization request: *has this
browser (subject) approved this client, for this exact redirect_uri, these
scopes and this resource?* It must answer quickly and truthfully, and a record
that someone edited in the database must never be honoured (records are signed,
:mod:`consentgate.core.signed.records`). It is usable on its own, in-process, by a Python
OAuth proxy that wants consent records without the gate: it imports no aiohttp.

:class:`ConsentStore` is the public API (docs/store.md). It composes one part per
subject (:mod:`consentgate.store.parts`): consents, client registrations, page
marks and flow bindings, the audit table, key publication, and the verifier they
share; they validate, sign, verify, decide the policies and emit the audit events.
A backend (:mod:`consentgate.store.protocol`) moves rows and never sees a key."""

from __future__ import annotations

import builtins
import os
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Unpack, overload

from consentgate.audit.chain import AuditMark, ChainReport
from consentgate.audit.events import AuditTrail
from consentgate.audit.trail import AuditRecord
from consentgate.core.clock import Clock, system_clock
from consentgate.core.oauth.authorization_requests import ApprovalKey, ConsentQuestion
from consentgate.core.signed.keyring import KeyRing
from consentgate.core.signed.records import ClientRecord, ConsentRecord
from consentgate.store.cache import DecisionCache
from consentgate.store.parts.audit_chain import AuditChain, AuditFilters, RevokedBy
from consentgate.store.parts.consents import ConsentFilter, Consents
from consentgate.store.parts.context import StoreContext
from consentgate.store.parts.first_sightings import FirstSightings
from consentgate.store.parts.listing import PAGE
from consentgate.store.parts.page_marks import PageClaim, PageMarks
from consentgate.store.parts.person_names import PersonNames
from consentgate.store.parts.presence import GatePresence
from consentgate.store.parts.publication import AnnouncedKeys, KeyRole, Publication, StoredKeys
from consentgate.store.parts.readiness import Readiness
from consentgate.store.parts.registrations import Registrations
from consentgate.store.parts.verifier import (
    Failures,
    VerificationFailure,
    VerificationReport,
    Verifier,
)
from consentgate.store.parts.waiting_signins import WaitingSignIns
from consentgate.store.protocol import Cursor, StoreBackend
from consentgate.store.store_errors import StoreUnavailable

__all__ = ["ConsentStore", "StoredKeys", "VerificationFailure", "VerificationReport"]


class ConsentStore:
    """Signed consent records and client registrations, kept by a backend.

    ``async with await ConsentStore.open(path, keyring) as store:`` opens the SQLite
    store; any opened :class:`~consentgate.store.protocol.StoreBackend` may be handed
    to the constructor instead, and is closed with the store. Every method may run
    concurrently; each delegates to its subject's part (:mod:`consentgate.store.parts`).
    """

    def __init__(
        self,
        backend: StoreBackend,
        keyring: KeyRing,
        *,
        clock: Clock = system_clock,
        cache_size: int = 10_000,
        audit: AuditTrail | None = None,
    ) -> None:
        """A store over an opened ``backend`` (``cache_size=0``: no answer cache)."""
        if cache_size < 0:
            raise ValueError("cache_size must not be negative")
        self.audit = audit or AuditTrail()
        self.clock = clock
        ctx = StoreContext(backend, keyring, clock, self.audit, DecisionCache(cache_size))
        self._ctx = ctx
        self._verifier = Verifier(ctx)
        self._publication = Publication(ctx)
        self._consents = Consents(ctx, self._verifier, self._publication)
        self._clients = Registrations(ctx, self._verifier, self._publication)
        self._marks = PageMarks(ctx)
        self._trail = AuditChain(ctx, self._publication)
        self._readiness = Readiness(ctx)
        self.gates = GatePresence(ctx)  # this gate's row among the attached gates
        self.signins = WaitingSignIns(ctx, self._verifier)  # [identity]: parts/waiting_signins
        self.people = PersonNames(ctx)  # [identity]: parts/person_names
        self.sightings = FirstSightings(ctx, self._verifier)  # clients named by a URL

    @classmethod
    async def open(
        cls,
        path: str | os.PathLike[str],
        keyring: KeyRing,
        *,
        clock: Clock = system_clock,
        create: bool = True,
        busy_timeout: float = 5.0,
        cache_size: int = 10_000,
        audit: AuditTrail | None = None,
    ) -> ConsentStore:
        """Open (and create or migrate) the SQLite store at ``path``; ``create=False``
        refuses a missing file. Raises :class:`StartupError` naming the path (a missing
        directory, a read-only file, not a SQLite database, a newer schema)."""
        if busy_timeout <= 0 or cache_size < 0:
            raise ValueError("busy_timeout must be positive and cache_size not negative")
        # Imported here: opening imports this module, and only a file needs aiosqlite.
        from consentgate.store.opening import open_sqlite  # noqa: PLC0415

        backend = await open_sqlite(path, create=create, busy_timeout=busy_timeout)
        return cls(backend, keyring, clock=clock, cache_size=cache_size, audit=audit)

    @property
    def path(self) -> Path | None:
        """The database file, for a backend that keeps one (SQLite); else None."""
        return self._ctx.backend.path

    @property
    def tamper_events(self) -> int:  # rows that failed verification, counted per read
        return self._verifier.tamper_events

    @property
    def _backend(self) -> StoreBackend:
        return self._ctx.backend

    async def close(self) -> None:
        """Finish queued audit rows and in-flight writes, then close the backend."""
        try:
            await self._trail.close()
        finally:
            await self._ctx.backend.close()

    async def __aenter__(self) -> ConsentStore:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def sees_other_writers(self) -> bool:
        """Whether other processes' changes are noticed now (cached answers trusted)."""
        return self._ctx.backend.current_counter() is not None

    def time_operations(self, observe: Callable[[str, float], None]) -> None:
        """Report each round trip's name and duration to ``observe`` (timing.py)."""
        from consentgate.store.timing import TimedBackend  # noqa: PLC0415 - the gate's only

        self._ctx.backend = TimedBackend.wrap(self._ctx.backend, observe)

    @property
    def keyring(self) -> KeyRing:
        return self._ctx.keyring

    def reload_keys(self, keyring: KeyRing) -> None:
        """Use a new key ring (after ``keys rotate`` or removing a key); empties the cache."""
        self._ctx.keyring = keyring
        self._ctx.cache.clear()

    async def ping(self) -> None:
        """One trivial query through the store's connection; raises on failure."""
        await self._ctx.backend.ping()

    def check_identity(self) -> None:
        """Raise :class:`StoreUnavailable` when the SQLite file was deleted or replaced."""
        self._ctx.backend.check_identity()

    def mark_unhealthy(self) -> None:
        """Forget the last successful health probe (see :meth:`health`)."""
        self._readiness.mark_unhealthy()

    async def health(self) -> StoreUnavailable | None:
        """Readiness: None when the store can be read *and written* now
        (:mod:`consentgate.store.parts.readiness`)."""
        return await self._readiness.health()

    async def claim_cookie_fingerprint(self, fingerprint: str) -> str:
        """The cookie secret's fingerprint the gates sharing this store use (the first
        claimed); a gate whose secret differs refuses to become ready."""
        return await self._publication.claim_cookie_fingerprint(fingerprint)

    async def adopt_cookie_fingerprint(self, fingerprint: str) -> None:
        """Make ``fingerprint`` the store's (``keys adopt-cookie-secret``)."""
        await self._publication.adopt_cookie_fingerprint(fingerprint)

    async def publish_keys(self) -> tuple[str, ...]:
        """Keep the ring's public keys in the store; name each kid stored differently."""
        return await self._publication.publish_keys()

    async def announce_key(self, role: KeyRole, kid: str) -> None:
        """Name ``kid`` the fleet's signing key or staged key (``keys activate``, ``add``)."""
        await self._publication.announce_key(role, kid)

    async def announced_keys(self) -> AnnouncedKeys:
        """The fleet's signing key and staged key as last announced."""
        return await self._publication.announced_keys()

    async def stored_keys(self) -> StoredKeys:
        """The public keys kept in the store (see :mod:`~consentgate.store.parts.publication`)."""
        return await self._publication.stored_keys()

    async def record(
        self,
        subject: str,
        client_id: str,
        redirect_uri: str,
        scopes: Iterable[str],
        resource: str = "",
        *,
        ttl: float,
    ) -> ConsentRecord:
        """Store and return a signed approval valid for ``ttl`` seconds from now."""
        record = await self._consents.record(
            subject, client_id, redirect_uri, scopes, resource, ttl=ttl, claim=None
        )
        assert record is not None  # noqa: S101 - only a claim returns None
        return record

    async def approve_page(
        self,
        pending_id: str,
        page_expires_at: int,
        subject: str,
        *,
        client_id: str,
        redirect_uri: str,
        scopes: Iterable[str],
        resource: str = "",
        ttl: float,
    ) -> ConsentRecord | None:
        """Mark the consent page answered (:meth:`use_page`) and record the approval in
        one durable commit (a failure leaves the page answerable); None when the page
        was already answered."""
        claim = PageClaim(pending_id, page_expires_at)
        return await self._consents.record(
            subject, client_id, redirect_uri, scopes, resource, ttl=ttl, claim=claim
        )

    @overload
    async def is_approved(self, question: ConsentQuestion, /) -> bool: ...

    @overload
    async def is_approved(
        self,
        subject: str,
        client_id: str,
        redirect_uri: str,
        scopes: Iterable[str],
        resource: str = "",
    ) -> bool: ...

    async def is_approved(
        self,
        subject: str | ConsentQuestion,
        client_id: str | None = None,
        redirect_uri: str | None = None,
        scopes: Iterable[str] | None = None,
        resource: str = "",
    ) -> bool:
        """True only when an unrevoked, unexpired, validly signed record matches the
        question's subject, client_id, redirect key and resource exactly and its scopes
        include every scope asked (no scope is covered only by an approval of none).
        Asked with a :class:`ConsentQuestion`
        (:mod:`consentgate.core.oauth.authorization_requests`), or its values."""
        if isinstance(subject, ConsentQuestion):
            return await self._consents.answer(subject)
        if client_id is None or redirect_uri is None or scopes is None:
            raise TypeError("is_approved needs subject, client_id, redirect_uri and scopes")
        return await self._consents.is_approved(
            ApprovalKey(subject, client_id, redirect_uri, resource), scopes
        )

    async def get(self, id: str) -> ConsentRecord | None:
        """One verified record by id (revoked or expired included), or None."""
        return await self._consents.get(id)

    async def inspect(self, id: str) -> ConsentRecord | VerificationFailure | None:
        """One record by id for operators: the verified record, why its row is not
        honoured (a tamper event), or None when no row has that id."""
        return await self._consents.inspect(id)

    async def revoke(
        self,
        *,
        id: str | None = None,
        client_id: str | None = None,
        redirect_uri: str | None = None,
        subject: str | None = None,
        all: bool = False,
        owner: str | None = None,
        by: RevokedBy = "library",
        request_id: str = "",
    ) -> int:
        """Revoke the records of exactly one selector (``owner``: only that subject's);
        returns how many (:meth:`~consentgate.store.parts.consents.Consents.revoke`)."""
        named = (id, client_id, redirect_uri, subject)
        return await self._consents.revoke(
            named, all=all, owner=owner, by=by, request_id=request_id
        )

    def iter_records(
        self,
        *,
        client_id: str | None = None,
        redirect_uri: str | None = None,
        subject: str | None = None,
        include_revoked: bool = True,
        include_expired: bool = True,
        failures: Failures | None = None,
    ) -> AsyncIterator[ConsentRecord]:
        """Verified records matching every filter, oldest first; rows that fail are
        tamper events, appended to ``failures`` when it is a list."""
        where = ConsentFilter(client_id, redirect_uri, subject)
        return self._consents.iter_records(
            where,
            include_revoked=include_revoked,
            include_expired=include_expired,
            failures=failures,
        )

    async def page_records(
        self,
        *,
        client_id: str | None = None,
        redirect_uri: str | None = None,
        subject: str | None = None,
        active_only: bool = False,
        cursor: str | None,
        limit: int,
        failures: Failures | None = None,
    ) -> tuple[builtins.list[ConsentRecord], str | None]:
        """One page of :meth:`iter_records` behind an opaque cursor (the admin API):
        the next cursor, not the page's length, says whether there is more."""
        where = ConsentFilter(client_id, redirect_uri, subject)
        return await self._consents.page_records(
            where, active_only=active_only, cursor=cursor, limit=limit, failures=failures
        )

    async def list(
        self,
        *,
        client_id: str | None = None,
        redirect_uri: str | None = None,
        subject: str | None = None,
        include_revoked: bool = True,
        include_expired: bool = True,
    ) -> builtins.list[ConsentRecord]:
        """:meth:`iter_records` as a list (:meth:`verify_all` names the rows left out)."""
        where = ConsentFilter(client_id, redirect_uri, subject)
        records = self._consents.iter_records(
            where, include_revoked=include_revoked, include_expired=include_expired
        )
        return [record async for record in records]

    async def verify_all(self) -> VerificationReport:
        """Check the signature of every signed row, first sightings included; report failures."""
        return await self._verifier.verify_all()

    async def restored_revocations(self) -> builtins.list[tuple[ConsentRecord, int]]:
        """Unrevoked records a signed ``revoked`` audit row covers, and when it started."""
        return await self._consents.restored_revocations(self._trail)

    async def upsert_client(self, metadata: Mapping[str, Any]) -> ClientRecord:
        """Store a client from its parsed registration RESPONSE (RFC 7591 §3.2.1)."""
        return await self._clients.upsert_client(metadata)

    async def get_client(self, client_id: str) -> ClientRecord | None:
        """The verified client registration, or None; cached like :meth:`is_approved`."""
        return await self._clients.get_client(client_id)

    def iter_clients(self, *, failures: Failures | None = None) -> AsyncIterator[ClientRecord]:
        """Every verified client registration, oldest first."""
        return self._clients.iter_clients(failures=failures)

    async def page_clients(
        self, *, cursor: str | None, limit: int, failures: Failures | None = None
    ) -> tuple[builtins.list[ClientRecord], str | None]:
        """One page of :meth:`iter_clients`, paged like :meth:`page_records`."""
        return await self._clients.page_clients(cursor=cursor, limit=limit, failures=failures)

    async def count_pending(self) -> int:
        """Unexpired pending rows an older version left behind (a gauge)."""
        return await self._marks.count_pending()

    async def use_page(self, pending_id: str, expires_at: int) -> bool:
        """Mark the sealed consent page answered; False when it already was."""
        return await self._marks.use_page(pending_id, expires_at)

    async def use_binding(self, key: str, expires_at: int) -> bool:
        """Mark the flow binding ``key`` used; False when it already was."""
        return await self._marks.use_binding(key, expires_at)

    async def purge_expired(self, *, keep_records: float | None = None) -> int:
        """Delete expired pending rows and used marks and, with ``keep_records``
        seconds, records expired or revoked longer ago; returns how many rows went."""
        return await self._marks.purge_expired(keep_records=keep_records)

    async def flush_audit(self) -> None:
        """Wait until every audit row queued so far is in the table."""
        await self._trail.flush()

    async def audit_page(
        self, *, after: Cursor | None = None, limit: int = PAGE, **filters: Unpack[AuditFilters]
    ) -> tuple[builtins.list[AuditRecord], Cursor | None]:
        """One page of audit rows, oldest first, matching every filter (``since``,
        ``event``, ``client_id``, ``request_id``)."""
        return await self._trail.audit_page(after=after, limit=limit, **filters)

    async def page_audit(
        self, *, cursor: str | None, limit: int, **filters: Unpack[AuditFilters]
    ) -> tuple[builtins.list[AuditRecord], str | None]:
        """:meth:`audit_page` behind an opaque cursor (a malformed one: ValueError)."""
        return await self._trail.page_audit(cursor=cursor, limit=limit, **filters)

    def iter_audit(self, **filters: Unpack[AuditFilters]) -> AsyncIterator[AuditRecord]:
        """Every audit row matching the filters, oldest first, page by page."""
        return self._trail.iter_audit(**filters)

    async def verify_audit(self) -> ChainReport:
        """Check the whole chain and its signed head; names the first broken row."""
        return await self._trail.verify()

    async def purge_audit(self, keep: float) -> int:
        """Delete audit rows older than ``keep`` seconds behind a signed checkpoint;
        returns how many rows went."""
        return await self._trail.purge(keep)

    async def keep_audit_mark(self, keys_dir: Path) -> str | None:
        """Keep the trail's high-water mark in ``keys_dir`` from now on; why the trail
        is behind the mark found there, or None (:mod:`consentgate.store.auditmark`)."""
        return await self._trail.keep_mark(keys_dir)

    async def flush_audit_mark(self) -> None:
        """Write the mark for every row appended so far now."""
        await self._trail.flush_mark()

    async def audit_mark_problem(self, mark: AuditMark | None = None) -> str | None:
        """Why the trail is behind ``mark`` (default: the one kept), or None."""
        return await self._trail.mark_problem(mark)

    async def audit_trail_problem(self) -> str | None:
        """:meth:`audit_mark_problem` for readiness, kept a few seconds."""
        return await self._trail.trail_problem()

    def key_rotated(self, previous: str, active: str, *, by: RevokedBy = "cli") -> None:
        """Audit a key rotation (``consentgate keys rotate``)."""
        self._trail.key_rotated(previous, active, by=by)
