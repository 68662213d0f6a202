"""What a storage backend of the consent store implements: rows in, rows out, transactions.

The split (docs/store.md, "Backends"): :class:`~consentgate.store.facade.ConsentStore`
validates input, signs, verifies, emits audit events and keeps the decision cache; a
backend moves rows and owns transactions. A backend **never** signs, verifies, or
logs or emits audit events: it cannot, because it holds no key ring and no audit
trail, and an import-linter contract keeps it so. Whatever a backend hands back is
unverified, and the facade treats it as such (a row that fails its signature is a
tamper event, wherever it came from). Adding a backend (PostgreSQL with asyncpg) is
one new package implementing :class:`StoreBackend` and :class:`StoreTransaction`,
plus a fixture parameter in ``tests/store/conftest.py``.

Rows cross the boundary as plain sequences in the column order of
:mod:`consentgate.core.signed.records` (``CONSENT_COLUMNS``, ``CLIENT_COLUMNS``,
``PENDING_COLUMNS``): the facade builds them with ``to_row()`` and parses them with
``from_row()``, so the codec and the signed encoding live in one place, and a
backend stores each value as it is (text, integer, bytes, NULL) without
interpreting it.

Guarantees every backend gives, method by method below:

* **Atomicity.** Each method is all or nothing. :meth:`StoreBackend.transaction`
  runs a facade coroutine between the backend's reads and writes inside one
  transaction, so the facade can verify rows it read before it writes
  (read-then-write: refreshing an approval, revoking a page, keeping a client's
  first ``registered_at``).
* **Isolation of read-then-write.** A transaction takes the write lock before its
  first read (SQLite: ``BEGIN IMMEDIATE``; a server database: a serialisable
  transaction or row locks taken by the reads), so what it read is still true when
  it writes: two processes refreshing one approval never both insert.
* **Single-statement operations.** :meth:`StoreBackend.use_binding` is one atomic
  insert-if-absent: of any number of concurrent callers, in any number of
  processes, exactly one gets the True.
* **Cancellation.** A write that started runs to its commit or rollback even when
  the caller is cancelled (a client disconnect must not leave a transaction half
  done), and :meth:`StoreBackend.close` waits for writes in flight.
* **Cross-process change detection.** :meth:`StoreBackend.current_counter` tells
  the facade, synchronously and cheaply, whether any consent or client row changed
  since it last looked, in this process or another (the CLI revoking while the gate
  runs); the facade's cache trusts it and nothing else.
* **Closed means closed.** Every method but :meth:`StoreBackend.close` and
  :meth:`StoreBackend.current_counter` raises
  :class:`~consentgate.store.store_errors.StoreClosed` after close.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeAlias, TypeVar

from consentgate.core.oauth.authorization_requests import ApprovalKey
from consentgate.core.signed.records import RevokeSelector

T = TypeVar("T")

#: The settings row readiness writes to prove the store can still be written.
HEARTBEAT_SETTING = "heartbeat"

#: One stored row: values in the ``*_COLUMNS`` order of :mod:`consentgate.core.signed.records`.
Row: TypeAlias = Sequence[Any]
#: Where a page ended. Opaque: the facade only passes back what the backend returned
#: (SQLite: the last rowid; PostgreSQL: its own id column; a table without one, such
#: as the first sightings: its last text key). ``None`` asks for the start.
Cursor: TypeAlias = object
#: A page of rows, and the cursor of the next page, or None when this was the last.
Page: TypeAlias = tuple[list[Row], Cursor | None]
#: The lookup of the question the store answers: subject, client_id, redirect_uri,
#: resource (every one matched exactly, byte for byte).
#: Which unrevoked records :meth:`StoreTransaction.unrevoked_consents` selects; the
#: value is compared for equality with the column of that name (none for ``"all"``).
#: The new signature of a consent row: id, key_id, signature.
Resigned: TypeAlias = tuple[str, str, bytes]


class StoreTransaction(Protocol):
    """The operations of one write transaction (see :meth:`StoreBackend.transaction`).

    Valid only while the transaction's body runs; every method may be awaited any
    number of times, in any order. Reads see the transaction's own writes.
    """

    async def change_counter(self) -> int:
        """The change counter as this transaction sees it (see
        :meth:`StoreBackend.current_counter`). Read first, it is the state the
        transaction's reads see; read last, it includes the transaction's own writes.
        The facade reads it at both ends to tell its own write from anyone else's."""
        ...

    async def active_consents(self, key: ApprovalKey, now: int) -> list[Row]:
        """Consent rows whose four lookup columns equal ``key`` exactly, with
        ``expires_at > now`` and ``revoked_at`` NULL, in any order."""
        ...

    async def insert_consent(self, row: Row) -> None:
        """Insert one consent row (``CONSENT_COLUMNS`` order). Ids are random; a
        duplicate id is an error the backend may raise as it likes."""
        ...

    async def refresh_consent(
        self, id: str, expires_at: int, key_id: str, signature: bytes
    ) -> None:
        """Set ``expires_at``, ``key_id`` and ``signature`` of the consent row ``id``,
        only if it is still unrevoked (else change nothing)."""
        ...

    async def unrevoked_consents(
        self, selector: RevokeSelector, value: str | None, *, after: Cursor | None, limit: int
    ) -> Page:
        """At most ``limit`` unrevoked consent rows matching ``selector`` = ``value``
        (every unrevoked row for ``"all"``), in a stable order, starting after the
        cursor; the next cursor is None exactly when fewer than ``limit`` rows came."""
        ...

    async def revoke_consents(self, revoked_at: int, signed: Sequence[Resigned]) -> None:
        """For each ``(id, key_id, signature)``, set ``revoked_at``, ``key_id`` and
        ``signature`` of that consent row if it is still unrevoked."""
        ...

    async def client(self, client_id: str) -> Row | None:
        """The client row with this client_id (``CLIENT_COLUMNS`` order), or None."""
        ...

    async def put_client(self, row: Row) -> None:
        """Insert the client row, replacing any row with the same client_id."""
        ...

    async def claim_setting(self, name: str, value: str) -> str:
        """:meth:`StoreBackend.claim_setting` inside this transaction, so that what it
        keeps commits with the rows written beside it (a public key with the first
        record it signed)."""
        ...

    async def audit_tail(self) -> tuple[int, str] | None:
        """``seq`` and ``hash`` of the newest audit row, or None when there is none.

        Appending reads it and writes the next row in one transaction; the backend's
        write lock (SQLite: ``BEGIN IMMEDIATE``; PostgreSQL: the change counter's row
        lock every transaction takes first) makes appenders of every process take
        turns, so the chain never forks."""
        ...

    async def insert_audit(self, rows: Sequence[Row]) -> None:
        """Insert audit rows (``AUDIT_COLUMNS`` order of :mod:`consentgate.audit.trail`)."""
        ...

    async def audit_first_kept(self, before: int) -> tuple[int, str, int] | None:
        """Where a retention purge of the rows with ``at < before`` leaves the chain:
        ``seq`` and ``prev`` of the oldest row it keeps (the newest row is always kept)
        and how many rows come before it; None when the table is empty."""
        ...

    async def delete_audit_before(self, seq: int) -> int:
        """Delete the audit rows with ``seq`` below ``seq``; returns how many."""
        ...

    async def put_setting(self, name: str, value: str) -> None:
        """:meth:`StoreBackend.set_setting` inside this transaction."""
        ...

    async def use_binding(self, key: str, expires_at: int) -> bool:
        """:meth:`StoreBackend.use_binding` inside this transaction: a consent answer
        marks its page used and records the approval in one commit."""
        ...


