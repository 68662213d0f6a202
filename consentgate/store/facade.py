"""The consent store: who approved which client, signed, in a backend's rows.

The store answers one question on every authorization request: *has this
browser (subject) approved this client, for this exact redirect_uri, these
scopes and this resource?* It must answer quickly and truthfully, and a record
that someone edited in the database must never be honoured. It is usable on its
own, in-process, by a Python OAuth proxy that wants consent records without
running the gate: nothing here imports aiohttp.

This module is the only place that validates input, signs, verifies and emits the
store's audit events. Rows live in a backend (:mod:`consentgate.store.backend`,
the protocol; :mod:`consentgate.store.sqlite`, the one that ships), which moves
rows and owns transactions and never sees a key. Answers are cached in
:mod:`consentgate.store.cache`, invalidated by the backend's change counter.

Decisions and their sources (docs/references.md):

* Server-side records with expiry, revocation (by id, client, redirect_uri,
  subject, or all), an audit log and key rotation, the weaknesses FastMCP's
  cookie-only consent could not fix; listing and revoking by subject, by client
  or one by one follows Hydra's admin API conventions.
* Consent is keyed on the exact redirect_uri as well as the client_id: behind a
  single-client proxy the redirect_uri is the only per-client identity (MCP
  2025-11-25, "Confused Deputy Problem"; RFC 9700 exact redirect matching).
* Every record is Ed25519-signed (:mod:`consentgate.core.records`), ``revoked_at``
  included; a row whose signature fails, whose key is unknown or whose fields
  were changed is treated as absent, logged on ``consentgate.audit`` as a tamper
  event and counted in :attr:`ConsentStore.tamper_events`. Revoking re-signs the
  row with the active key, so setting ``revoked_at`` back to NULL is an edit.
  Limit: signatures detect edits and forged rows, not the deletion of a row nor
  the rollback of a whole row to an earlier signed version of itself.
* Verification happens here, between the backend's reads and writes of one
  transaction where a write depends on what was read (refreshing an approval,
  revoking, keeping a client's first registration time): a row that fails is
  never re-signed, which would launder the edit.
* Verified answers are cached (a round trip and a verification cost hundreds of
  microseconds, a cached answer a few); the cache must not outlive a change made
  by another process (the CLI's ``consents revoke`` while the gate runs), so it
  asks the backend's change counter before each cached answer, synchronously.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import dataclasses
import enum
import functools
import os
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import Any, Final, Literal, TypeVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from consentgate.audit.chain import (
    AuditMark,
    ChainCheck,
    ChainReport,
    Revocations,
    mark_problem,
)
from consentgate.audit.decisions import (
    ConsentRecorded,
    ConsentRefreshed,
    ConsentsPurged,
    ConsentsRevoked,
)
from consentgate.audit.events import AuditEvent, AuditTrail
from consentgate.audit.integrity import KeyRotated, Tamper
from consentgate.audit.trail import (
    GENESIS,
    HEAD_SETTING,
    AuditEntry,
    AuditRecord,
    MalformedAuditRow,
    head_value,
)
from consentgate.core.clock import Clock, system_clock
from consentgate.core.keys import KeyRing, jwk_text, public_key_from_jwk_text
from consentgate.core.paging import Listing, decode_cursor, encode_cursor
from consentgate.core.records import (
    MAX_CLIENT_ID_LENGTH,
    MAX_SCOPE_LENGTH,
    MAX_SUBJECT_LENGTH,
    MAX_URI_LENGTH,
    ClientRecord,
    ConsentRecord,
    MalformedRecord,
    PendingRecord,
    check_length,
    check_text,
    scope_set,
    sign_record,
    verification_failure,
)
from consentgate.store.auditlog import AuditWriter
from consentgate.store.auditmark import MarkKeeper, read_mark
from consentgate.store.backend import (
    Cursor,
    Page,
    Resigned,
    RevokeSelector,
    Row,
    StoreBackend,
    StoreTransaction,
)
from consentgate.store.cache import MISSING, DecisionCache, Grants, Key, covered
from consentgate.store.errors import StoreUnavailable


class _NotRead(enum.Enum):
    NOT_READ = "not read"


_NOT_READ: Final = _NotRead.NOT_READ

__all__ = [
    "ConsentStore",
    "VerificationFailure",
    "VerificationReport",
]

_R = TypeVar("_R", ConsentRecord, ClientRecord, PendingRecord)

#: Seconds a readiness write probe's result is kept; and how long one may take.
HEALTH_INTERVAL: Final = 3.0
HEALTH_TIMEOUT: Final = 2.0

#: Seconds :meth:`ConsentStore.close` waits for queued audit rows to be written.
AUDIT_CLOSE_TIMEOUT: Final = 5.0

#: Rows per page of a listing, and per transaction of a revocation (so a huge
#: revocation never holds the write lock for long).
_PAGE: Final = 500

RecordKind = Literal["consent", "client", "pending"]
#: Who revoked, as the audit trail names it.
RevokedBy = Literal["cli", "admin", "self", "library"]


@dataclass(frozen=True, slots=True)
class VerificationFailure:
    """A stored row that is not honoured, and why."""

    kind: RecordKind
    id: str
    reason: str


@dataclass(frozen=True, slots=True)
class VerificationReport:
    """What :meth:`ConsentStore.verify_all` checked and which rows failed."""

    checked: int
    failures: tuple[VerificationFailure, ...]

    @property
    def ok(self) -> bool:
        return not self.failures


async def _rows(page: Callable[..., Awaitable[Page]]) -> AsyncIterator[Row]:
    """Every row of a paged listing: ``page(after=cursor)`` until the cursor is None.
    Each page is read only when the previous one was consumed."""
    cursor: Cursor | None = None
    while True:
        rows, cursor = await page(after=cursor)
        for row in rows:
            yield row
        if cursor is None:
            return


def _text_or_repr(value: object) -> str:
    return value if isinstance(value, str) else repr(value)[:80]


def _storable(*values: object) -> bool:
    """False when a lookup value cannot be in any record (so the answer is no)."""
    for value in values:
        if not isinstance(value, str):
            raise TypeError(f"expected a string, got {type(value).__name__}")
        try:
            check_text("value", value, allow_empty=True)
        except ValueError:
            return False
    return True


#: The setting holding the cookie secret's fingerprint (:func:`~consentgate.core.keys.
#: secret_fingerprint`), claimed by the first gate that starts on the store.
COOKIE_FINGERPRINT: Final = "cookie_secret_fingerprint"
#: Used-marks of answered consent pages share the table of used flow bindings; a
#: binding key is base64url (no ``:``), so the prefix keeps the two apart.
_PAGE_MARK_PREFIX: Final = "page:"
#: A page's mark is kept this long past the page's own expiry, so a gate whose clock
#: runs a little behind the purging one never sees an unexpired page without its mark.
PAGE_MARK_MARGIN: Final = 300


#: Settings named ``signing_key:<kid>`` hold the public JWK of each key that signed
#: records in the store, so that any machine with access to the store can check
#: them (``consents verify`` and ``export`` without the keys directory).
SIGNING_KEY_PREFIX: Final = "signing_key:"


def _page_mark(pending_id: str) -> str:
    """The used-binding key that marks the sealed consent page ``pending_id`` answered."""
    check_length("pending_id", check_text("pending_id", pending_id), 64)
    return _PAGE_MARK_PREFIX + pending_id


def new_record_id() -> str:
    """128 random bits, base64url, never starting with ``-``: an id is typed on the
    command line (``consents revoke --id X``), where a leading dash reads as an option."""
    while True:
        ident = secrets.token_urlsafe(16)
        if not ident.startswith("-"):
            return ident


@dataclass(frozen=True, slots=True)
class StoredKeys:
    """The public keys a store keeps: those that load, and the names of the settings
    that do not (not a JWK of an Ed25519 key, or a key that does not hash to its kid:
    edited in the database)."""

    keys: Mapping[str, Ed25519PublicKey]
    unreadable: tuple[str, ...]


class ConsentStore:
    """Signed consent records and client registrations, kept by a backend.

    Open the SQLite store with :meth:`open` and close it with :meth:`close`, or use
    ``async with await ConsentStore.open(path, keyring) as store:``. Another
    backend (any :class:`~consentgate.store.backend.StoreBackend`, already opened)
    is handed to the constructor; the store owns it from then on and closes it.
    Methods are coroutines; all of them may be called concurrently.
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
        """A store over an opened ``backend``; ``cache_size=0`` disables the answer
        cache; ``audit`` receives the store's events (by default the
        ``consentgate.audit`` log)."""
        if cache_size < 0:
            raise ValueError("cache_size must not be negative")
        self.audit = audit or AuditTrail()
        self.clock = clock
        self.tamper_events = 0
        self._backend = backend
        self._keyring = keyring
        self._published: set[str] = set()
        self._cache = DecisionCache(cache_size)
        self._healthy_at: float | None = None
        #: The hash-chained audit table's writer, fed by the trail.
        self._audit_writer = AuditWriter(self._append_audit, clock)
        self.audit.add_sink(self._audit_sink)
        #: The trail's high-water mark in the keys directory (:meth:`keep_audit_mark`).
        self._mark: MarkKeeper | None = None
        self._mark_unreadable: str | None = None
        self._mark_checked: tuple[float, str | None] | None = None
        #: The change counter read in the current step of the running task (see
        #: :meth:`_current_counter`); ``_NOT_READ`` outside such a step.
        self._counter_now: int | _NotRead | None = _NOT_READ

    def _current_counter(self) -> int | None:
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
        counter = self._backend.current_counter()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # pragma: no cover - the facade's methods are coroutines
            return counter
        self._counter_now = counter
        loop.call_soon(self._forget_counter)
        return counter

    def _forget_counter(self) -> None:
        self._counter_now = _NOT_READ

    # --- lifecycle ---------------------------------------------------------------

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
        """Open (and create or migrate) the SQLite store at ``path``.

        ``create=False`` refuses a missing file (the CLI must not create an empty
        store next to a typo). ``cache_size=0`` disables the answer cache.
        Raises :class:`StartupError` with one line naming the path for a missing
        directory, a read-only file or directory, a file that is not a SQLite
        database, or a schema version newer than this code knows.
        ``audit`` receives the store's events (tamper, recorded, revoked, purged);
        by default they go to the ``consentgate.audit`` log.
        """
        if busy_timeout <= 0 or cache_size < 0:
            raise ValueError("busy_timeout must be positive and cache_size not negative")
        # Imported here: only a store opened on a SQLite file needs aiosqlite.
        from consentgate.store.sqlite import SQLiteBackend  # noqa: PLC0415

        backend = await SQLiteBackend.open(path, create=create, busy_timeout=busy_timeout)
        return cls(backend, keyring, clock=clock, cache_size=cache_size, audit=audit)

    @property
    def path(self) -> Path | None:
        """The database file, for a backend that keeps one (SQLite); else None."""
        return self._backend.path

    async def close(self) -> None:
        """Finish in-flight writes, then close the backend's connections. Idempotent.

        Shielded: a shutdown that cancels the caller must not leave aiosqlite's
        non-daemon thread running, which would keep the process alive.
        """
        try:
            await self._audit_writer.close(AUDIT_CLOSE_TIMEOUT)
            if self._mark is not None:
                await self._mark.close()
        finally:
            await self._backend.close()

    async def __aenter__(self) -> ConsentStore:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def claim_cookie_fingerprint(self, fingerprint: str) -> str:
        """The fingerprint of the cookie secret that the gates sharing this store use:
        ``fingerprint`` when this is the first gate to start, else the one claimed
        first. A gate whose secret differs would break every flow that crosses gates;
        it refuses to become ready (``readyz``)."""
        check_length("fingerprint", check_text("fingerprint", fingerprint), 64)
        return await self._backend.claim_setting(COOKIE_FINGERPRINT, fingerprint)

    async def adopt_cookie_fingerprint(self, fingerprint: str) -> None:
        """Make ``fingerprint`` the store's, after the cookie secret was changed on every
        gate on purpose (``consentgate keys adopt-cookie-secret``)."""
        check_length("fingerprint", check_text("fingerprint", fingerprint), 64)
        await self._backend.set_setting(COOKIE_FINGERPRINT, fingerprint)

    async def publish_keys(self) -> tuple[str, ...]:
        """Record every public key of the ring in the store, and name each kid whose
        stored key differs from this ring's (an edited settings row: the kid is the
        key's thumbprint, so two keys cannot share it honestly). The gate calls this
        at start; a key that signs is also published before its first record."""
        problems: list[str] = []
        for kid in self._keyring.kids:
            public_key = self._keyring.public_key(kid)
            assert public_key is not None  # noqa: S101 - kids and public keys agree
            mine = jwk_text(public_key)
            if await self._backend.claim_setting(SIGNING_KEY_PREFIX + kid, mine) != mine:
                problems.append(kid)
            self._published.add(kid)
        return tuple(problems)

    async def stored_keys(self) -> StoredKeys:
        """The public keys kept in the store (see :data:`SIGNING_KEY_PREFIX`)."""
        keys: dict[str, Ed25519PublicKey] = {}
        unreadable: list[str] = []
        for name, text in sorted((await self._backend.settings(SIGNING_KEY_PREFIX)).items()):
            kid = name.removeprefix(SIGNING_KEY_PREFIX)
            public_key = public_key_from_jwk_text(text, kid)
            if public_key is None:
                unreadable.append(name)
            else:
                keys[kid] = public_key
        return StoredKeys(MappingProxyType(keys), tuple(unreadable))

    def _unpublished(self, ring: KeyRing) -> tuple[str, str] | None:
        """The setting that keeps ``ring``'s active key, while this store has not
        written it yet (so, once per key and process, a write also keeps its key)."""
        kid = ring.active_kid
        if kid in self._published:
            return None
        public_key = ring.public_key(kid)
        assert public_key is not None  # noqa: S101 - the active key is in its ring
        return SIGNING_KEY_PREFIX + kid, jwk_text(public_key)

    async def _keep_key(self, tx: StoreTransaction, ring: KeyRing) -> None:
        """Keep ``ring``'s active key in the transaction that writes its first record,
        so no record in the store names a key the store lacks."""
        setting = self._unpublished(ring)
        if setting is not None:
            await tx.claim_setting(*setting)

    def _kept(self, ring: KeyRing) -> None:
        self._published.add(ring.active_kid)

    @property
    def sees_other_writers(self) -> bool:
        """Whether changes made by other processes are noticed now, so cached answers
        are trusted. False while the backend cannot tell (a PostgreSQL notification
        connection being re-established): answers then come from the database, which
        is slower but as correct."""
        return self._backend.current_counter() is not None

    def time_operations(self, observe: Callable[[str, float], None]) -> None:
        """Report each database round trip, its operation's name and duration, to
        ``observe`` (the gate's store histogram, :mod:`consentgate.store.timing`)."""
        from consentgate.store.timing import TimedBackend  # noqa: PLC0415 - the gate's only

        self._backend = TimedBackend.wrap(self._backend, observe)

    @property
    def keyring(self) -> KeyRing:
        return self._keyring

    def reload_keys(self, keyring: KeyRing) -> None:
        """Use a new key ring (after ``keys rotate`` or removing a key); empties the cache."""
        self._keyring = keyring
        self._invalidate()

    async def ping(self) -> None:
        """One trivial query through the store's connection; raises on failure."""
        await self._backend.ping()

    def check_identity(self) -> None:
        """Raise :class:`StoreUnavailable` (kind ``gone``) when the store's file was
        deleted or replaced under the gate (SQLite; see the backend). Run on a timer
        and by readiness, so that a store nobody writes to is noticed too."""
        self._backend.check_identity()

    def mark_unhealthy(self) -> None:
        """Forget the last successful health probe: a request just found the store
        unusable, so readiness asks the store again at its next probe instead of
        repeating a cached success for up to :data:`HEALTH_INTERVAL` seconds."""
        self._healthy_at = None

    async def health(self) -> StoreUnavailable | None:
        """Readiness: can the store be read *and written* now? None when it can.

        A write probe (the heartbeat row); a success is kept for
        :data:`HEALTH_INTERVAL` seconds, so a probe every second costs one small write
        every few seconds; a store that can be read but not written (a full
        disk, a read-only file system, a lock held by another process) is not ready.
        """
        try:
            self.check_identity()  # a stat: every time, cached or not
        except StoreUnavailable as exc:
            return exc
        if self._healthy_at is not None and time.monotonic() - self._healthy_at < HEALTH_INTERVAL:
            return None
        problem: StoreUnavailable | None = None
        try:
            async with asyncio.timeout(HEALTH_TIMEOUT):
                await self._backend.heartbeat(str(int(self.clock())))
        except StoreUnavailable as exc:
            problem = exc
        except TimeoutError:
            problem = StoreUnavailable(
                f"the consent store did not answer within {HEALTH_TIMEOUT:g} s", "locked"
            )
        # Only success is kept: a store that failed is asked again at the next probe,
        # so readiness returns as soon as the store does.
        self._healthy_at = time.monotonic() if problem is None else None
        return problem

    # --- verification --------------------------------------------------------------

    def _tamper(self, kind: RecordKind, ident: object, reason: str) -> VerificationFailure:
        self.tamper_events += 1
        failure = VerificationFailure(kind, _text_or_repr(ident), reason)
        self.audit.emit(Tamper(kind=kind, id=failure.id, reason=reason))
        return failure

    def _verified(
        self,
        kind: RecordKind,
        parse: Callable[[Sequence[Any]], _R],
        row: Row,
        failures: builtins.list[VerificationFailure] | None,
    ) -> _R | None:
        """The record in ``row`` if it verifies; else a tamper event, and None."""
        try:
            record = parse(row)
            reason = verification_failure(record, self._keyring)
        except MalformedRecord as exc:
            reason = f"malformed row: {exc}"
        if reason is None:
            return record
        failure = self._tamper(kind, row[0] if row else None, reason)
        if failures is not None:
            failures.append(failure)
        return None

    def _verified_consent(
        self, row: Row, failures: builtins.list[VerificationFailure] | None = None
    ) -> ConsentRecord | None:
        return self._verified("consent", ConsentRecord.from_row, row, failures)

    def _verified_client(
        self, row: Row, failures: builtins.list[VerificationFailure] | None = None
    ) -> ClientRecord | None:
        return self._verified("client", ClientRecord.from_row, row, failures)

    def _verified_pending(
        self, row: Row, failures: builtins.list[VerificationFailure] | None = None
    ) -> PendingRecord | None:
        """A pending row an older version left behind (the gate writes none now: its
        consent pages are sealed, :mod:`consentgate.core.pending`), checked by
        ``consents verify`` until the purge deletes it."""
        return self._verified("pending", PendingRecord.from_row, row, failures)

    # --- the answer cache --------------------------------------------------------

    def _invalidate(self) -> None:
        self._cache.clear()

    def _invalidate_after_own_write(
        self, before: int, after: int, *, key: Key | None = None, client_id: str | None = None
    ) -> None:
        """Forget only what this process's own write changed, when that is all that
        changed (:meth:`DecisionCache.after_own_write`).

        ``before`` and ``after`` are the backend's change counter read inside the
        write's transaction.
        """
        self._cache.after_own_write(before, after, key=key, client_id=client_id)

    # --- consents ----------------------------------------------------------------

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
        """Store and return a signed approval valid for ``ttl`` seconds from now.

        ``resource`` is the RFC 8707 resource indicator, ``""`` when none was sent.
        """
        record = await self._record(
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
        """Mark the sealed consent page ``pending_id`` answered (see :meth:`use_page`)
        and record the approval, in one durable transaction; None (nothing recorded)
        when the page was already answered.

        One commit for both, so a store that fails between them leaves the page
        answerable once it is back, instead of a page used up and no approval.
        """
        key = _page_mark(pending_id)

        async def mark(tx: StoreTransaction, now: int) -> bool:
            return await tx.use_binding(key, int(page_expires_at) + PAGE_MARK_MARGIN)

        return await self._record(
            subject, client_id, redirect_uri, scopes, resource, ttl=ttl, claim=mark
        )

    async def _record(
        self,
        subject: str,
        client_id: str,
        redirect_uri: str,
        scopes: Iterable[str],
        resource: str,
        *,
        ttl: float,
        claim: Callable[[StoreTransaction, int], Awaitable[bool]] | None,
    ) -> ConsentRecord | None:
        """Sign and upsert the approval; with ``claim``, only if it returns True inside
        the same transaction (it used up the page being answered)."""
        check_length("subject", check_text("subject", subject), MAX_SUBJECT_LENGTH)
        check_length("client_id", check_text("client_id", client_id), MAX_CLIENT_ID_LENGTH)
        check_length("redirect_uri", check_text("redirect_uri", redirect_uri), MAX_URI_LENGTH)
        check_length("resource", check_text("resource", resource, allow_empty=True), MAX_URI_LENGTH)
        granted = scope_set(scopes)
        check_length("scopes", " ".join(sorted(granted)), MAX_SCOPE_LENGTH)
        if not ttl >= 1:
            raise ValueError(f"ttl must be at least one second, got {ttl!r}")
        key: Key = (subject, client_id, redirect_uri, resource)
        now = int(self.clock())
        unsigned = ConsentRecord(
            id=new_record_id(),
            subject=subject,
            client_id=client_id,
            redirect_uri=redirect_uri,
            scopes=granted,
            resource=resource,
            granted_at=now,
            expires_at=now + int(ttl),
            revoked_at=None,
            key_id="",
            signature=b"",
        )

        ring = self._keyring

        async def upsert(tx: StoreTransaction) -> tuple[ConsentRecord, bool, int, int] | None:
            """Refresh an identical active approval, else insert a new record: the same
            person approving the same thing again must not add a row each time. With
            ``claim``, first use up the page answered (None: it was used already)."""
            if claim is not None and not await claim(tx, now):
                return None
            before = await tx.change_counter()
            await self._keep_key(tx, ring)
            for row in await tx.active_consents(key, now):
                existing = self._verified_consent(row)
                if existing is None or existing.scopes != granted:
                    continue
                refreshed = sign_record(
                    dataclasses.replace(
                        existing, expires_at=max(unsigned.expires_at, existing.expires_at)
                    ),
                    ring,
                )
                await tx.refresh_consent(
                    existing.id, refreshed.expires_at, refreshed.key_id, refreshed.signature
                )
                return refreshed, True, before, await tx.change_counter()
            record = sign_record(unsigned, ring)
            await tx.insert_consent(record.to_row())
            return record, False, before, await tx.change_counter()

        # Durable: the person is told 'remembered' only once it is on disk.
        done = await self._backend.transaction(upsert, durable=True)
        if done is None:
            return None
        record, refreshed, before, after = done
        self._kept(ring)
        self._invalidate_after_own_write(before, after, key=key)
        self.audit.emit(
            (ConsentRefreshed if refreshed else ConsentRecorded)(
                id=record.id,
                subject=subject,
                client_id=client_id,
                redirect_uri=redirect_uri,
                scopes=" ".join(sorted(granted)),
                resource=resource,
                expires_at=record.expires_at,
            )
        )
        return record

    async def is_approved(
        self,
        subject: str,
        client_id: str,
        redirect_uri: str,
        scopes: Iterable[str],
        resource: str = "",
    ) -> bool:
        """True only when an unrevoked, unexpired, validly signed record exists whose
        subject, client_id, redirect_uri and resource match exactly and whose scopes
        include every requested scope.

        A request without any scope is covered only by an approval that had none
        either: what "no scope" means is the upstream's choice (often its default
        or every registered scope), so an approval of ``read`` must not silently
        cover it.
        """
        if isinstance(scopes, str | bytes):
            raise TypeError("scopes must be a collection of strings, not a single string")
        wanted = frozenset(scopes)
        key = (subject, client_id, redirect_uri, resource)
        now = self.clock()
        cache = self._cache
        # Did any consent or client row change since the cache was filled, in any
        # process? The backend answers synchronously from a local check when nothing
        # did (no await on the hot path); None ("cannot tell") bypasses the cache.
        use_cache = cache.enabled and cache.observe(self._current_counter())
        if use_cache:
            cached = cache.grants(key)
            if cached is not None:
                return covered(wanted, cached, now)
        if not _storable(*key):
            return False
        generation = cache.generation
        rows = await self._backend.active_consents(key, int(now))
        found: builtins.list[tuple[frozenset[str], int]] = []
        for row in rows:
            record = self._verified_consent(row)
            if record is None or record.revoked_at is not None:
                continue
            if (record.subject, record.client_id, record.redirect_uri, record.resource) != key:
                continue  # pragma: no cover - the backend's equality matched the signed values
            found.append((record.scopes, record.expires_at))
        grants: Grants = tuple(found)
        if use_cache:
            cache.put_grants(key, grants, generation)
        return covered(wanted, grants, now)

    async def get(self, id: str) -> ConsentRecord | None:
        """One verified record by id (revoked or expired included), or None."""
        row = await self._backend.consent(id)
        return self._verified_consent(row) if row is not None else None

    async def inspect(self, id: str) -> ConsentRecord | VerificationFailure | None:
        """One record by id with its verification status, for operators (``GET
        /admin/consents/{id}``): the verified record, why its row is not honoured (a
        tamper event, as for every read), or None when no row has that id."""
        row = await self._backend.consent(id)
        if row is None:
            return None
        failures: builtins.list[VerificationFailure] = []
        record = self._verified_consent(row, failures)
        return record if record is not None else failures[0]

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
        """Revoke unrevoked records matching exactly one selector; returns how many.

        ``owner``, when given, narrows any selector to the records of that subject:
        the self-service page revokes ``id=X, owner=<this browser>``, so a person can
        never revoke (or learn of) another browser's approval by guessing an id.
        ``by`` names who revoked (``cli``, ``admin``, ``self``, ``library``) for the
        audit trail, and ``request_id`` the HTTP request that asked
        (the admin API's and the approvals page's answers carry it in ``X-Request-Id``),
        so an operator can tie the audit row to the access line and the caller's logs.

        Each revoked row gets ``revoked_at`` and is re-signed with the active key.
        A row that fails verification is not touched (re-signing it would
        launder the edit); it stays absent and is reported as a tamper event.
        Work goes in transactions of 500 rows so a huge revocation never holds
        the write lock for long.
        """
        named: tuple[tuple[RevokeSelector, str | None], ...] = (
            ("id", id),
            ("client_id", client_id),
            ("redirect_uri", redirect_uri),
            ("subject", subject),
        )
        chosen: builtins.list[tuple[RevokeSelector, str | None]] = [
            (name, value) for name, value in named if value is not None
        ]
        if all:
            chosen.append(("all", None))
        if len(chosen) != 1:
            raise ValueError(
                "revoke needs exactly one of id, client_id, redirect_uri, subject, all"
            )
        selector, value = chosen[0]
        if value is not None:
            check_text(selector, value)
        ring = self._keyring
        total = 0
        cursor: Cursor | None = None
        # In the audit row: every record the selector matched that was granted before
        # this moment is revoked by now (the cross-check of restored_revocations).
        started = int(self.clock())
        while True:

            async def batch(
                tx: StoreTransaction, after: Cursor | None = cursor
            ) -> tuple[int, Cursor | None]:
                rows, following = await tx.unrevoked_consents(
                    selector, value, after=after, limit=_PAGE
                )
                now = int(self.clock())
                signed: builtins.list[Resigned] = []
                for row in rows:
                    record = self._verified_consent(row)
                    if record is None or (owner is not None and record.subject != owner):
                        continue
                    revoked = sign_record(dataclasses.replace(record, revoked_at=now), ring)
                    signed.append((record.id, revoked.key_id, revoked.signature))
                if signed:
                    await self._keep_key(tx, ring)
                    await tx.revoke_consents(now, signed)
                return len(signed), following

            count, cursor = await self._backend.transaction(batch, durable=True)
            total += count
            if count:
                self._kept(ring)
                self._invalidate()
            if cursor is None:
                break
        self.audit.emit(
            ConsentsRevoked(
                request_id=request_id,
                selector=selector,
                value=value,
                count=total,
                by=by,
                started_at=started,
                subject=owner,
            )
        )
        return total

    async def iter_records(
        self,
        *,
        client_id: str | None = None,
        redirect_uri: str | None = None,
        subject: str | None = None,
        include_revoked: bool = True,
        include_expired: bool = True,
        failures: builtins.list[VerificationFailure] | None = None,
    ) -> AsyncIterator[ConsentRecord]:
        """Verified records matching every given filter, oldest first, page by page.

        Rows that fail verification are skipped, counted as tamper events and,
        when ``failures`` is a list, appended to it.
        """
        now = self.clock()
        page = functools.partial(
            self._backend.consent_page,
            limit=_PAGE,
            client_id=client_id,
            redirect_uri=redirect_uri,
            subject=subject,
            unrevoked_only=not include_revoked,
            unexpired_at=None if include_expired else int(now),
        )
        async for row in _rows(page):
            record = self._verified_consent(row, failures)
            if record is None:
                continue
            if not include_expired and record.status(now) == "expired":
                continue
            yield record

    async def page_records(
        self,
        *,
        client_id: str | None = None,
        redirect_uri: str | None = None,
        subject: str | None = None,
        active_only: bool = False,
        cursor: str | None,
        limit: int,
        failures: builtins.list[VerificationFailure] | None = None,
    ) -> tuple[builtins.list[ConsentRecord], str | None]:
        """One page of :meth:`iter_records` for a caller that pages across requests
        (the admin API): at most ``limit`` verified records after ``cursor``, and the
        opaque cursor of the next page, None on the last.

        The cursor is the backend's position, made opaque by
        :mod:`consentgate.core.paging`; a malformed one is a ValueError. With
        ``active_only`` (unrevoked and unexpired) and when rows fail verification, a
        page may hold fewer than ``limit`` records while a next one exists: the cursor,
        not the page's length, says whether there is more.
        """
        if not 1 <= limit <= 10 * _PAGE:
            raise ValueError(f"limit must be between 1 and {10 * _PAGE}, got {limit!r}")
        now = self.clock()
        rows, following = await self._backend.consent_page(
            after=self._position("consents", cursor),
            limit=limit,
            client_id=client_id,
            redirect_uri=redirect_uri,
            subject=subject,
            unrevoked_only=active_only,
            unexpired_at=int(now) if active_only else None,
        )
        records = [
            record
            for record in (self._verified_consent(row, failures) for row in rows)
            if record is not None and (not active_only or record.is_active(now))
        ]
        return records, self._next_cursor("consents", following)

    async def page_clients(
        self,
        *,
        cursor: str | None,
        limit: int,
        failures: builtins.list[VerificationFailure] | None = None,
    ) -> tuple[builtins.list[ClientRecord], str | None]:
        """One page of :meth:`iter_clients`, paged like :meth:`page_records`."""
        if not 1 <= limit <= 10 * _PAGE:
            raise ValueError(f"limit must be between 1 and {10 * _PAGE}, got {limit!r}")
        rows, following = await self._backend.client_page(
            after=self._position("clients", cursor), limit=limit
        )
        records = [
            record
            for record in (self._verified_client(row, failures) for row in rows)
            if record is not None
        ]
        return records, self._next_cursor("clients", following)

    @staticmethod
    def _position(listing: Listing, cursor: str | None) -> Cursor | None:
        return None if cursor is None else decode_cursor(listing, cursor)

    @staticmethod
    def _next_cursor(listing: Listing, following: Cursor | None) -> str | None:
        if following is None:
            return None
        if not isinstance(following, int) or isinstance(following, bool):  # pragma: no cover
            raise TypeError(f"a backend cursor that is not an integer: {following!r}")
        return encode_cursor(listing, following)

    async def list(
        self,
        *,
        client_id: str | None = None,
        redirect_uri: str | None = None,
        subject: str | None = None,
        include_revoked: bool = True,
        include_expired: bool = True,
    ) -> builtins.list[ConsentRecord]:
        """Verified records matching every given filter (see :meth:`iter_records`).

        Rows that fail verification are not listed; :meth:`verify_all` names them.
        """
        return [
            record
            async for record in self.iter_records(
                client_id=client_id,
                redirect_uri=redirect_uri,
                subject=subject,
                include_revoked=include_revoked,
                include_expired=include_expired,
            )
        ]

    async def verify_all(self) -> VerificationReport:
        """Check the signature of every consent, client and pending row; report failures."""
        failures: builtins.list[VerificationFailure] = []
        checked = 0
        backend = self._backend
        verifiers: tuple[tuple[Callable[..., Awaitable[Page]], Callable[..., object]], ...] = (
            (backend.consent_page, self._verified_consent),
            (backend.client_page, self._verified_client),
            (backend.pending_page, self._verified_pending),
        )
        for pages, verify in verifiers:
            async for row in _rows(functools.partial(pages, limit=_PAGE)):
                checked += 1
                verify(row, failures)
        return VerificationReport(checked, tuple(failures))

    async def restored_revocations(self) -> builtins.list[tuple[ConsentRecord, int]]:
        """Unrevoked records that a signed ``revoked`` audit row covers, each with when
        that revocation started: the row was put back from a copy made before it was
        revoked (its signature verifies: it is an older signed version of itself).

        The lookup cannot tell (a separate revocation mark in the same database could
        be deleted with the same access); ``consents verify`` reports them. Audit rows
        that fail their signature are not trusted here (``audit verify`` names them);
        revocations older than the audit retention (``[audit] keep``) are not seen.
        """
        revocations = Revocations()
        async for row in self.iter_audit(event="revoked"):
            if row.signature_failure(self._keyring) is None:
                revocations.add(row)
        if not len(revocations):
            return []
        found: builtins.list[tuple[ConsentRecord, int]] = []
        async for record in self.iter_records(include_revoked=False):
            when = revocations.covering(
                id=record.id,
                client_id=record.client_id,
                redirect_uri=record.redirect_uri,
                subject=record.subject,
                granted_at=record.granted_at,
            )
            if when is not None:
                found.append((record, when))
        return found

    # --- the audit table ------------------------------------------------------------

    def _audit_sink(self, event: AuditEvent) -> None:
        """Queue the table's row of ``event`` (a store that cannot sign keeps none: a
        verifying-only CLI run, whose own events are on its output)."""
        if self._keyring.can_sign:
            self._audit_writer.sink(event)

    async def _append_audit(self, entries: Sequence[AuditEntry]) -> None:
        """Append ``entries`` to the chain in one durable transaction, and sign its head."""
        ring = self._keyring

        async def append(tx: StoreTransaction) -> tuple[int, str]:
            tail = await tx.audit_tail()
            seq, prev = tail if tail is not None else (0, GENESIS)
            await self._keep_key(tx, ring)
            rows = []
            for entry in entries:
                seq += 1
                record = AuditRecord.chain(entry, seq, prev, ring)
                rows.append(record.to_row())
                prev = record.hash
            await tx.insert_audit(rows)
            await tx.put_setting(HEAD_SETTING, head_value(seq, prev, ring))
            return seq, prev

        seq, digest = await self._backend.transaction(append, durable=True)
        self._kept(ring)
        if self._mark is not None:
            self._mark.noted(seq, digest)

    async def flush_audit(self) -> None:
        """Wait until every audit row queued so far is in the table."""
        await self._audit_writer.flush()

    async def audit_page(
        self,
        *,
        after: Cursor | None = None,
        limit: int = _PAGE,
        since: int | None = None,
        event: str | None = None,
        client_id: str | None = None,
    ) -> tuple[builtins.list[AuditRecord], Cursor | None]:
        """One page of audit rows, oldest first, matching every given filter; rows
        that cannot be read are skipped here (:meth:`verify_audit` names them)."""
        rows, following = await self._backend.audit_page(
            after=after, limit=limit, since=since, event=event, client_id=client_id
        )
        records: builtins.list[AuditRecord] = []
        for row in rows:
            with contextlib.suppress(MalformedAuditRow):
                records.append(AuditRecord.from_row(row))
        return records, following

    async def page_audit(
        self,
        *,
        since: int | None = None,
        event: str | None = None,
        client_id: str | None = None,
        cursor: str | None,
        limit: int,
    ) -> tuple[builtins.list[AuditRecord], str | None]:
        """:meth:`audit_page` for a caller that pages across requests (the admin API):
        the cursor is opaque (:mod:`consentgate.core.paging`); a malformed one is a
        ValueError."""
        if not 1 <= limit <= 10 * _PAGE:
            raise ValueError(f"limit must be between 1 and {10 * _PAGE}, got {limit!r}")
        records, following = await self.audit_page(
            after=self._position("audit", cursor),
            limit=limit,
            since=since,
            event=event,
            client_id=client_id,
        )
        return records, self._next_cursor("audit", following)

    async def iter_audit(
        self, *, since: int | None = None, event: str | None = None, client_id: str | None = None
    ) -> AsyncIterator[AuditRecord]:
        """Every audit row matching the filters, oldest first, page by page."""
        cursor: Cursor | None = None
        while True:
            records, cursor = await self.audit_page(
                after=cursor, since=since, event=event, client_id=client_id
            )
            for record in records:
                yield record
            if cursor is None:
                return

    async def verify_audit(self) -> ChainReport:
        """Check the whole chain, oldest row first: each row's hash and signature, that
        it follows the row before it, where it starts (the last retention checkpoint)
        and that the signed head names its last row. Names the first broken row."""
        await self._audit_writer.flush()
        check = ChainCheck(self._keyring)
        async for row in _rows(functools.partial(self._backend.audit_page, limit=_PAGE)):
            check.add(row)
        head = (await self._backend.settings(HEAD_SETTING)).get(HEAD_SETTING)
        return check.finish(head)

    async def purge_audit(self, keep: float) -> int:
        """Delete audit rows older than ``keep`` seconds (``[audit] keep``), keeping at
        least the newest, and append an ``audit_purged`` row naming the first row kept,
        so the remaining chain verifies from there; returns how many rows went."""
        if not keep >= 1:
            raise ValueError(f"keep must be at least one second, got {keep!r}")
        ring = self._keyring
        now = int(self.clock())

        async def purge(tx: StoreTransaction) -> tuple[int, AuditRecord | None]:
            kept = await tx.audit_first_kept(now - int(keep))
            if kept is None or kept[2] == 0:
                return 0, None
            first_seq, first_prev, _older = kept
            deleted = await tx.delete_audit_before(first_seq)
            tail = await tx.audit_tail()
            assert tail is not None  # noqa: S101 - the newest row is always kept
            await self._keep_key(tx, ring)
            record = AuditRecord.chain(
                AuditEntry(
                    now,
                    "audit_purged",
                    actor="gate",
                    detail={
                        "deleted": deleted,
                        "first_kept_seq": first_seq,
                        "first_kept_prev": first_prev,
                        "keep_seconds": int(keep),
                    },
                ),
                tail[0] + 1,
                tail[1],
                ring,
            )
            await tx.insert_audit([record.to_row()])
            await tx.put_setting(HEAD_SETTING, head_value(record.seq, record.hash, ring))
            return deleted, record

        deleted, appended = await self._backend.transaction(purge, durable=True)
        self._kept(ring)
        if appended is not None and self._mark is not None:
            self._mark.noted(appended.seq, appended.hash)
        return deleted

    async def keep_audit_mark(self, keys_dir: Path) -> str | None:
        """Keep the trail's high-water mark in ``keys_dir`` from now on (the gate, and
        the CLI's commands that write; :mod:`consentgate.store.auditmark`), and return
        why the trail is behind the mark found there (None: it is not).

        Without a mark yet (a new keys directory, or a store older than the mark), the
        trail's newest row is recorded now."""
        found = read_mark(keys_dir)
        if isinstance(found, str):
            self._mark_unreadable = found
            return found
        self._mark = MarkKeeper(keys_dir, found, self._mark_problem, self.clock)
        if found is not None:
            return await self._mark_problem(found)

        async def tail(tx: StoreTransaction) -> tuple[int, str] | None:
            return await tx.audit_tail()

        newest = await self._backend.transaction(tail)
        if newest is not None:
            self._mark.noted(*newest)
        return None

    async def flush_audit_mark(self) -> None:
        """Write the mark for every row appended so far now (tests; the gate waits for
        the interval or the close)."""
        await self._audit_writer.flush()
        if self._mark is not None:
            await self._mark.flush()

    async def audit_mark_problem(self, mark: AuditMark | None = None) -> str | None:
        """Why the trail is behind ``mark`` (by default the one this store keeps), or
        None: two small reads (the row at the mark, and the oldest row when that one
        is not there). The verify commands pass the mark they read themselves."""
        if mark is None:
            if self._mark_unreadable is not None:
                return self._mark_unreadable
            mark = None if self._mark is None else self._mark.mark
            if mark is None:
                return None
        return await self._mark_problem(mark)

    async def audit_trail_problem(self) -> str | None:
        """:meth:`audit_mark_problem` for readiness, kept :data:`HEALTH_INTERVAL` seconds."""
        checked = self._mark_checked
        if checked is not None and time.monotonic() - checked[0] < HEALTH_INTERVAL:
            return checked[1]
        problem = await self.audit_mark_problem()
        self._mark_checked = (time.monotonic(), problem)
        return problem

    async def _mark_problem(self, mark: AuditMark) -> str | None:
        rows, _ = await self._backend.audit_page(after=mark.seq - 1, limit=1)
        found: AuditRecord | None = None
        if rows:
            try:
                found = AuditRecord.from_row(rows[0])
            except MalformedAuditRow:
                return f"the audit row at or after row {mark.seq} is malformed"
        first_seq: int | None = None
        if found is None:
            oldest, _ = await self._backend.audit_page(after=None, limit=1)
            first_seq = oldest[0][0] if oldest and isinstance(oldest[0][0], int) else None
        return mark_problem(mark, found, first_seq)

    def key_rotated(self, previous: str, active: str, *, by: RevokedBy = "cli") -> None:
        """Audit a key rotation (``consentgate keys rotate``): the log line and the
        table's ``key_rotated`` row (written at the latest when the store closes)."""
        self.audit.emit(KeyRotated(previous_key=previous, active_key=active, by=by))

    # --- clients -----------------------------------------------------------------

    async def upsert_client(self, metadata: Mapping[str, Any]) -> ClientRecord:
        """Store a client from its parsed registration RESPONSE (RFC 7591 §3.2.1).

        ``client_secret`` and ``registration_access_token`` are removed before
        anything is stored. On an update the first ``registered_at`` is kept if
        the existing row verifies.
        """
        unsigned = ClientRecord.from_registration(metadata, int(self.clock()))
        ring = self._keyring

        async def upsert(tx: StoreTransaction) -> tuple[ClientRecord, int, int]:
            before = await tx.change_counter()
            await self._keep_key(tx, ring)
            row = await tx.client(unsigned.client_id)
            base = unsigned
            if row is not None:
                existing = self._verified_client(row)
                if existing is not None:
                    base = dataclasses.replace(unsigned, registered_at=existing.registered_at)
            record = sign_record(base, ring)
            await tx.put_client(record.to_row())
            return record, before, await tx.change_counter()

        record, before, after = await self._backend.transaction(upsert)
        self._kept(ring)
        self._invalidate_after_own_write(before, after, client_id=record.client_id)
        return record

    async def get_client(self, client_id: str) -> ClientRecord | None:
        """The verified client registration, or None (unknown, or failed verification).

        Answers are cached like :meth:`is_approved`'s, and dropped whenever any
        client or consent row changes in any process: the gate looks its client up
        on every authorization, and an Ed25519 verification per request is not free.
        """
        cache = self._cache
        use_cache = cache.enabled and cache.observe(self._current_counter())
        if use_cache:
            cached = cache.client(client_id)
            if cached is not MISSING:
                return cached
        generation = cache.generation
        row = await self._backend.client(client_id)
        record = self._verified_client(row) if row is not None else None
        if use_cache:
            cache.put_client(client_id, record, generation)
        return record

    async def iter_clients(
        self, *, failures: builtins.list[VerificationFailure] | None = None
    ) -> AsyncIterator[ClientRecord]:
        """Every verified client registration, oldest first."""
        async for row in _rows(functools.partial(self._backend.client_page, limit=_PAGE)):
            record = self._verified_client(row, failures)
            if record is not None:
                yield record

    # --- pending consent pages and flow bindings ---------------------------------

    async def count_pending(self) -> int:
        """Unexpired pending rows an older version left behind (the
        ``consentgate_pending_pages`` gauge), for tests and operators."""
        return await self._backend.count_pending(int(self.clock()))

    async def use_page(self, pending_id: str, expires_at: int) -> bool:
        """Mark the sealed consent page ``pending_id`` answered; False when it already was.

        The page itself travels sealed in its form (:mod:`consentgate.core.pending`),
        so nothing is stored while it is shown and a flood of pages spends no store
        budget; only its answer leaves a mark, kept until the page has expired,
        so one page is answered once by any gate sharing the store (a replayed or
        doubled answer is refused). One insert-if-absent, atomic, in the table of used
        flow bindings under a key no binding can have.
        """
        mark_expires_at = int(expires_at) + PAGE_MARK_MARGIN
        return await self._backend.use_binding(_page_mark(pending_id), mark_expires_at)

    async def use_binding(self, key: str, expires_at: int) -> bool:
        """Mark the flow binding ``key`` used; False when it already was.

        The binding itself travels in a MAC-protected cookie (it proves the browser,
        the state and when it was issued); the store only remembers which bindings
        were used, until ``expires_at``, so a callback cannot be replayed — by this
        gate or by another process sharing the database. One insert-if-absent, atomic.
        """
        check_text("key", key)
        return await self._backend.use_binding(key, int(expires_at))

    async def purge_expired(self, *, keep_records: float | None = None) -> int:
        """Delete expired pending rows and used-binding marks; returns how many rows went.

        With ``keep_records`` (seconds), consent records that expired or were revoked
        longer ago than that are deleted too (``[store] keep_expired``): until then they
        are the trail of who approved what; after it they only grow the file.
        Each deletion of records is one audit line.
        """
        now = int(self.clock())
        cutoff = None if keep_records is None else now - int(keep_records)
        transient, records = await self._backend.purge(now, records_before=cutoff)
        if records:
            self._invalidate()
            self.audit.emit(ConsentsPurged(count=records, keep_seconds=int(keep_records or 0)))
        return transient + records
