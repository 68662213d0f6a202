"""Open the store a configuration names: the SQLite file at ``[store] path``, or the
PostgreSQL database at ``[store] url`` (several gates sharing one store).

The one place that chooses a backend, so the web layer and the CLI never name one.
asyncpg is an optional extra (``pip install 'consentgate[postgres]'``), imported
only when a URL asks for PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Final, TypeVar

from consentgate.audit.events import AuditTrail
from consentgate.config.dsn import mask_password
from consentgate.config.sections_operations import StoreConfig
from consentgate.core.attached_gates import GatesAttached
from consentgate.core.clock import Clock, system_clock
from consentgate.core.signed.keyring import KeyRing
from consentgate.core.startup_errors import StartupError
from consentgate.store.auditmark import forget_mark
from consentgate.store.birth import (
    evidence,
    leftovers,
    missing_store_error,
    remember_store,
    set_aside,
)
from consentgate.store.facade import ConsentStore
from consentgate.store.protocol import StoreBackend

_log = logging.getLogger("consentgate.store")

T = TypeVar("T")

#: Seconds between two attempts of a migration waiting for attached gates to leave.
WAIT_POLL: Final = 2.0


@contextlib.contextmanager
def _needs_asyncpg() -> Iterator[None]:
    """Around the import of the PostgreSQL backend: without the optional extra, the one
    line that says what to install."""
    try:
        yield
    except ImportError as exc:
        if exc.name != "asyncpg":
            raise
        raise StartupError(
            "store.url names a PostgreSQL database, which needs asyncpg: "
            "pip install 'consentgate[postgres]'"
        ) from None


def describe(store: StoreConfig) -> str:
    """Which store, for log lines and messages (never a password)."""
    if not store.url:
        return f"sqlite:{store.path}"
    return mask_password(store.url)


def _refusal(store: StoreConfig, keys_dir: Path | None) -> str | None:
    """The startup error's text when the configured store is missing (a SQLite file
    that does not exist; for PostgreSQL, a database without the schema) and something
    says one existed; None when a new store may be created."""
    if not store.url and store.path.exists():
        return None
    reasons = evidence(None if store.url else store.path, keys_dir)
    if not reasons:
        return None
    return str(missing_store_error(describe(store), reasons))


async def open_sqlite(
    path: str | os.PathLike[str], *, create: bool, busy_timeout: float
) -> StoreBackend:
    """The SQLite backend of the file at ``path``, opened (created or migrated);
    :meth:`ConsentStore.open <consentgate.store.facade.ConsentStore.open>` uses it."""
    from consentgate.store.sqlite import SQLiteBackend  # noqa: PLC0415 - one backend

    return await SQLiteBackend.open(path, create=create, busy_timeout=busy_timeout)


async def open_store(
    store: StoreConfig,
    keyring: KeyRing,
    *,
    clock: Clock = system_clock,
    audit: AuditTrail | None = None,
    create: bool = True,
    keys_dir: Path | None = None,
) -> ConsentStore:
    """The store of ``store``; StartupError (one line) when it cannot be opened.

    ``create=False`` (the CLI's store commands) refuses a SQLite file that does not
    exist, and a PostgreSQL database whose schema is not there yet, rather than
    creating an empty store next to a typo.

    ``keys_dir`` (the gate): a missing store where one existed is refused rather
    than created empty (:mod:`consentgate.store.birth`), and the store opened is
    recorded there when nothing is yet.
    """
    refusal = _refusal(store, keys_dir) if create else None
    if refusal is not None and not store.url:
        raise StartupError(refusal)
    if not store.url and keys_dir is not None:
        from consentgate.store.sqlite.files import check_private  # noqa: PLC0415 - one backend

        check_private(store.path)
    if not store.url:
        opened = await ConsentStore.open(
            store.path,
            keyring,
            clock=clock,
            audit=audit,
            create=create,
            busy_timeout=store.statement_timeout,
        )
    else:
        with _needs_asyncpg():
            from consentgate.store.postgres import PostgresBackend  # noqa: PLC0415 - optional

        backend = await PostgresBackend.open(
            store.url,
            pool_size=store.pool_size,
            statement_timeout=store.statement_timeout,
            password=store.password or None,
            migrate=create,
            refuse_empty=refusal,
        )
        opened = ConsentStore(backend, keyring, clock=clock, audit=audit)
    if keys_dir is not None:
        remember_store(keys_dir, describe(store), now=clock())
        try:
            problem = await opened.keep_audit_mark(keys_dir)
        except BaseException:
            await opened.close()
            raise
        if problem is not None:
            _log.error(
                "the audit trail is behind its mark in the keys directory; rows were "
                "deleted in the database (readyz says so until it is resolved)",
                extra={"fields": {"problem": problem}},
            )
    return opened


async def create_store(
    store: StoreConfig, keys_dir: Path, *, clock: Clock = system_clock, must_be_new: bool
) -> str:
    """Create the configured store even where one existed (``consentgate store init``
    with ``must_be_new``, which refuses an existing store; ``serve --create-store``
    without, which keeps one). Returns what was done, for the person who asked.

    A new SQLite file gets no stale ``-wal``/``-shm`` of the one it replaces: they
    are renamed aside (SQLite would replay another database's log into it)."""
    where = describe(store)
    if not store.url:
        if store.path.exists():
            if must_be_new:
                raise StartupError(
                    f"the consent store {where} exists; nothing changed. To start over, "
                    "stop the gate and move the file (and its -wal and -shm) away first"
                )
            return f"{where}: exists, kept"
        moved = set_aside(leftovers(store.path), now=clock())
        from consentgate.store.sqlite import SQLiteBackend  # noqa: PLC0415 - one backend

        backend = await SQLiteBackend.open(store.path, create=True)
        await backend.close()
        remember_store(keys_dir, where, now=clock(), replace=True)
        forget_mark(keys_dir)
        aside = "".join(f"; set aside {file}" for file in moved)
        return f"{where}: created an empty consent store{aside}"
    with _needs_asyncpg():
        from consentgate.store.postgres import migrate  # noqa: PLC0415 - optional extra
    before, after = await migrate(
        store.url, password=store.password or None, statement_timeout=store.statement_timeout
    )
    if before > 0:
        if must_be_new:
            raise StartupError(
                f"the PostgreSQL database {where} already has a consent store (schema "
                f"version {before}); nothing changed"
            )
        return f"{where}: exists, kept"
    remember_store(keys_dir, where, now=clock(), replace=True)
    forget_mark(keys_dir)
    return f"{where}: created an empty consent store (schema version {after})"


async def while_gates_attached(
    attempt: Callable[[], Awaitable[T]],
    wait: float,
    *,
    waiting: Callable[[GatesAttached], None] | None = None,
    poll: float = WAIT_POLL,
) -> T:
    """``attempt()`` (a migration), tried again every ``poll`` seconds for at most
    ``wait`` seconds while it is refused because older gates are still attached
    (:class:`~consentgate.core.attached_gates.GatesAttached`): a rolling stop of the
    old gates lets it through as soon as the last one left (or went stale). Each
    attempt is a transaction of its own: nothing is held while waiting. ``waiting``
    hears each refusal before the pause; the last refusal is raised, saying how long
    it waited."""
    deadline = time.monotonic() + wait
    while True:
        try:
            return await attempt()
        except GatesAttached as exc:
            left = deadline - time.monotonic()
            if left <= 0:
                if wait <= 0:
                    raise
                raise GatesAttached(f"{exc} (waited {wait:g} s)", exc.gates) from None
            if waiting is not None:
                waiting(exc)
            await asyncio.sleep(min(poll, left))


async def migrate_store(
    store: StoreConfig,
    keys_dir: Path | None = None,
    *,
    wait: float = 0.0,
    waiting: Callable[[GatesAttached], None] | None = None,
) -> tuple[int, int]:
    """Bring the configured store's schema up to date (``consentgate migrate``), creating
    it when absent and nothing says one existed (``keys_dir``: see :func:`open_store`);
    returns the schema versions before and after. Needs no keys. Refused while gates
    the new schema would break are attached; ``wait`` seconds (``--wait``) for them to
    leave first (:func:`while_gates_attached`)."""
    return await while_gates_attached(lambda: _migrate_once(store, keys_dir), wait, waiting=waiting)


async def _migrate_once(store: StoreConfig, keys_dir: Path | None) -> tuple[int, int]:
    refusal = _refusal(store, keys_dir)
    if not store.url:
        if refusal is not None:
            raise StartupError(refusal)
        from consentgate.store.sqlite import SQLiteBackend  # noqa: PLC0415 - one backend

        backend = await SQLiteBackend.open(store.path, create=True)
        await backend.close()
        return backend.schema_change
    with _needs_asyncpg():
        from consentgate.store.postgres import migrate  # noqa: PLC0415 - optional extra
    return await migrate(
        store.url,
        password=store.password or None,
        statement_timeout=store.statement_timeout,
        refuse_empty=refusal,
    )
