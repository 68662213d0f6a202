"""The consent store's SQL, written once for every backend, with a small dialect layer.

The statements are the same on SQLite and PostgreSQL once four things are named:
where a parameter goes (written ``$n``, PostgreSQL's numbered form; SQLite reads the
same as ``?n``), which schema the tables live in (none on SQLite, ``consentgate`` on
PostgreSQL), which column orders a listing and is the cursor of its pages (SQLite's
``rowid``, PostgreSQL's ``seq`` identity column), and how a client row is replaced.
What else differs is a backend's own: connections, locking, change notification and
migrations (:mod:`consentgate.store.sqlite`, :mod:`consentgate.store.postgres`).

The rules a statement carries are written here once too: which rows a purge deletes
(expired pending rows and used marks; consent records revoked or expired at or
before the retention cut), and where an audit retention cut leaves the chain (the
newest row is always kept).

Pure: strings only, no driver is imported. Every fragment is a constant of this
module; values only ever travel as parameters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final, Literal

from consentgate.core.attached_gates import GATE_COLUMNS
from consentgate.core.signed.records import (
    AUDIT_COLUMNS,
    CLIENT_COLUMNS,
    CONSENT_COLUMNS,
    PENDING_COLUMNS,
    RevokeSelector,
)
from consentgate.core.signed.sightings import SIGHTING_COLUMNS
from consentgate.store.protocol import Cursor

_CONSENT_SELECT: Final = ", ".join(CONSENT_COLUMNS)
_CLIENT_SELECT: Final = ", ".join(CLIENT_COLUMNS)
_PENDING_SELECT: Final = ", ".join(PENDING_COLUMNS)
_AUDIT_SELECT: Final = ", ".join(AUDIT_COLUMNS)
_GATE_SELECT: Final = ", ".join(GATE_COLUMNS)
_NUMBERED: Final = re.compile(r"\$(\d+)")


def _values(count: int) -> str:
    return ", ".join(f"${index}" for index in range(1, count + 1))


@dataclass(frozen=True, slots=True)
class Dialect:
    """What differs between the backends' SQL, and nothing else."""

    #: Prefix of every table name: ``""`` or ``"consentgate."``.
    schema: str
    #: The column that orders listings and is their cursor.
    position: Literal["rowid", "seq"]
    #: ``?n`` for SQLite, ``$n`` for PostgreSQL.
    parameter: Literal["?", "$"]
    #: Extra conditions of the lookup that let an index find the rows: PostgreSQL
    #: indexes the MD5 of the long columns (a B-tree entry is limited to ~2.7 kB).
    lookup_index: str = ""
    #: Whether a revocation page is one UPDATE over arrays (PostgreSQL: one counter
    #: step and one notification per page), rather than one UPDATE per row.
    array_revoke: bool = False
    #: Whether a value no row can hold (NUL, a lone surrogate) must be answered
    #: "no such row" here, because the driver would raise instead (PostgreSQL).
    refuses_unstorable: bool = False
    #: How a client row is replaced: SQLite's ``INSERT OR REPLACE`` (the row gets a
    #: new rowid, so a client registered again lists last, as it always did) or an
    #: ``INSERT ... ON CONFLICT DO UPDATE`` (PostgreSQL keeps the row and its seq).
    client_upsert: Literal["replace", "update"] = "replace"

    def sql(self, text: str) -> str:
        """``text`` with this dialect's placeholders."""
        return text if self.parameter == "$" else _NUMBERED.sub(r"?\1", text)

    def storable(self, *values: str | None) -> bool:
        """False when no row can hold one of the values (only asked where it matters)."""
        if not self.refuses_unstorable:
            return True
        for value in values:
            if value is None:
                continue
            if "\x00" in value:
                return False
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                return False
        return True


SQLITE: Final = Dialect(schema="", position="rowid", parameter="?")
POSTGRES: Final = Dialect(
    schema="consentgate.",
    position="seq",
    parameter="$",
    lookup_index=(
        " AND md5(client_id) = md5($2) AND md5(redirect_uri) = md5($3) AND md5(resource) = md5($4)"
    ),
    array_revoke=True,
    refuses_unstorable=True,
    client_upsert="update",
)


