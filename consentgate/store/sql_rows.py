"""The row operations every SQL backend shares, over the statements of
:mod:`consentgate.store.sql_statements`: one implementation of
:class:`~consentgate.store.protocol.StoreTransaction` and of the row-moving half of
:class:`~consentgate.store.protocol.StoreBackend`.

A backend supplies the rest, which truly differs: its connections and how a
statement runs on them (a :class:`Runner`), its transactions and locking, its change
counter and notification, its migrations. It never signs, verifies or decides a
policy; the cut-offs it is handed (purge, retention) are computed above it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, TypeVar

from consentgate.core.oauth.authorization_requests import ApprovalKey
from consentgate.core.signed.records import RevokeSelector
from consentgate.store.protocol import HEARTBEAT_SETTING, Cursor, Page, Resigned, Row
from consentgate.store.sql_statements import Statements, cursor_position, text_position

T = TypeVar("T")


class Runner(Protocol):
    """Runs statements on one connection, inside whatever transaction it is in."""

    async def fetch(self, sql: str, params: Sequence[Any]) -> list[Row]:
        """The rows a statement returns, as tuples."""
        ...

    async def execute(self, sql: str, params: Sequence[Any]) -> int:
        """Run one statement; how many rows it changed."""
        ...

    async def executemany(self, sql: str, params: Sequence[Sequence[Any]]) -> None:
        """Run one statement once per parameter row."""
        ...


def page_of(rows: Sequence[Row], limit: int, key: Callable[[Any], Cursor] = int) -> Page:
    """Rows selected as ``position, columns...``: the columns, and the next cursor
    (``key`` of the last position: an integer, or the text of a text key)."""
    following = key(rows[-1][0]) if len(rows) >= limit else None
    return [tuple(row)[1:] for row in rows], following


class SqlTransaction:
    """:class:`~consentgate.store.protocol.StoreTransaction` over a :class:`Runner`.

    A backend subclasses it for :meth:`change_counter`, and may watch its own writes
    to the consent and client tables through :meth:`_wrote`."""

    __slots__ = ("_run", "_sql")

    def __init__(self, run: Runner, sql: Statements) -> None:
        self._run = run
        self._sql = sql

    def _wrote(self) -> None:
        """A consent or client row is about to be written (the counter will move)."""

    async def change_counter(self) -> int:
        raise NotImplementedError

    async def active_consents(self, key: ApprovalKey, now: int) -> list[Row]:
        if not self._sql.dialect.storable(*key):
            return []
        return await self._run.fetch(self._sql.lookup, (*key, now))

    async def insert_consent(self, row: Row) -> None:
        self._wrote()
        await self._run.execute(self._sql.insert_consent, tuple(row))

    async def refresh_consent(
        self, id: str, expires_at: int, key_id: str, signature: bytes
    ) -> None:
        self._wrote()
        await self._run.execute(self._sql.refresh_consent, (expires_at, key_id, signature, id))

    async def unrevoked_consents(
        self, selector: RevokeSelector, value: str | None, *, after: Cursor | None, limit: int
    ) -> Page:
        if not self._sql.dialect.storable(value):
            return [], None
        sql, params = self._sql.unrevoked(selector, value, after, limit)
        return page_of(await self._run.fetch(sql, params), limit)

    async def revoke_consents(self, revoked_at: int, signed: Sequence[Resigned]) -> None:
        if not signed:
            return
        self._wrote()
        if self._sql.dialect.array_revoke:
            ids, key_ids, signatures = zip(*signed, strict=True)
            params = (revoked_at, list(ids), list(key_ids), list(signatures))
            await self._run.execute(self._sql.revoke_array, params)
            return
        await self._run.executemany(
            self._sql.revoke_one,
            [(revoked_at, key_id, signature, id) for id, key_id, signature in signed],
        )

    async def client(self, client_id: str) -> Row | None:
        if not self._sql.dialect.storable(client_id):
            return None
        rows = await self._run.fetch(self._sql.client, (client_id,))
        return rows[0] if rows else None

    async def put_client(self, row: Row) -> None:
        self._wrote()
        await self._run.execute(self._sql.put_client, tuple(row))

    async def claim_setting(self, name: str, value: str) -> str:
        await self._run.execute(self._sql.claim_setting, (name, value))
        rows = await self._run.fetch(self._sql.read_setting, (name,))
        return str(rows[0][0])

    async def use_binding(self, key: str, expires_at: int) -> bool:
        if not self._sql.dialect.storable(key):
            return False
        return bool(await self._run.fetch(self._sql.use_binding, (key, expires_at)))

    async def audit_tail(self) -> tuple[int, str] | None:
        rows = await self._run.fetch(self._sql.audit_tail, ())
        return (int(rows[0][0]), str(rows[0][1])) if rows else None

    async def insert_audit(self, rows: Sequence[Row]) -> None:
        await self._run.executemany(self._sql.insert_audit, [tuple(row) for row in rows])

    async def audit_first_kept(self, before: int) -> tuple[int, str, int] | None:
        rows = await self._run.fetch(self._sql.audit_first_kept, (before,))
        if not rows:
            return None
        seq, prev = int(rows[0][0]), str(rows[0][1])
        count = await self._run.fetch(self._sql.audit_count_before, (seq,))
        return seq, prev, int(count[0][0] or 0)

    async def delete_audit_before(self, seq: int) -> int:
        return await self._run.execute(self._sql.delete_audit_before, (seq,))

    async def put_setting(self, name: str, value: str) -> None:
        await self._run.execute(self._sql.put_setting, (name, value))


class SqlRows:
    """The row-moving methods of a SQL backend, over four primitives it supplies:
    :meth:`_check_open`, :meth:`_read` (a query outside a write), :meth:`_write_one`
    (one statement, atomic on its own, shielded) and :meth:`_write_rows` (a body run
    in one write transaction, shielded)."""

    _sql: Statements

    def _check_open(self) -> None:
        raise NotImplementedError

    async def _read(self, sql: str, params: Sequence[Any]) -> list[Row]:
        raise NotImplementedError

    async def _write_one(self, sql: str, params: Sequence[Any]) -> list[Row]:
        raise NotImplementedError

    async def _write_rows(self, body: Callable[[Runner], Awaitable[T]]) -> T:
        raise NotImplementedError

    def _storable(self, *values: str | None) -> bool:
        self._check_open()
        return self._sql.dialect.storable(*values)

    async def active_consents(self, key: ApprovalKey, now: int) -> list[Row]:
        if not self._storable(*key):
            return []
        return await self._read(self._sql.lookup, (*key, now))

    async def consent(self, id: str) -> Row | None:
        if not self._storable(id):
            return None
        rows = await self._read(self._sql.consent, (id,))
        return rows[0] if rows else None

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
        if not self._storable(client_id, redirect_uri, subject):
            return [], None
        filters = (("client_id", client_id), ("redirect_uri", redirect_uri), ("subject", subject))
        sql, params = self._sql.consent_page(after, limit, filters, unrevoked_only, unexpired_at)
        return page_of(await self._read(sql, params), limit)

    async def client(self, client_id: str) -> Row | None:
        if not self._storable(client_id):
            return None
        rows = await self._read(self._sql.client, (client_id,))
        return rows[0] if rows else None

    async def client_page(self, *, after: Cursor | None, limit: int) -> Page:
        rows = await self._read(self._sql.client_page, (cursor_position(after), limit))
        return page_of(rows, limit)

    async def pending_page(self, *, after: Cursor | None, limit: int) -> Page:
        rows = await self._read(self._sql.pending_page, (cursor_position(after), limit))
        return page_of(rows, limit)

    async def put_pending(self, row: Row) -> None:
        await self._write_one(self._sql.insert_pending, tuple(row))

    async def take_pending(self, id: str, subject: str) -> Row | None:
        if not self._storable(id, subject):
            return None
        rows = await self._write_one(self._sql.take_pending, (id, subject))
        return rows[0] if rows else None

    async def count_pending(self, now: int) -> int:
        rows = await self._read(self._sql.count_pending, (now,))
        return int(rows[0][0])

    async def use_binding(self, key: str, expires_at: int) -> bool:
        return bool(await self._write_one(self._sql.use_binding, (key, expires_at)))

    async def claim_setting(self, name: str, value: str) -> str:
        # Two statements: a SELECT in the INSERT's own statement would read the snapshot
        # taken before a concurrent claim committed (PostgreSQL), and find nothing.
        await self._write_one(self._sql.claim_setting, (name, value))
        rows = await self._read(self._sql.read_setting, (name,))
        return str(rows[0][0])

    async def set_setting(self, name: str, value: str) -> None:
        await self._write_one(self._sql.put_setting, (name, value))

    async def settings(self, prefix: str) -> dict[str, str]:
        rows = await self._read(self._sql.settings, (len(prefix), prefix))
        return {str(row[0]): str(row[1]) for row in rows}

    async def purge(self, now: int, *, records_before: int | None) -> tuple[int, int]:
        sql = self._sql

        async def purge(run: Runner) -> tuple[int, int]:
            transient = await run.execute(sql.purge_pending, (now,))
            transient += await run.execute(sql.purge_bindings, (now,))
            records = 0
            if records_before is not None:
                records = await run.execute(sql.purge_consents, (records_before,))
            return transient, records

        return await self._write_rows(purge)

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
        if not self._storable(event, client_id, request_id, subject):
            return [], None
        sql, params = self._sql.audit_page(
            after, limit, since, event, client_id, request_id=request_id, subject=subject
        )
        return page_of(await self._read(sql, params), limit)

    async def ping(self) -> None:
        await self._read("SELECT 1", ())

    async def heartbeat(self, value: str) -> None:
        await self.set_setting(HEARTBEAT_SETTING, value)

    async def announce_gate(self, row: Row) -> None:
        await self._write_one(self._sql.announce_gate, tuple(row))

    async def leave_gate(self, instance: str) -> None:
        await self._write_one(self._sql.leave_gate, (instance,))

    async def forget_gates(self, seen_before: int) -> int:
        return await self._write_rows(
            lambda run: run.execute(self._sql.forget_gates, (seen_before,))
        )

    async def attached_gates(self) -> list[Row]:
        return await self._read(self._sql.attached_gates, ())

    async def sighting(self, client_id: str) -> Row | None:
        if not self._storable(client_id):
            return None
        rows = await self._read(self._sql.sighting, (client_id,))
        return rows[0] if rows else None

    async def sighting_page(self, *, after: Cursor | None, limit: int) -> Page:
        start = text_position(after)
        if start is None:
            rows = await self._read(self._sql.sighting_first_page, (limit,))
        else:
            rows = await self._read(self._sql.sighting_page, (start, limit))
        return page_of(rows, limit, key=str)

    async def record_sighting(self, row: Row) -> bool:
        if not self._storable(row[0]):
            return False
        return bool(await self._write_one(self._sql.record_sighting, tuple(row)))