class StoreBackend(Protocol):
    """A place that keeps consent, client, pending and used-binding rows.

    Built and opened by the backend's own constructor (schema creation and
    migration are the backend's), then handed to
    :class:`~consentgate.store.facade.ConsentStore`, which owns it from then on and
    closes it. All coroutines may be called concurrently from one event loop.
    """

    @property
    def path(self) -> Path | None:
        """The database file of a backend that keeps one (SQLite), else None. For
        messages and tests only; the facade never opens it."""
        ...

    def current_counter(self) -> int | None:
        """A number that grows with every committed change to a consent or client
        row, by any connection of any process (and not with pending or binding rows,
        so the gate's own short-lived rows do not empty the cache); the same number
        :meth:`StoreTransaction.change_counter` reads.

        Synchronous and cheap: it runs before every cached answer, on the hot path
        of each authorization. When nothing changed it must not do I/O beyond a
        local check of a few microseconds (SQLite: ``PRAGMA data_version`` on a
        second connection; PostgreSQL: the value last delivered by LISTEN/NOTIFY).
        Every change committed before the call must be reflected; a backend that
        learns of changes asynchronously must document its delay. Returns None for
        "cannot tell" (an error, a lost listener connection, a closed backend): the
        facade then empties its cache and answers from the database.
        """
        ...

    async def transaction(
        self, body: Callable[[StoreTransaction], Awaitable[T]], *, durable: bool = False
    ) -> T:
        """Run ``body`` in one write transaction and return its result.

        ``durable``: the commit returns only once it is on disk, so that what a person
        was told (an approval remembered, a revocation done) survives a power cut or
        a failing disk; other writes may be cheaper.

        The write lock is taken before ``body``'s first read; the transaction
        commits when ``body`` returns and rolls back when it raises (the exception
        propagates). It is shielded: once started it completes even if the caller
        is cancelled, and :meth:`close` waits for it. ``body`` is the facade's
        (it verifies and signs between the reads and writes); it must not await
        another operation of this backend, which would wait for itself.
        """
        ...

    async def active_consents(self, key: ApprovalKey, now: int) -> list[Row]:
        """:meth:`StoreTransaction.active_consents` outside a write transaction: the
        read behind every uncached answer; it must use an index, not a scan."""
        ...

    async def consent(self, id: str) -> Row | None:
        """The consent row with this id, revoked or expired ones included, or None."""
        ...

    async def consent_page(
        self,
        *,
        after: Cursor | None,
        limit: int,
        client_id: str | None = None,
        redirect_uri: str | None = None,
        subject: str | None = None,
        unrevoked_only: bool = False,
        unexpired_at: int | None = None,
    ) -> Page:
        """At most ``limit`` consent rows matching every given filter (equality for
        the three columns, ``revoked_at`` NULL with ``unrevoked_only``,
        ``expires_at > unexpired_at``), oldest first, starting after the cursor; the
        next cursor is None exactly when fewer than ``limit`` rows came. Each page is
        its own read: a listing may see rows written between pages."""
        ...

    async def client(self, client_id: str) -> Row | None:
        """The client row with this client_id, or None."""
        ...

    async def client_page(self, *, after: Cursor | None, limit: int) -> Page:
        """Every client row, oldest first, page by page (as :meth:`consent_page`)."""
        ...

    async def pending_page(self, *, after: Cursor | None, limit: int) -> Page:
        """Every pending row, expired ones included, oldest first, page by page."""
        ...

    async def count_pending(self, now: int) -> int:
        """How many pending rows have ``expires_at > now``."""
        ...

    async def put_pending(self, row: Row) -> None:
        """Insert one pending row (``PENDING_COLUMNS`` order); ids are random digests."""
        ...

    async def take_pending(self, id: str, subject: str) -> Row | None:
        """Delete and return the pending row with this id and subject, or None. One
        atomic ``DELETE ... RETURNING``: of concurrent callers exactly one gets it."""
        ...

    async def use_binding(self, key: str, expires_at: int) -> bool:
        """Remember ``key`` as used until ``expires_at``; False when it already was.
        One atomic insert-if-absent (``INSERT ... ON CONFLICT DO NOTHING``): of
        concurrent callers in any process exactly one gets True."""
        ...

    async def claim_setting(self, name: str, value: str) -> str:
        """Store ``value`` under ``name`` unless a value is there already, and return
        the value stored: the first caller of any process wins, every later caller
        learns what it was (an insert-if-absent, then a read)."""
        ...

    async def set_setting(self, name: str, value: str) -> None:
        """Store ``value`` under ``name``, replacing any value (an operator's decision,
        such as adopting a new cookie secret on every instance)."""
        ...

    async def settings(self, prefix: str) -> dict[str, str]:
        """Every setting whose name starts with ``prefix`` (a plain prefix, no pattern
        characters), name -> value."""
        ...

    async def purge(self, now: int, *, records_before: int | None) -> tuple[int, int]:
        """In one transaction, delete pending rows and used-binding marks with
        ``expires_at <= now`` and, when ``records_before`` is given, consent rows
        revoked at or before it or expiring at or before it. Returns (pending and
        binding rows deleted, consent rows deleted)."""
        ...

    async def audit_page(
        self,
        *,
        after: Cursor | None,
        limit: int,
        since: int | None = None,
        event: str | None = None,
        client_id: str | None = None,
        request_id: str | None = None,
        subject: str | None = None,
    ) -> Page:
        """At most ``limit`` audit rows with ``seq`` after the cursor, oldest first,
        matching every given filter (``at >= since``, equality for ``event``,
        ``client_id``, ``request_id`` and ``subject``); paged as :meth:`consent_page`."""
        ...

    async def ping(self) -> None:
        """One trivial round trip to the database; raises when it fails."""
        ...

    async def heartbeat(self, value: str) -> None:
        """Write ``value`` to the :data:`HEARTBEAT_SETTING` row: readiness's proof that
        the store can still be written; raises :class:`StoreUnavailable` when not."""
        ...

    async def announce_gate(self, row: Row) -> None:
        """Insert or replace the row of one attached gate (``GATE_COLUMNS`` order of
        :mod:`consentgate.core.attached_gates`), keyed by its instance id."""
        ...

    async def leave_gate(self, instance: str) -> None:
        """Delete the row of the attached gate ``instance`` (none: nothing happens)."""
        ...

    async def forget_gates(self, seen_before: int) -> int:
        """Delete the rows of gates last seen before ``seen_before``; how many."""
        ...

    async def attached_gates(self) -> list[Row]:
        """Every attached gate's row, stale ones included, oldest start first."""
        ...

    async def sighting(self, client_id: str) -> Row | None:
        """The first-sighting row of ``client_id`` (``SIGHTING_COLUMNS`` order of
        :mod:`consentgate.core.signed.sightings`), or None."""
        ...

    async def sighting_page(self, *, after: Cursor | None, limit: int) -> Page:
        """Every first-sighting row, page by page (as :meth:`consent_page`), in the
        byte order of ``client_id``: the table has no position column, so the cursor
        is the last client_id of the page."""
        ...

    async def record_sighting(self, row: Row) -> bool:
        """Insert a first-sighting row unless ``client_id`` has one already (``INSERT
        ... ON CONFLICT DO NOTHING``: of concurrent callers in any process the first
        commit wins, and the row is never changed afterwards); True when this one was
        inserted. It moves no change counter (no cached answer depends on it)."""
        ...

    @property
    def schema_version(self) -> int:
        """The schema version this backend's code runs (what a gate announces)."""
        ...

    def check_identity(self) -> None:
        """Raise :class:`StoreUnavailable` (kind ``gone``) when the database this backend
        has open is no longer the configured one; cheap, and run on a timer."""
        ...

    async def close(self) -> None:
        """Wait for writes in flight, then release every connection. Idempotent, and
        shielded: a cancelled caller must not leave a connection (or a non-daemon
        worker thread) behind."""
        ...
