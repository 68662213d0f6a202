"""Consent records: recording an approval, answering the question the store exists
for, revoking, listing.

Decisions and their sources (docs/references.md):

* Consent is keyed on the exact redirect_uri as well as the client_id: behind a
  single-client proxy the redirect_uri is the only per-client identity (MCP
  2025-11-25, "Confused Deputy Problem"; RFC 9700 exact redirect matching).
* Verification happens between the backend's reads and writes of one transaction
  where a write depends on what was read (refreshing an approval, revoking): a row
  that fails is never re-signed, which would launder the edit.
* Verified answers are cached; the cache asks the backend's change counter before
  each cached answer, synchronously (:mod:`consentgate.store.cache`).
"""

from __future__ import annotations

import builtins
import dataclasses
import functools
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass

from consentgate.audit.chain import Revocations
from consentgate.audit.decisions import ConsentRecorded, ConsentRefreshed, ConsentsRevoked
from consentgate.core.oauth.authorization_requests import ApprovalKey, ConsentQuestion
from consentgate.core.signed.records import (
    MAX_CLIENT_ID_LENGTH,
    MAX_SCOPE_LENGTH,
    MAX_SUBJECT_LENGTH,
    MAX_URI_LENGTH,
    ConsentRecord,
    RevokeSelector,
    check_length,
    check_text,
    scope_set,
    sign_record,
)
from consentgate.store.cache import Grants, covered
from consentgate.store.parts.audit_chain import AuditChain, RevokedBy
from consentgate.store.parts.context import StoreContext
from consentgate.store.parts.listing import PAGE, check_limit, every_row, next_cursor, position
from consentgate.store.parts.publication import Publication
from consentgate.store.parts.verifier import Failures, VerificationFailure, Verifier
from consentgate.store.protocol import Cursor, Resigned, StoreTransaction

#: Uses up a consent page inside the approval's transaction (False: used already).
Claim = Callable[[StoreTransaction], Awaitable[bool]]
_Upserted = tuple[ConsentRecord, bool, int, int]


def new_record_id() -> str:
    """128 random bits, base64url, never starting with ``-``: an id is typed on the
    command line (``consents revoke --id X``), where a leading dash reads as an option."""
    while True:
        ident = secrets.token_urlsafe(16)
        if not ident.startswith("-"):
            return ident


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


#: The selectors of a revocation, in the order :meth:`Consents.revoke` takes them.
_SELECTORS: tuple[RevokeSelector, ...] = ("id", "client_id", "redirect_uri", "subject")


def _selector(
    named: tuple[str | None, str | None, str | None, str | None], all: bool
) -> tuple[RevokeSelector, str | None]:
    chosen: list[tuple[RevokeSelector, str | None]] = [
        (name, value) for name, value in zip(_SELECTORS, named, strict=True) if value is not None
    ]
    if all:
        chosen.append(("all", None))
    if len(chosen) != 1:
        raise ValueError("revoke needs exactly one of id, client_id, redirect_uri, subject, all")
    selector, value = chosen[0]
    if value is not None:
        check_text(selector, value)
    return selector, value


@dataclass(frozen=True, slots=True)
class ConsentFilter:
    """Which records a listing selects: equality on each column given (None: any)."""

    client_id: str | None = None
    redirect_uri: str | None = None
    subject: str | None = None


