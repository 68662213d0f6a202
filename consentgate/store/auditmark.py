"""The audit trail's high-water mark, kept in the keys directory.

The audit table's chain and its signed head are both in the database: someone who
can write the database can delete every row and the head, and what is left verifies
as an empty trail (docs/store.md). So a gate also records, outside the database, how
far the chain reached (:class:`~consentgate.audit.trail.AuditMark`): in the keys
directory, which already records that the store was born (:mod:`consentgate.store.birth`)
and is kept and backed up apart from the data. Both verify commands and ``readyz``
compare the trail with it.

Written atomically (a new file renamed over the old, fsynced), cheaply: at most once
a :data:`MARK_INTERVAL` while the gate appends, and when the store closes; never per
row. It only moves forward, and only while the trail still holds the row it names:
a gate that appends to a trail someone emptied never moves its mark onto the new
chain, which would hide the loss.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Final

from consentgate.audit.chain import AuditMark
from consentgate.core.clock import Clock
from consentgate.core.startup_errors import StartupError
from consentgate.signing.private_files import write_private_file
from consentgate.store.store_errors import StoreUnavailable

#: The file in the keys directory that holds the mark.
MARK_NAME: Final = "audit-mark.json"
#: Seconds between two writes of the mark at most once a gate appends.
MARK_INTERVAL: Final = 1.0

_log = logging.getLogger("consentgate.store")

Check = Callable[[AuditMark], Awaitable[str | None]]


def read_mark(keys_dir: Path) -> AuditMark | str | None:
    """The mark in ``keys_dir``; None when there is none; a string saying why when a
    file is there but cannot be read (it still says that a trail existed)."""
    path = keys_dir / MARK_NAME
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        return f"the audit mark {path} cannot be read ({exc})"
    try:
        return AuditMark.from_text(text)
    except ValueError:
        return f"the audit mark {path} is not one (edited?)"


def write_mark(keys_dir: Path, mark: AuditMark) -> None:
    """Write ``mark`` atomically (StartupError when the directory cannot be written)."""
    write_private_file(keys_dir / MARK_NAME, (mark.to_text() + "\n").encode())


def forget_mark(keys_dir: Path) -> None:
    """Remove the mark: a store created anew (``consentgate store init``) has no trail."""
    with contextlib.suppress(FileNotFoundError):
        (keys_dir / MARK_NAME).unlink()


class MarkKeeper:
    """Moves the mark forward as a store appends (see the module)."""

    def __init__(self, keys_dir: Path, mark: AuditMark | None, check: Check, clock: Clock) -> None:
        self.keys_dir = keys_dir
        #: The mark in the file, as this process last read or wrote it.
        self.mark = mark
        self._check = check
        self._clock = clock
        self._pending: AuditMark | None = None
        self._written = float("-inf")
        self._task: asyncio.Task[None] | None = None
        self._said: str | None = None
        self._cannot_write = False
        #: Set to write without waiting for the interval (a flush, the close).
        self._hurry = asyncio.Event()

    def noted(self, seq: int, digest: str) -> None:
        """This store appended row ``seq`` with hash ``digest``: write it within
        :data:`MARK_INTERVAL` seconds (if the trail still holds the current mark)."""
        if self.mark is not None and seq <= self.mark.seq:
            return
        if self._pending is None or seq > self._pending.seq:
            self._pending = AuditMark(seq, digest, int(self._clock()))
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while self._pending is not None:
            delay = self._written + MARK_INTERVAL - time.monotonic()
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._hurry.wait(), delay)
            try:
                written = await self.write_pending()
            except Exception:  # a bug, not an outage: said once, the gate goes on
                _log.exception("the audit trail's mark could not be written")
                return
            if not written and self._hurry.is_set():
                return  # a flush makes one attempt, not a loop while the store is out

    async def write_pending(self) -> bool:
        """Write the newest noted row as the mark now, unless the trail went back;
        False when the store was unavailable (the row stays noted, to try again)."""
        pending, self._pending = self._pending, None
        if pending is None:
            return True
        self._written = time.monotonic()
        # Another process with the same keys directory (a worker) may have moved the
        # file's mark further: never write one lower than what is there.
        current = await asyncio.to_thread(read_mark, self.keys_dir)
        if isinstance(current, AuditMark) and (self.mark is None or current.seq > self.mark.seq):
            self.mark = current
        if self.mark is not None and pending.seq <= self.mark.seq:
            return True
        try:
            problem = None if self.mark is None else await self._check(self.mark)
        except StoreUnavailable:
            if self._pending is None:  # tried again at the next interval
                self._pending = pending
            return False
        if problem is not None:
            if problem != self._said:
                _log.error(
                    "the audit trail went back behind its mark; the mark is kept as it is",
                    extra={"fields": {"problem": problem}},
                )
                self._said = problem
            return True
        try:
            await asyncio.to_thread(write_mark, self.keys_dir, pending)
        except StartupError as exc:
            if not self._cannot_write:
                _log.warning(
                    "cannot write the audit trail's mark in the keys directory; a trail "
                    "emptied in the database would not be noticed",
                    extra={"fields": {"reason": str(exc)}},
                )
                self._cannot_write = True
            return True
        self.mark = pending
        return True

    async def flush(self) -> None:
        """Write what is noted now, without waiting for the interval."""
        self._hurry.set()
        try:
            task = self._task
            if task is not None and not task.done():
                await asyncio.shield(task)
            await self.write_pending()
        finally:
            self._hurry.clear()

    async def close(self) -> None:
        """Write what is noted (the store's close, before its backend closes)."""
        try:
            await self.flush()
        except StoreUnavailable:
            _log.warning("the audit trail's mark was not written: the store is unavailable")
        except Exception:
            _log.exception("the audit trail's mark could not be written")
