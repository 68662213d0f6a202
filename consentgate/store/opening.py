"""Open the store a configuration names: the SQLite file at ``[store] path``, or the
PostgreSQL database at ``[store] url`` (several gates sharing one store).

The one place that chooses a backend, so the web layer and the CLI never name one.
asyncpg is an optional extra (``pip install 'consentgate[postgres]'``), imported
only when a URL asks for PostgreSQL.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from consentgate.core.clock import Clock, system_clock
from consentgate.core.config import StoreConfig
from consentgate.core.dsn import mask_password
from consentgate.core.errors import StartupError
from consentgate.core.events import AuditTrail
from consentgate.core.keys import KeyRing
from consentgate.store.facade import ConsentStore


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


async def open_store(
    store: StoreConfig,
    keyring: KeyRing,
    *,
    clock: Clock = system_clock,
    audit: AuditTrail | None = None,
    create: bool = True,
) -> ConsentStore:
    """The store of ``store``; StartupError (one line) when it cannot be opened.

    ``create=False`` (the CLI's store commands) refuses a SQLite file that does not
    exist, and a PostgreSQL database whose schema is not there yet, rather than
    creating an empty store next to a typo.
    """
    if not store.url:
        return await ConsentStore.open(store.path, keyring, clock=clock, audit=audit, create=create)
    with _needs_asyncpg():
        from consentgate.store.postgres import PostgresBackend  # noqa: PLC0415 - optional extra
    backend = await PostgresBackend.open(
        store.url,
        pool_size=store.pool_size,
        statement_timeout=store.statement_timeout,
        password=store.password or None,
        migrate=create,
    )
    return ConsentStore(backend, keyring, clock=clock, audit=audit)


async def migrate_store(store: StoreConfig) -> tuple[int, int]:
    """Bring the configured store's schema up to date (``consentgate migrate``), creating
    it when absent; returns the schema versions before and after. Needs no keys."""
    if not store.url:
        from consentgate.store.sqlite import SQLiteBackend  # noqa: PLC0415 - one backend

        backend = await SQLiteBackend.open(store.path, create=True)
        await backend.close()
        return backend.schema_change
    with _needs_asyncpg():
        from consentgate.store.postgres import migrate  # noqa: PLC0415 - optional extra
    return await migrate(
        store.url, password=store.password or None, statement_timeout=store.statement_timeout
    )