def cursor_position(cursor: Cursor | None) -> int:
    """The position a page starts after (0 for the first page)."""
    if cursor is None:
        return 0
    if not isinstance(cursor, int) or isinstance(cursor, bool):
        raise TypeError(f"not a cursor of this backend: {cursor!r}")
    return cursor


def text_position(cursor: Cursor | None) -> str | None:
    """The text key a page of a table without a position column starts after (None for
    the first page: no string sorts before every key, the empty one included)."""
    if cursor is not None and not isinstance(cursor, str):
        raise TypeError(f"not a text cursor: {cursor!r}")
    return cursor


class _Where:
    """Conditions joined by AND, numbering their parameters as they come."""

    def __init__(self) -> None:
        self.clauses: list[str] = []
        self.params: list[Any] = []

    def add(self, clause: str, *values: Any) -> None:
        """``clause`` with ``{}`` for each value's placeholder."""
        marks = []
        for value in values:
            self.params.append(value)
            marks.append(f"${len(self.params)}")
        self.clauses.append(clause.format(*marks))

    def next(self, value: Any) -> str:
        self.params.append(value)
        return f"${len(self.params)}"

    def text(self) -> str:
        return " AND ".join(self.clauses)


class Statements:
    """Every statement of the store, in one dialect."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = d = dialect
        s, pos = d.schema, d.position
        self.consents, self.clients = f"{s}consents", f"{s}clients"
        self.pending, self.audit = f"{s}pending", f"{s}audit"
        self.bindings, self.settings_table = f"{s}used_bindings", f"{s}settings"
        self.position = pos
        # --- consents
        self.insert_consent = d.sql(
            f"INSERT INTO {self.consents} ({_CONSENT_SELECT}) "  # noqa: S608 - constants
            f"VALUES ({_values(len(CONSENT_COLUMNS))})"
        )
        #: The read behind every uncached answer, served by the ``consents_lookup`` index.
        self.lookup = d.sql(
            f"SELECT {_CONSENT_SELECT} FROM {self.consents} "  # noqa: S608 - constants
            f"WHERE subject = $1{d.lookup_index} AND client_id = $2 AND redirect_uri = $3 "
            "AND resource = $4 AND expires_at > $5 AND revoked_at IS NULL"
        )
        self.consent = d.sql(f"SELECT {_CONSENT_SELECT} FROM {self.consents} WHERE id = $1")  # noqa: S608
        self.refresh_consent = d.sql(
            f"UPDATE {self.consents} SET expires_at = $1, key_id = $2, signature = $3 "  # noqa: S608
            "WHERE id = $4 AND revoked_at IS NULL"
        )
        self.revoke_one = d.sql(
            f"UPDATE {self.consents} SET revoked_at = $1, key_id = $2, signature = $3 "  # noqa: S608
            "WHERE id = $4 AND revoked_at IS NULL"
        )
        self.revoke_array = d.sql(
            f"UPDATE {self.consents} AS c SET revoked_at = $1, key_id = s.key_id, "  # noqa: S608
            "signature = s.signature FROM unnest($2::text[], $3::text[], $4::bytea[]) "
            "AS s(id, key_id, signature) WHERE c.id = s.id AND c.revoked_at IS NULL"
        )
        # --- clients
        self.client = d.sql(f"SELECT {_CLIENT_SELECT} FROM {self.clients} WHERE client_id = $1")  # noqa: S608
        if d.client_upsert == "replace":
            verb, conflict = "INSERT OR REPLACE INTO", ""
        else:
            verb = "INSERT INTO"
            conflict = " ON CONFLICT (client_id) DO UPDATE SET " + ", ".join(
                f"{column} = EXCLUDED.{column}" for column in CLIENT_COLUMNS[1:]
            )
        self.put_client = d.sql(
            f"{verb} {self.clients} ({_CLIENT_SELECT}) "
            f"VALUES ({_values(len(CLIENT_COLUMNS))}){conflict}"
        )
        self.client_page = d.sql(
            f"SELECT {pos}, {_CLIENT_SELECT} FROM {self.clients} "  # noqa: S608 - constants
            f"WHERE {pos} > $1 ORDER BY {pos} LIMIT $2"
        )
        # --- pending pages, used marks, settings
        self.pending_page = d.sql(
            f"SELECT {pos}, {_PENDING_SELECT} FROM {self.pending} "  # noqa: S608 - constants
            f"WHERE {pos} > $1 ORDER BY {pos} LIMIT $2"
        )
        self.insert_pending = d.sql(
            f"INSERT INTO {self.pending} ({_PENDING_SELECT}) "  # noqa: S608 - constants
            f"VALUES ({_values(len(PENDING_COLUMNS))})"
        )
        self.take_pending = d.sql(
            f"DELETE FROM {self.pending} WHERE id = $1 AND subject = $2 "  # noqa: S608
            f"RETURNING {_PENDING_SELECT}"
        )
        self.count_pending = d.sql(f"SELECT count(*) FROM {self.pending} WHERE expires_at > $1")  # noqa: S608
        self.use_binding = d.sql(
            f"INSERT INTO {self.bindings} (key, expires_at) VALUES ($1, $2) "  # noqa: S608
            "ON CONFLICT (key) DO NOTHING RETURNING key"
        )
        self.claim_setting = d.sql(
            f"INSERT INTO {self.settings_table} (name, value) VALUES ($1, $2) "  # noqa: S608
            "ON CONFLICT (name) DO NOTHING"
        )
        self.read_setting = d.sql(f"SELECT value FROM {self.settings_table} WHERE name = $1")  # noqa: S608
        self.put_setting = d.sql(
            f"INSERT INTO {self.settings_table} (name, value) VALUES ($1, $2) "  # noqa: S608
            "ON CONFLICT (name) DO UPDATE SET value = excluded.value"
        )
        #: A plain prefix: its length, then the prefix (no pattern characters).
        self.settings = d.sql(
            f"SELECT name, value FROM {self.settings_table} "  # noqa: S608 - constants
            "WHERE substr(name, 1, $1) = $2"
        )
        # --- the purge rule
        self.purge_pending = d.sql(f"DELETE FROM {self.pending} WHERE expires_at <= $1")  # noqa: S608
        self.purge_bindings = d.sql(f"DELETE FROM {self.bindings} WHERE expires_at <= $1")  # noqa: S608
        #: Records revoked or expired at or before the retention cut.
        self.purge_consents = d.sql(
            f"DELETE FROM {self.consents} WHERE "  # noqa: S608 - constants
            "(revoked_at IS NOT NULL AND revoked_at <= $1) OR expires_at <= $1"
        )
        # --- the audit table
        self.insert_audit = d.sql(
            f"INSERT INTO {self.audit} ({_AUDIT_SELECT}) "  # noqa: S608 - constants
            f"VALUES ({_values(len(AUDIT_COLUMNS))})"
        )
        self.audit_tail = f"SELECT seq, hash FROM {self.audit} ORDER BY seq DESC LIMIT 1"  # noqa: S608
        #: Where a retention cut before $1 leaves the chain: the oldest row kept, and
        #: the newest is always kept.
        self.audit_first_kept = d.sql(
            f"SELECT seq, prev FROM {self.audit} "  # noqa: S608 - constants
            f"WHERE at >= $1 OR seq = (SELECT max(seq) FROM {self.audit}) ORDER BY seq LIMIT 1"
        )
        self.audit_count_before = d.sql(f"SELECT count(*) FROM {self.audit} WHERE seq < $1")  # noqa: S608
        self.delete_audit_before = d.sql(f"DELETE FROM {self.audit} WHERE seq < $1")  # noqa: S608
        # --- the attached gates (consentgate.core.attached_gates)
        self.gates = f"{s}gates"
        self.announce_gate = d.sql(
            f"INSERT INTO {self.gates} ({_GATE_SELECT}) "  # noqa: S608 - constants
            f"VALUES ({_values(len(GATE_COLUMNS))}) ON CONFLICT (instance) DO UPDATE SET "
            + ", ".join(f"{column} = excluded.{column}" for column in GATE_COLUMNS[1:])
        )
        self.leave_gate = d.sql(f"DELETE FROM {self.gates} WHERE instance = $1")  # noqa: S608
        self.forget_gates = d.sql(f"DELETE FROM {self.gates} WHERE seen_at < $1")  # noqa: S608
        self.attached_gates = (
            f"SELECT {_GATE_SELECT} FROM {self.gates} ORDER BY started_at, instance"  # noqa: S608
        )
        # --- first sightings of clients named by a URL (the first writer wins)
        sightings = f"{s}client_sightings"
        self.record_sighting = d.sql(
            f"INSERT INTO {sightings} ({', '.join(SIGHTING_COLUMNS)}) "  # noqa: S608 - constants
            f"VALUES ({_values(len(SIGHTING_COLUMNS))}) ON CONFLICT (client_id) DO NOTHING "
            "RETURNING client_id"
        )
        self.sighting = d.sql(
            f"SELECT {', '.join(SIGHTING_COLUMNS)} FROM {sightings} WHERE client_id = $1"  # noqa: S608
        )
        # No position column: pages are keyed by the primary key, in byte order on both
        # backends (SQLite's BINARY collation, PostgreSQL's COLLATE "C" column).
        sighting_select = f"SELECT client_id, {', '.join(SIGHTING_COLUMNS)} FROM {sightings}"  # noqa: S608
        self.sighting_first_page = d.sql(f"{sighting_select} ORDER BY client_id LIMIT $1")
        self.sighting_page = d.sql(
            f"{sighting_select} WHERE client_id > $1 ORDER BY client_id LIMIT $2"
        )

    def unrevoked(
        self, selector: RevokeSelector, value: str | None, after: Cursor | None, limit: int
    ) -> tuple[str, list[Any]]:
        """A page of unrevoked consents matching ``selector`` = ``value``."""
        where = _Where()
        where.add("revoked_at IS NULL")
        if selector != "all":
            where.add(f"{selector} = {{}}", value)
        return self._page(self.consents, _CONSENT_SELECT, where, after, limit)

    def consent_page(
        self,
        after: Cursor | None,
        limit: int,
        filters: tuple[tuple[str, str | None], ...],
        unrevoked_only: bool,
        unexpired_at: int | None,
    ) -> tuple[str, list[Any]]:
        """A page of consents matching every given filter (equality per column)."""
        where = _Where()
        for column, value in filters:
            if value is not None:
                where.add(f"{column} = {{}}", value)
        if unrevoked_only:
            where.add("revoked_at IS NULL")
        if unexpired_at is not None:
            where.add("expires_at > {}", unexpired_at)
        return self._page(self.consents, _CONSENT_SELECT, where, after, limit)

    def audit_page(
        self,
        after: Cursor | None,
        limit: int,
        since: int | None,
        event: str | None,
        client_id: str | None,
        *,
        request_id: str | None = None,
        subject: str | None = None,
    ) -> tuple[str, list[Any]]:
        """A page of audit rows after the cursor matching every given filter."""
        where = _Where()
        where.add("seq > {}", cursor_position(after))
        for clause, value in (
            ("at >= {}", since),
            ("event = {}", event),
            ("client_id = {}", client_id),
            ("request_id = {}", request_id),
            ("subject = {}", subject),
        ):
            if value is not None:
                where.add(clause, value)
        limit_mark = where.next(limit)
        sql = (
            f"SELECT seq, {_AUDIT_SELECT} FROM {self.audit} "  # noqa: S608 - constants
            f"WHERE {where.text()} ORDER BY seq LIMIT {limit_mark}"
        )
        return self.dialect.sql(sql), where.params

    def _page(
        self, table: str, columns: str, where: _Where, after: Cursor | None, limit: int
    ) -> tuple[str, list[Any]]:
        pos = self.position
        where.add(f"{pos} > {{}}", cursor_position(after))
        limit_mark = where.next(limit)
        sql = (
            f"SELECT {pos}, {columns} FROM {table} "  # noqa: S608 - constants
            f"WHERE {where.text()} ORDER BY {pos} LIMIT {limit_mark}"
        )
        return self.dialect.sql(sql), where.params
