"""Why a PostgreSQL consent store would not open, or cannot answer now, in one line.

Every problem at open (the server unreachable or not answering, the login refused,
the database missing, a permission missing for the migrations, a URL that does not
parse) becomes one :class:`~consentgate.core.startup_errors.StartupError` naming the server
as ``host:port/dbname`` and saying what to do. The URL itself never appears, and any
password the URL or the caller gave is scrubbed from the driver's text as well.

While serving, an outage (:data:`OUTAGE_ERRORS`) becomes
:class:`~consentgate.store.store_errors.StoreUnavailable` naming the server and the
driver's reason (:func:`unavailable`), so the gate fails closed without importing
a driver; anything else (a constraint violated, a bug) stays what it is.
"""

from __future__ import annotations

import asyncio
import ssl

import asyncpg

from consentgate.config.dsn import MASK
from consentgate.core.startup_errors import StartupError
from consentgate.store.store_errors import OutageKind, StoreUnavailable

#: Exceptions that mean "could not talk to the server" rather than a bug here.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
)
#: A connection the server is closing under a request: PostgreSQL sends its FATAL error
#: (57P01 on ``pg_ctl stop -m fast`` or ``pg_terminate_backend``) before it closes the
#: socket, and a query started in between finds asyncpg's protocol still consuming that
#: error: ``InternalClientError: cannot switch to state N; another operation (2) is in
#: progress`` rather than a connection error. The connection is lost either way.
CONNECTION_LOST_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,  # SQLSTATE class 08, and asyncpg's lost connection
    asyncpg.InterfaceError,  # a connection closed or closing under the call
    asyncpg.exceptions.InternalClientError,
)
#: A server that cannot answer now (down, restarting, shutting down, failing over,
#: overloaded, a statement past its timeout, a deadlock or serialisation failure to
#: retry), or a connection lost on the way, rather than a mistake of the caller: raised
#: as StoreUnavailable while serving. ``OperatorInterventionError`` is SQLSTATE class
#: 57: 57P01 (admin shutdown), 57P02 (crash shutdown), 57P03 (cannot connect now).
OUTAGE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncio.TimeoutError,
    *CONNECTION_LOST_ERRORS,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InsufficientResourcesError,
    asyncpg.exceptions.TransactionRollbackError,
    asyncpg.exceptions.ReadOnlySQLTransactionError,
    asyncpg.exceptions.LockNotAvailableError,
    asyncpg.exceptions.PostgresSystemError,
)
#: What open() turns into a StartupError (a URL asyncpg cannot parse is a ValueError).
OPEN_ERRORS: tuple[type[BaseException], ...] = (*CONNECTION_ERRORS, ValueError)
#: What may go wrong while closing a connection or the pool (then: cut it).
CLOSE_ERRORS: tuple[type[BaseException], ...] = (TimeoutError, *CONNECTION_ERRORS)


def _scrub(text: str, secrets: tuple[str | None, ...]) -> str:
    for secret in secrets:
        if secret and len(secret) >= 3:
            text = text.replace(secret, MASK)
    return " ".join(text.split())  # one line


def startup_error(
    exc: BaseException, where: str, *, timeout: float, secrets: tuple[str | None, ...] = ()
) -> StartupError:
    """One line for ``exc`` raised while opening the store at ``where``."""
    detail = _scrub(str(exc) or type(exc).__name__, secrets)
    if isinstance(exc, asyncpg.InvalidPasswordError):
        return StartupError(
            f"PostgreSQL at {where} refused the password ({detail}); "
            "check the user and password of the store URL"
        )
    if isinstance(exc, asyncpg.InvalidAuthorizationSpecificationError):
        return StartupError(
            f"PostgreSQL at {where} refused the login ({detail}); check the user of the "
            "store URL and the server's pg_hba.conf"
        )
    if isinstance(exc, asyncpg.InvalidCatalogNameError):
        database = where.rpartition("/")[2]
        return StartupError(
            f"the database {database!r} does not exist on PostgreSQL at {where} ({detail}); "
            "create it (createdb) or fix the store URL"
        )
    if isinstance(exc, asyncpg.InsufficientPrivilegeError):
        return StartupError(
            f"the consent store's role lacks a privilege on PostgreSQL at {where} ({detail}); "
            "run the migrations as the schema's owner (consentgate migrate) and grant the "
            "gate's role the privileges docs/store.md lists"
        )
    if isinstance(exc, asyncpg.TooManyConnectionsError | asyncpg.CannotConnectNowError):
        return StartupError(
            f"PostgreSQL at {where} does not accept connections now ({detail}); "
            "try again, or check max_connections"
        )
    if isinstance(exc, asyncio.TimeoutError):
        return StartupError(
            f"PostgreSQL at {where} did not answer within {timeout:g} s; check that the "
            "server runs and that the host and port of the store URL are right"
        )
    if isinstance(exc, ssl.SSLError):
        return StartupError(
            f"the TLS connection to PostgreSQL at {where} failed ({detail}); check the "
            "sslmode and certificate parameters of the store URL"
        )
    if isinstance(exc, OSError):
        return StartupError(
            f"cannot reach PostgreSQL at {where} ({detail}); check that the server runs "
            "and that the host and port of the store URL are right"
        )
    if isinstance(exc, asyncpg.ClientConfigurationError | ValueError):
        return StartupError(f"the PostgreSQL store URL for {where} is not valid ({detail})")
    return StartupError(f"cannot open the consent store in PostgreSQL at {where}: {detail}")


def outage_kind(exc: BaseException) -> OutageKind:
    """What ``readyz`` calls the outage: ``read-only`` (a replica promoted by mistake,
    or a primary demoted in a failover, SQLSTATE 25006), ``disk full`` (53100),
    ``locked`` (a lock or statement past its timeout, a deadlock: 55P03, 57014,
    40P01, or no pooled connection free in time), ``unreachable`` (the connection
    lost, closing under a query or refused, the server shutting down or ending the
    session: 08xxx, 57P01-57P05), else ``unavailable``."""
    if isinstance(exc, asyncpg.exceptions.ReadOnlySQLTransactionError):
        return "read-only"
    if isinstance(exc, asyncpg.exceptions.DiskFullError):
        return "disk full"
    if isinstance(
        exc,
        asyncpg.exceptions.LockNotAvailableError
        | asyncpg.exceptions.QueryCanceledError
        | asyncpg.exceptions.DeadlockDetectedError
        | asyncio.TimeoutError,
    ):
        return "locked"
    if isinstance(
        exc,
        OSError
        | asyncpg.PostgresConnectionError
        | asyncpg.InterfaceError
        | asyncpg.exceptions.InternalClientError
        | asyncpg.exceptions.AdminShutdownError  # 57P01
        | asyncpg.exceptions.CrashShutdownError  # 57P02
        | asyncpg.exceptions.CannotConnectNowError  # 57P03
        | asyncpg.exceptions.DatabaseDroppedError  # 57P04
        | asyncpg.exceptions.IdleSessionTimeoutError,  # 57P05
    ):
        return "unreachable"
    return "unavailable"


def unavailable(exc: BaseException, where: str) -> StoreUnavailable:
    """The outage ``exc`` while serving, as the error the gate fails closed on."""
    reason = " ".join((str(exc) or type(exc).__name__).split())
    if isinstance(exc, asyncpg.exceptions.InternalClientError):
        reason = f"the server closed the connection under a query ({reason})"
    return StoreUnavailable(f"the consent store in PostgreSQL {where}: {reason}", outage_kind(exc))
