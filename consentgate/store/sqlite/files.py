"""Where the SQLite consent store lives: checks before opening, and errors as one line.

Every problem a person can fix at startup (a missing directory, a read-only file
or directory, a file that is not SQLite, a lock held too long) becomes one
:class:`~consentgate.core.startup_errors.StartupError` line that names the path and what
to do; the CLI prints it and exits. A new file is created ``0600`` by us, not
``0644`` by SQLite: pending rows hold authorization requests, and SQLite gives the
``-wal`` and ``-shm`` files the mode of the database.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from consentgate.core.startup_errors import StartupError
from consentgate.store.sqlite.sqlite_schema import MIN_SQLITE_VERSION


def startup_error(path: Path, exc: sqlite3.Error) -> StartupError:
    """One line naming the path and what to do, for an error while opening the store."""
    name = getattr(exc, "sqlite_errorname", "")
    if name == "SQLITE_NOTADB":
        return StartupError(
            f"the consent store {path} is not a SQLite database (corrupt, or another kind of file)"
        )
    if name == "SQLITE_CORRUPT":
        return StartupError(f"the consent store {path} is corrupt ({exc})")
    if name.startswith("SQLITE_READONLY"):
        return StartupError(
            f"the consent store {path} is read-only ({exc}); the gate must be able to write "
            f"it and to create {path.name}-wal and {path.name}-shm in {path.parent}"
        )
    if name == "SQLITE_CANTOPEN":
        return StartupError(
            f"cannot open the consent store {path}: check that {path.parent} exists and is writable"
        )
    if name == "SQLITE_BUSY":
        return StartupError(f"the consent store {path} stayed locked by another process ({exc})")
    return StartupError(f"cannot open the consent store {path}: {exc}")


def check_location(path: Path, *, create: bool) -> None:
    """Refuse an old SQLite, a missing directory, a directory, or (``create=False``) a
    missing file; create a missing file 0600."""
    if sqlite3.sqlite_version_info < MIN_SQLITE_VERSION:
        raise StartupError(
            f"SQLite {sqlite3.sqlite_version} is too old for the consent store; "
            f"{'.'.join(map(str, MIN_SQLITE_VERSION))} or newer is needed"
        )
    parent = path.parent
    if not parent.is_dir():
        raise StartupError(f"the directory of the consent store {path} does not exist: {parent}")
    if path.is_dir():
        raise StartupError(f"the consent store {path} is a directory, not a file")
    if path.exists():
        return
    if not create:
        raise StartupError(
            f"the consent store {path} does not exist; the gate creates it when it first starts"
        )
    try:
        # Created 0600 by us rather than 0644 by SQLite: pending rows hold
        # authorization requests. SQLite gives -wal and -shm the same mode.
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass
    except OSError as exc:
        raise StartupError(
            f"cannot create the consent store {path}: {exc.strerror or exc} (is {parent} writable?)"
        ) from None


def check_private(path: Path) -> None:
    """Refuse a store file that group or others can read or write: it holds
    who approved what and the pending authorization requests, and SQLite gives its
    ``-wal`` and ``-shm`` the same mode. Checked by the gate at start; a missing file
    is created 0600 by :func:`check_location`."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return
    except OSError as exc:
        raise StartupError(f"cannot read the consent store {path}: {exc.strerror or exc}") from None
    if mode & 0o077:
        files = [path, *(Path(f"{path}{end}") for end in ("-wal", "-shm"))]
        existing = " ".join(str(file) for file in files if file.exists())
        raise StartupError(
            f"the consent store {path} is accessible by group or others (mode "
            f"{mode & 0o7777:04o}); run: chmod 600 {existing}"
        )
