"""Backing up the SQLite consent store and restoring it (``consentgate store backup``
and ``store restore``), keeping the keys directory's records of the store true.

The copy itself is :mod:`consentgate.store.sqlite.snapshots` (the online backup
API). A restore must leave a store the gate starts on and every verification
passes on, or change nothing:

* the file must be a consentgate store (its tables, a schema version this code
  knows, no damaged page);
* it must belong to this keys directory: a working copy is opened with its key
  ring, every record and the audit chain must verify (a store signed by other keys
  fails here, named), and the cookie secret's fingerprint it keeps must be this
  directory's (a gate with another secret is never ready,
  :mod:`consentgate.store.parts.publication`);
* it goes in only while no other process has the store open (a running gate);
* the keys directory's records then describe the restored store: the birth record
  (:mod:`consentgate.store.birth`) names it, and the audit trail's mark
  (:mod:`consentgate.store.auditmark`) is set to the restored trail's last row, as
  the operator chose to go back to it. Without that, an older copy would be "behind
  its mark" and the gate would never be ready. What the copy lacks (rows after it
  was taken, revocations included) is said, in rows, by the result.

PostgreSQL stores are backed up with ``pg_dump`` and restored with ``pg_restore``
(docs/store.md, "Backups"), then checked with ``consents verify`` and ``audit verify``.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from pathlib import Path

from consentgate.audit.chain import AuditMark
from consentgate.config.sections_operations import StoreConfig
from consentgate.core.clock import Clock, system_clock
from consentgate.core.signed.keyring import KeyRing
from consentgate.core.startup_errors import StartupError
from consentgate.store.auditmark import forget_mark, read_mark
from consentgate.store.birth import leftovers, set_aside
from consentgate.store.facade import ConsentStore
from consentgate.store.opening import describe, open_store
from consentgate.store.sqlite.snapshots import (
    CopyFacts,
    backup_to,
    facts,
    put_back,
    staged_copy,
)

#: The message for a PostgreSQL store: the database's own tools do it.
POSTGRES_BACKUP = (
    "store.url names a PostgreSQL database: back it up with pg_dump and restore it "
    "with pg_restore, then run consentgate consents verify and consentgate audit "
    "verify (docs/store.md, Backups); store backup and store restore copy a "
    "SQLite store only"
)


def _sqlite_only(store: StoreConfig) -> Path:
    if store.url:
        raise StartupError(POSTGRES_BACKUP)
    return store.path


async def backup_store(store: StoreConfig, out: Path) -> CopyFacts:
    """Write a consistent copy of the configured SQLite store to ``out``; what it holds."""
    return await asyncio.to_thread(backup_to, _sqlite_only(store), out)


@dataclass(frozen=True, slots=True)
class RestoreReport:
    """What a restore put back, and how the audit trail's mark moved."""

    store: str
    copy: CopyFacts
    mark_before: int | None
    mark_after: int | None

    def lines(self) -> list[str]:
        said = [f"{self.store}: restored {self.copy.describe()}"]
        before, after = self.mark_before, self.mark_after
        if before is not None and (after is None or after < before):
            lost = before - (after or 0)
            said.append(
                f"the audit trail's mark moved back from row {before} to row {after or 0}: "
                f"{lost} audit row(s) written after this backup are not in it, and any "
                "approval revoked after it was taken is active again: revoke it again"
            )
        return said


async def _check_copy(staged: Path, keyring: KeyRing, fingerprint: str, source: Path) -> None:
    """Refuse a working copy that this keys directory did not sign, or whose gates used
    another cookie secret (StartupError naming what differs)."""
    async with await ConsentStore.open(staged, keyring, create=False) as copy:
        report = await copy.verify_all()
        chain = await copy.verify_audit()
        stored = await copy.stored_keys()
        kept = await copy.claim_cookie_fingerprint(fingerprint)
    foreign = sorted(set(stored.keys) - set(keyring.kids))
    if report.failures or not chain.ok:
        first = report.failures[0].reason if report.failures else chain.problem
        keys = f" (it keeps key(s) {', '.join(foreign)}, which this keys directory lacks)"
        raise StartupError(
            f"--from {source}: {len(report.failures)} of {report.checked} record(s) "
            f"{'and the audit trail ' if not chain.ok else ''}do not verify with this "
            f"keys directory{keys if foreign else ''}: {first}. It is another gate's "
            "store, or edited; nothing changed"
        )
    if kept != fingerprint:
        raise StartupError(
            f"--from {source}: its gates used another cookie secret (fingerprint {kept}, "
            f"this keys directory's is {fingerprint}); a gate would not be ready on it. "
            "Restore it with the keys directory it was backed up with; nothing changed"
        )


async def restore_store(
    store: StoreConfig,
    keys_dir: Path,
    keyring: KeyRing,
    source: Path,
    *,
    cookie_fingerprint: str,
    clock: Clock = system_clock,
) -> RestoreReport:
    """Put the backup at ``source`` back as the configured SQLite store (see the
    module: checked first, put back only while no gate has the store open, the keys
    directory's records made to describe it)."""
    target = _sqlite_only(store)
    copy = await asyncio.to_thread(facts, source, what="--from")
    if not target.parent.is_dir():
        raise StartupError(f"the directory of the consent store {target} does not exist")
    staged = await asyncio.to_thread(staged_copy, source, target)
    try:
        await _check_copy(staged, keyring, cookie_fingerprint, source)
        if not target.exists():
            set_aside(leftovers(target), now=clock())
        await asyncio.to_thread(put_back, staged, target)
    finally:
        for file in (staged, *leftovers(staged)):
            file.unlink(missing_ok=True)
    before = read_mark(keys_dir)
    forget_mark(keys_dir)
    # Opened as the gate opens it: the birth record is written when missing, and the
    # trail's newest row becomes the mark (written when the store closes).
    async with await open_store(store, keyring, clock=clock, create=False, keys_dir=keys_dir):
        pass
    after = read_mark(keys_dir)
    with contextlib.suppress(OSError):
        target.chmod(0o600)
    return RestoreReport(
        describe(store),
        copy,
        before.seq if isinstance(before, AuditMark) else None,
        after.seq if isinstance(after, AuditMark) else None,
    )