class Consents:
    """The consents table, through the verifier, the key publication and the cache."""

    __slots__ = ("_ctx", "_publication", "_verifier")

    def __init__(self, ctx: StoreContext, verifier: Verifier, publication: Publication) -> None:
        self._ctx = ctx
        self._verifier = verifier
        self._publication = publication

    async def record(
        self,
        subject: str,
        client_id: str,
        redirect_uri: str,
        scopes: Iterable[str],
        resource: str,
        *,
        ttl: float,
        claim: Claim | None,
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
        ctx = self._ctx
        key = ApprovalKey(subject, client_id, redirect_uri, resource)
        now = ctx.now()
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
        ring = ctx.keyring

        async def upsert(tx: StoreTransaction) -> _Upserted | None:
            """Refresh an identical active approval, else insert a new record: the same
            person approving the same thing again must not add a row each time. With
            ``claim``, first use up the page answered (None: it was used already)."""
            if claim is not None and not await claim(tx):
                return None
            before = await tx.change_counter()
            await self._publication.keep_key(tx, ring)
            for row in await tx.active_consents(key, now):
                existing = self._verifier.consent(row)
                if existing is None or existing.scopes != granted:
                    continue
                expires_at = max(unsigned.expires_at, existing.expires_at)
                refreshed = sign_record(dataclasses.replace(existing, expires_at=expires_at), ring)
                await tx.refresh_consent(
                    existing.id, refreshed.expires_at, refreshed.key_id, refreshed.signature
                )
                return refreshed, True, before, await tx.change_counter()
            record = sign_record(unsigned, ring)
            await tx.insert_consent(record.to_row())
            return record, False, before, await tx.change_counter()

        # Durable: the person is told 'remembered' only once it is on disk.
        done = await ctx.backend.transaction(upsert, durable=True)
        if done is None:
            return None
        record, refreshed, before, after = done
        self._publication.kept(ring)
        ctx.cache.after_own_write(before, after, key=key)
        ctx.audit.emit(
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

    async def answer(self, question: ConsentQuestion) -> bool:
        """:meth:`is_approved` of one :class:`ConsentQuestion`."""
        return await self.is_approved(question.key, question.scopes)

    async def is_approved(self, key: ApprovalKey, scopes: Iterable[str]) -> bool:
        """Whether a verified, unrevoked, unexpired record of ``key`` covers ``scopes``.

        A request without any scope is covered only by an approval that had none
        either: what "no scope" means is the upstream's choice (often its default or
        every registered scope), so an approval of ``read`` must not silently cover it.
        """
        if isinstance(scopes, str | bytes):
            raise TypeError("scopes must be a collection of strings, not a single string")
        wanted = frozenset(scopes)
        ctx = self._ctx
        now = ctx.clock()
        cache = ctx.cache
        # Did any consent or client row change since the cache was filled, in any
        # process? The backend answers synchronously from a local check when nothing
        # did (no await on the hot path); None ("cannot tell") bypasses the cache.
        use_cache = ctx.use_cache()
        if use_cache:
            cached = cache.grants(key)
            if cached is not None:
                return covered(wanted, cached, now)
        if not _storable(*key):
            return False
        generation = cache.generation
        rows = await ctx.backend.active_consents(key, int(now))
        found: builtins.list[tuple[frozenset[str], int]] = []
        for row in rows:
            record = self._verifier.consent(row)
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
        row = await self._ctx.backend.consent(id)
        return self._verifier.consent(row) if row is not None else None

    async def inspect(self, id: str) -> ConsentRecord | VerificationFailure | None:
        """One record by id with its verification status, or None."""
        row = await self._ctx.backend.consent(id)
        if row is None:
            return None
        failures: Failures = []
        record = self._verifier.consent(row, failures)
        return record if record is not None else failures[0]

    async def revoke(
        self,
        named: tuple[str | None, str | None, str | None, str | None],
        *,
        all: bool,
        owner: str | None,
        by: RevokedBy,
        request_id: str,
    ) -> int:
        """Revoke unrevoked records matching exactly one selector; returns how many.

        ``owner``, when given, narrows any selector to the records of that subject:
        the self-service page revokes ``id=X, owner=<this browser>``, so a person can
        never revoke (or learn of) another browser's approval by guessing an id.
        ``by`` names who revoked (``cli``, ``admin``, ``self``, ``library``) for the
        audit trail, and ``request_id`` the HTTP request that asked, so an operator
        can tie the audit row to the access line and the caller's logs.

        Each revoked row gets ``revoked_at`` and is re-signed with the active key. A
        row that fails verification is not touched (re-signing it would launder the
        edit); it stays absent and is reported as a tamper event. Work goes in
        transactions of :data:`~consentgate.store.parts.listing.PAGE` rows so a huge
        revocation never holds the write lock for long."""
        selector, value = _selector(named, all)
        ctx = self._ctx
        ring = ctx.keyring
        total = 0
        cursor: Cursor | None = None
        # In the audit row: every record the selector matched that was granted before
        # this moment is revoked by now (the cross-check of restored_revocations).
        started = ctx.now()
        while True:

            async def batch(
                tx: StoreTransaction, after: Cursor | None = cursor
            ) -> tuple[int, Cursor | None]:
                rows, following = await tx.unrevoked_consents(
                    selector, value, after=after, limit=PAGE
                )
                now = ctx.now()
                signed: builtins.list[Resigned] = []
                for row in rows:
                    record = self._verifier.consent(row)
                    if record is None or (owner is not None and record.subject != owner):
                        continue
                    revoked = sign_record(dataclasses.replace(record, revoked_at=now), ring)
                    signed.append((record.id, revoked.key_id, revoked.signature))
                if signed:
                    await self._publication.keep_key(tx, ring)
                    await tx.revoke_consents(now, signed)
                return len(signed), following

            count, cursor = await ctx.backend.transaction(batch, durable=True)
            total += count
            if count:
                self._publication.kept(ring)
                ctx.cache.clear()
            if cursor is None:
                break
        ctx.audit.emit(
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
        where: ConsentFilter,
        *,
        include_revoked: bool = True,
        include_expired: bool = True,
        failures: Failures | None = None,
    ) -> AsyncIterator[ConsentRecord]:
        """Verified records matching every given filter, oldest first, page by page."""
        now = self._ctx.clock()
        page = functools.partial(
            self._ctx.backend.consent_page,
            limit=PAGE,
            client_id=where.client_id,
            redirect_uri=where.redirect_uri,
            subject=where.subject,
            unrevoked_only=not include_revoked,
            unexpired_at=None if include_expired else int(now),
        )
        async for row in every_row(page):
            record = self._verifier.consent(row, failures)
            if record is None:
                continue
            if not include_expired and record.status(now) == "expired":
                continue
            yield record

    async def page_records(
        self,
        where: ConsentFilter,
        *,
        active_only: bool,
        cursor: str | None,
        limit: int,
        failures: Failures | None,
    ) -> tuple[builtins.list[ConsentRecord], str | None]:
        """One page of :meth:`iter_records` behind an opaque cursor.

        The cursor is the backend's position, made opaque by
        :mod:`consentgate.core.paging`; a malformed one is a ValueError. With
        ``active_only`` and when rows fail verification, a page may hold fewer than
        ``limit`` records while a next one exists: the cursor, not the page's length,
        says whether there is more."""
        check_limit(limit)
        now = self._ctx.clock()
        rows, following = await self._ctx.backend.consent_page(
            after=position("consents", cursor),
            limit=limit,
            client_id=where.client_id,
            redirect_uri=where.redirect_uri,
            subject=where.subject,
            unrevoked_only=active_only,
            unexpired_at=int(now) if active_only else None,
        )
        records = [
            record
            for record in (self._verifier.consent(row, failures) for row in rows)
            if record is not None and (not active_only or record.is_active(now))
        ]
        return records, next_cursor("consents", following)

    async def restored_revocations(
        self, trail: AuditChain
    ) -> builtins.list[tuple[ConsentRecord, int]]:
        """Unrevoked records that a signed ``revoked`` audit row covers, each with when
        that revocation started: the row was put back from a copy made before it was
        revoked (its signature verifies: it is an older signed version of itself).

        The lookup cannot tell (a separate revocation mark in the same database could
        be deleted with the same access); ``consents verify`` reports them. Audit rows
        that fail their signature are not trusted here (``audit verify`` names them);
        revocations older than the audit retention (``[audit] keep``) are not seen."""
        revocations = Revocations()
        async for row in trail.iter_audit(event="revoked"):
            if row.signature_failure(self._ctx.keyring) is None:
                revocations.add(row)
        if not len(revocations):
            return []
        found: builtins.list[tuple[ConsentRecord, int]] = []
        async for record in self.iter_records(ConsentFilter(), include_revoked=False):
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
