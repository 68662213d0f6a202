"""Copies of a SQLite consent store: taken online, checked, and put back.

A copy is taken with SQLite's online backup API (``sqlite3_backup_*``, through
:meth:`sqlite3.Connection.backup`; https://www.sqlite.org/backup.html) in one step:
it reads the whole database inside one read transaction, so the copy is the store
as it was when that transaction began. In WAL mode a reader never blocks a writer,
so a gate keeps answering and writing meanwhile; copying the file with ``cp`` could
instead catch a page half-written or miss what is still in ``-wal``. The copy is
then switched to the rollback journal (one self-contained file), checked with
``PRAGMA integrity_check``, made ``0600`` and renamed into place, so a partial copy
never carries the name asked for.

Whether a gate holds the store: every open connection to a WAL database keeps a
shared lock on the file for as long as it is open, and a connection in
``locking_mode=EXCLUSIVE`` can take its exclusive lock only when no other process
has the file open (https://www.sqlite.org/pragma.html#pragma_locking_mode). A
restore takes that lock first, and writes the copy into the store through the same
connection while holding it, so no gate can open the store half-restored.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from consentgate.core.schema_versions import runs_on
from consentgate.core.startup_errors import StartupError
from consentgate.store.sqlite.sqlite_schema import SCHEMA_VERSION, recorded_level

#: The tables every consentgate store has had since its first schema.
_TABLES: Final = ("consents", "clients")


@dataclass(frozen=True, slots=True)
class CopyFacts:
    """What a copy holds, counted without keys: its schema version and rows."""

    schema_version: int
    consents: int
    clients: int
    audit_rows: int

    def describe(self) -> str:
        return (
            f"{self.consents} approval record(s), {self.clients} client(s), "
            f"{self.audit_rows} audit row(s), schema version {self.schema_version}"
        )


def _connect(path: Path, *, timeout: float = 5.0) -> sqlite3.Connection:
    return sqlite3.connect(path, timeout=timeout, isolation_level=None)


def _table_names(conn: sqlite3.Connection) -> set[str]:
    rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    return {str(row[0]) for row in rows}


def facts(path: Path, *, what: str = "the file") -> CopyFacts:
    """The schema version and row counts of the consent store at ``path``; a
    StartupError saying why when it is not one (not SQLite, another application's
    database, a newer schema that does not record that it still runs this consentgate,
    damaged pages)."""
    if not path.is_file():
        raise StartupError(f"{what} {path} does not exist or is not a file")
    try:
        with contextlib.closing(
            sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        ) as conn:
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            tables = _table_names(conn)
            if version == 0 or not set(_TABLES) <= tables:
                raise StartupError(
                    f"{what} {path} is not a consentgate store (a SQLite database without "
                    "its tables or schema version)"
                )
            if not runs_on(SCHEMA_VERSION, version, recorded_level(conn, version)):
                raise StartupError(
                    f"{what} {path} has schema version {version}, newer than the "
                    f"{SCHEMA_VERSION} this consentgate knows; upgrade consentgate first"
                )
            check = conn.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise StartupError(f"{what} {path} is damaged: {check}")
            counts = [
                int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])  # noqa: S608 - constants
                if table in tables
                else 0
                for table in ("consents", "clients", "audit")
            ]
    except sqlite3.DatabaseError as exc:
        raise StartupError(f"{what} {path} is not a consentgate store: {exc}") from None
    return CopyFacts(version, *counts)


def _temporary(beside: Path, label: str) -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    return beside.with_name(f".{beside.name}.{label}-{stamp}-{os.getpid()}")


def _private_new_file(path: Path) -> None:
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except OSError as exc:
        raise StartupError(f"cannot create {path}: {exc.strerror or exc}") from None


def copy_database(source: Path, target: Path) -> None:
    """Copy the database at ``source`` into a new ``0600`` file at ``target`` with the
    online backup API in one step (a consistent snapshot), as one self-contained file
    (rollback journal), checked."""
    _private_new_file(target)
    try:
        with (
            contextlib.closing(_connect(source)) as src,
            contextlib.closing(_connect(target)) as dst,
        ):
            src.backup(dst)
            dst.execute("PRAGMA journal_mode = DELETE")
            check = dst.execute("PRAGMA integrity_check").fetchone()[0]
            if check != "ok":
                raise StartupError(f"the copy of {source} does not pass integrity_check: {check}")
        with open(target, "rb") as written:
            os.fsync(written.fileno())
    except sqlite3.Error as exc:
        target.unlink(missing_ok=True)
        raise StartupError(f"cannot copy the consent store {source}: {exc}") from None
    except BaseException:
        target.unlink(missing_ok=True)
        raise


def backup_to(source: Path, out: Path) -> CopyFacts:
    """Write a consistent copy of the store at ``source`` to ``out`` (replacing a file
    there atomically); what it holds. ``out`` must not be the store itself."""
    if out.exists() and (out.is_dir() or (source.exists() and os.path.samefile(out, source))):
        raise StartupError(
            f"--out {out} is the consent store itself or a directory; name a new file"
        )
    if not out.parent.is_dir():
        raise StartupError(f"--out {out}: the directory {out.parent} does not exist")
    facts(source, what="the consent store")
    partial = _temporary(out, "partial")
    copy_database(source, partial)
    try:
        found = facts(partial, what="the copy")
        os.replace(partial, out)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    _fsync_directory(out.parent)
    return found


def staged_copy(source: Path, beside: Path) -> Path:
    """A private working copy of the backup ``source`` next to ``beside`` (the store),
    which a restore opens, migrates and verifies before anything is replaced."""
    staged = _temporary(beside, "restoring")
    copy_database(source, staged)
    return staged


def put_back(staged: Path, target: Path) -> None:
    """Write the database at ``staged`` into the store at ``target`` (created ``0600``
    when missing), holding the store's exclusive lock from before the first page to
    the end; a StartupError when another process has the store open."""
    if not target.exists():
        _private_new_file(target)
    try:
        with contextlib.closing(_connect(target, timeout=0)) as dst:
            dst.execute("PRAGMA locking_mode = EXCLUSIVE")
            try:
                dst.execute("BEGIN EXCLUSIVE")
                dst.execute("COMMIT")  # the lock is kept: locking_mode is EXCLUSIVE
            except sqlite3.OperationalError as exc:
                raise StartupError(
                    f"the consent store {target} is open in another process (a running gate "
                    f"or another consentgate command: {exc}); stop the gate, then restore; "
                    "nothing changed"
                ) from None
            with contextlib.closing(_connect(staged)) as src:
                src.backup(dst)
            dst.execute("PRAGMA journal_mode = WAL")
    except sqlite3.Error as exc:
        raise StartupError(f"cannot restore into the consent store {target}: {exc}") from None


def _fsync_directory(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
