"""Private files of the keys directory: mode 0600, written atomically, under a lock.

A crash leaves either the old file or the new one, never half a key or an ``active``
file naming nothing (temp file, fsync, ``os.replace``, fsync of the directory). Two
processes starting for the first time at once (the gate and a CLI command) must not
each create a different first key: creation and rotation hold an exclusive ``flock``
on the directory. A private file that group or others can reach is refused with the
``chmod`` that fixes it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path

from consentgate.core.startup_errors import StartupError


def file_mode(st: os.stat_result) -> str:
    return f"{stat.S_IMODE(st.st_mode):04o}"


def check_private_file(path: Path, what: str) -> None:
    try:
        st = path.stat()
    except OSError as exc:
        raise StartupError(f"cannot read the {what} {path}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(st.st_mode):
        raise StartupError(f"the {what} {path} is not a regular file")
    if st.st_mode & 0o077:
        raise StartupError(
            f"the {what} {path} is accessible by group or others (mode {file_mode(st)}); "
            f"run: chmod 600 {path}"
        )


def _fsync_directory(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_private_file(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` with mode 0600: temp file, fsync, os.replace
    (StartupError on failure). For the keys, the cookie secret and the few files kept
    beside them, such as the store record.

    A crash leaves either the old file or the new one, never half a key or an
    ``active`` file naming nothing.
    """
    temp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            os.fchmod(fd, 0o600)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise StartupError(f"cannot write {path}: {exc.strerror or exc}") from None
    _fsync_directory(path.parent)


@contextlib.contextmanager
def directory_lock(directory: Path) -> Iterator[None]:
    """An exclusive flock on the directory itself while keys are created or rotated.

    Two processes starting for the first time at once (the gate and a CLI command)
    must not each create a different first key. Best effort: where the file
    system has no flock the lock is skipped.
    """
    try:
        import fcntl  # noqa: PLC0415 - POSIX only

        fd = os.open(directory, os.O_RDONLY)
    except (ImportError, OSError):
        yield
        return
    try:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
