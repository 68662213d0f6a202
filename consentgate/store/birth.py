"""A consent store that existed is never silently replaced by an empty one.

SQLite creates a missing database file without a word, and a new PostgreSQL
database gets its schema at the first start: a store deleted by mistake, a volume
that was not mounted, or a failover to an empty database would start the gate with
no approvals, and nobody would know why everyone is asked again, or that the
approvals (and their audit) are gone. So a store that is missing where there is
evidence that one existed is a startup error, and starting over is explicit:
``consentgate store init`` (or ``serve --create-store``).

The evidence:

* ``<file>-wal`` or ``<file>-shm`` beside a missing SQLite file: SQLite's own files
  of a database that was open (they are removed when the last connection closes
  cleanly, so they are left by a crash or by a deletion under a running gate);
* :data:`RECORD_NAME` in the keys directory: written by the gate when it first
  opened a store with these keys, naming that store. The keys directory is kept
  and backed up with care (it signs every record), and usually lives apart from
  the data, so it outlives the store's own files.

Pure module: no aiohttp import.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from consentgate.core.startup_errors import StartupError
from consentgate.signing.private_files import write_private_file

#: The file in the keys directory that says which store was created with these keys.
RECORD_NAME: Final = "store.json"

_log = logging.getLogger("consentgate.store")


@dataclass(frozen=True)
class StoreRecord:
    """Which store (as :func:`~consentgate.store.opening.describe` names it, never a
    password) was first opened with a keys directory, and when (Unix seconds)."""

    store: str
    created_at: int

    def describe(self) -> str:
        when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(self.created_at))
        return f"{self.store}, first opened {when}"


def read_record(keys_dir: Path) -> StoreRecord | None:
    """The record in ``keys_dir``, or None when there is none.

    A record that cannot be read or parsed still says that a store existed: it is
    returned with what could be read, rather than ignored."""
    path = keys_dir / RECORD_NAME
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        return StoreRecord(f"(unreadable {path}: {exc.strerror or exc})", 0)
    try:
        document = json.loads(text)
        return StoreRecord(str(document["store"]), int(document["created_at"]))
    except (ValueError, KeyError, TypeError):
        return StoreRecord(f"(unparsable {path})", 0)


def remember_store(keys_dir: Path, store: str, *, now: float, replace: bool = False) -> None:
    """Record ``store`` in ``keys_dir`` unless a record is there (or ``replace``: a
    store created anew by ``store init``).

    A keys directory that cannot be written (mounted read-only, say) does not stop
    the gate, which works without the record; one WARNING says what is then not
    detected."""
    path = keys_dir / RECORD_NAME
    if not replace and path.exists():
        return
    document = {"store": store, "created_at": int(now)}
    try:
        write_private_file(path, (json.dumps(document) + "\n").encode())
    except StartupError as exc:
        _log.warning(
            "cannot record the consent store in the keys directory; a store deleted "
            "later would be re-created empty at the next start without an error",
            extra={"fields": {"path": str(path), "reason": str(exc)}},
        )


def leftovers(path: Path) -> tuple[Path, ...]:
    """SQLite's ``-wal`` and ``-shm`` files of ``path`` that exist."""
    found = (path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm"))
    return tuple(file for file in found if file.exists())


def evidence(sqlite_path: Path | None, keys_dir: Path | None) -> list[str]:
    """Why a store is believed to have existed (empty: nothing says so)."""
    reasons: list[str] = []
    if sqlite_path is not None:
        reasons.extend(f"{file} is left beside it" for file in leftovers(sqlite_path))
    if keys_dir is not None:
        record = read_record(keys_dir)
        if record is not None:
            reasons.append(
                f"the keys directory records a store created with these keys "
                f"({record.describe()}; {keys_dir / RECORD_NAME})"
            )
    return reasons


def missing_store_error(where: str, reasons: list[str], *, config: str = "FILE") -> StartupError:
    """The startup error for a missing store that existed: what says so, and the two
    ways on (restore, or start over explicitly)."""
    return StartupError(
        f"the consent store {where} is missing, but one existed: {'; '.join(reasons)}. "
        "Every approval is in it: restore it from a backup (or mount the volume it is "
        "on), then start again; to start over with no approvals, run "
        f"`consentgate store init --config {config}` (or `consentgate serve --create-store`)"
    )


def set_aside(files: tuple[Path, ...], *, now: float) -> list[Path]:
    """Rename stale ``-wal``/``-shm`` files out of the way of a new database (SQLite
    would otherwise replay another database's log into it); returns the new names."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    moved: list[Path] = []
    for file in files:
        target = file.with_name(f"{file.name}.orphaned-{stamp}")
        with contextlib.suppress(FileNotFoundError):
            os.replace(file, target)
            moved.append(target)
    return moved
