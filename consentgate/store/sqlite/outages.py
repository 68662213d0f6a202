"""SQLite's errors as outages: which "cannot now" a SQLite error means (a lock held
past the busy timeout, a read-only or full file system, an I/O error, a corrupt
file), raised as :class:`~consentgate.store.store_errors.StoreUnavailable` naming the
file, on which the gate fails closed; and the file's identity, by which a deleted or
replaced store is noticed."""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from consentgate.store.store_errors import OutageKind, StoreUnavailable


@contextlib.contextmanager
def unavailable_on_failure(path: Path) -> Iterator[None]:
    """SQLite's "cannot now" errors as :class:`StoreUnavailable`, naming the file and
    SQLite's reason: a lock held past the busy timeout, an I/O error, a read-only or
    full file system, a file that became corrupt. Constraint and programming errors
    stay what they are (a caller's mistake, not an outage)."""
    try:
        yield
    except sqlite3.OperationalError as exc:
        raise StoreUnavailable(f"the consent store {path}: {exc}", outage_kind(exc, path)) from exc
    except sqlite3.DatabaseError as exc:
        if type(exc) is not sqlite3.DatabaseError:
            raise
        raise StoreUnavailable(f"the consent store {path}: {exc}", outage_kind(exc, path)) from exc


def _read_only_file_system(path: Path) -> bool:
    """Whether ``path``'s file system refuses writes (``EROFS``).

    The mount flag is not enough: ext4 after an error (``errors=remount-ro``) on
    recent kernels marks itself ``emergency_ro`` without setting it, and only its
    operations answer ``EROFS``. Opening the file for writing, and writing nothing,
    asks the file system itself and changes nothing."""
    try:
        if os.statvfs(path.parent).f_flag & os.ST_RDONLY:
            return True
    except OSError:
        return False
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CLOEXEC))
    except OSError as exc:
        return exc.errno == errno.EROFS
    return False


def file_identity(path: Path) -> tuple[int, int] | None:
    """The device and inode of the file at ``path``, or None when there is none."""
    try:
        status = os.stat(path)
    except OSError:
        return None
    return (status.st_dev, status.st_ino)


def outage_kind(exc: sqlite3.Error, path: Path) -> OutageKind:
    """The kind of outage behind a SQLite error, from its (extended) result code.

    A file system that turned read-only under an open database (ext4 after an
    error, ``errors=remount-ro``) fails writes with an I/O error, not
    ``SQLITE_READONLY``: the file system's own flag tells them apart."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    if name.startswith("SQLITE_IOERR") and _read_only_file_system(path):
        return "read-only"
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
        return "locked"
    if name.startswith("SQLITE_READONLY"):
        return "read-only"
    if name == "SQLITE_FULL":
        return "disk full"
    if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")) or type(exc) is sqlite3.DatabaseError:
        return "corrupt"
    if name.startswith(("SQLITE_IOERR", "SQLITE_CANTOPEN")):
        return "I/O error"
    return "unavailable"
