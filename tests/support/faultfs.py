"""File systems that fail on purpose, for the store fault tests: a small
tmpfs that fills up, and an ext4 image, loop-mounted with ``errors=remount-ro``,
that turns read-only on an error (``/sys/fs/ext4/<dev>/trigger_fs_error``), as a
disk fault would make it.

Both need root (CI runs as root). Without it the tests skip, except under
``CI_REQUIRE_FAULTS=1`` (set by ``.ci/run``), where they fail: CI must run them.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


def _unavailable(reason: str) -> None:
    if os.environ.get("CI_REQUIRE_FAULTS") == "1":
        pytest.fail(f"CI_REQUIRE_FAULTS=1 and {reason}", pytrace=False)
    pytest.skip(reason)


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


def _mount(*arguments: str) -> None:
    if os.geteuid() != 0:
        _unavailable("mounting a file system needs root")
    result = _run("mount", *arguments)
    if result.returncode != 0:
        _unavailable(f"mount {' '.join(arguments)} failed: {result.stderr.strip()}")


def _unmount(point: Path) -> None:
    if _run("umount", str(point)).returncode != 0:
        _run("umount", "-l", str(point))  # busy: detach it anyway, never leave it behind


@contextlib.contextmanager
def small_tmpfs(point: Path, size_kib: int) -> Iterator[Path]:
    """A tmpfs of ``size_kib`` KiB mounted at ``point`` for the block."""
    point.mkdir(parents=True, exist_ok=True)
    _mount("-t", "tmpfs", "-o", f"size={size_kib}k,mode=0700", "tmpfs", str(point))
    try:
        yield point
    finally:
        _unmount(point)


def fill(directory: Path) -> Path:
    """Write a file that takes every free byte of ``directory``'s file system."""
    filler = directory / "filler"
    # Unbuffered: a buffered file would try to write its rest again when closed.
    with filler.open("wb", buffering=0) as out:
        block = b"\0" * 4096
        while True:
            try:
                if out.write(block) == 0:
                    break
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                break
    return filler


class Ext4Image:
    """An ext4 file system in a file, mounted ``errors=remount-ro`` at ``point``."""

    def __init__(self, image: Path, point: Path) -> None:
        self.image = image
        self.point = point
        self.device = ""

    def mount(self) -> None:
        self.point.mkdir(parents=True, exist_ok=True)
        _mount("-o", "loop,errors=remount-ro", str(self.image), str(self.point))
        source = _run("findmnt", "-n", "-o", "SOURCE", str(self.point)).stdout.strip()
        self.device = Path(source).name  # loop0

    def unmount(self) -> None:
        _unmount(self.point)

    def fail(self) -> None:
        """A file-system error: ext4 remounts itself read-only, as after a disk fault."""
        Path(f"/sys/fs/ext4/{self.device}/trigger_fs_error").write_text("consentgate test\n")

    def repair(self) -> None:
        """``e2fsck -y`` the unmounted image, as an operator would after the error."""
        _run("e2fsck", "-f", "-y", str(self.image))


@contextlib.contextmanager
def ext4_image(directory: Path, size_mib: int = 16) -> Iterator[Ext4Image]:
    if shutil.which("mkfs.ext4") is None:
        _unavailable("mkfs.ext4 is not installed (Debian: e2fsprogs)")
    image = directory / "disk.ext4"
    with image.open("wb") as out:
        out.truncate(size_mib * 1024 * 1024)
    made = _run("mkfs.ext4", "-q", "-F", str(image))
    if made.returncode != 0:
        _unavailable(f"mkfs.ext4 failed: {made.stderr.strip()}")
    disk = Ext4Image(image, directory / "mnt")
    disk.mount()
    try:
        yield disk
    finally:
        disk.unmount()
