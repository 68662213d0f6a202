"""Which PostgreSQL driver errors are an outage while serving, and what readyz calls them.

Every way a connection can die under a request ends as ``StoreUnavailable`` (the gate
fails closed with its 503 page) rather than a 500: the connection-exception SQLSTATEs
(class 08) and the operator-intervention ones that end a session (57P01 admin shutdown,
57P02 crash shutdown, 57P03 cannot connect now, 57P04 database dropped, 57P05 idle
session timeout; PostgreSQL's documentation, Appendix A "Error Codes"), asyncpg's own
client-side connection errors, the socket's errors and a connect that timed out. Built
from asyncpg's exception classes, no server needed; a real server stopped under load is
tests/web/test_store_faults_postgres.py.
"""

from __future__ import annotations

import asyncpg
import pytest

from consentgate.store.postgres.error_mapping import OUTAGE_ERRORS, outage_kind, unavailable

WHERE = "127.0.0.1:5432/consents"


def _sqlstate_classes(prefix: str) -> list[type[asyncpg.PostgresError]]:
    found = [
        cls
        for cls in vars(asyncpg.exceptions).values()
        if isinstance(cls, type)
        and issubclass(cls, asyncpg.PostgresError)
        and str(getattr(cls, "sqlstate", "") or "").startswith(prefix)
    ]
    assert found, prefix
    return found


CONNECTION_LOST: list[BaseException] = [
    *(cls("lost") for cls in _sqlstate_classes("08")),
    *(cls("shutting down") for cls in _sqlstate_classes("57P0")),
    asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
    asyncpg.InterfaceError("cannot call Connection.fetch(): connection has been released"),
    asyncpg.exceptions.InternalClientError(
        "cannot switch to state 15; another operation (2) is in progress"
    ),
    ConnectionResetError(104, "Connection reset by peer"),
    ConnectionRefusedError(111, "Connect call failed"),
    OSError(113, "No route to host"),
]


@pytest.mark.parametrize("error", CONNECTION_LOST, ids=lambda e: type(e).__name__)
def test_every_way_a_connection_dies_is_an_outage_called_unreachable(
    error: BaseException,
) -> None:
    assert isinstance(error, OUTAGE_ERRORS)
    assert outage_kind(error) == "unreachable"
    outage = unavailable(error, WHERE)
    assert outage.kind == "unreachable"
    assert WHERE in str(outage)


def test_a_connect_that_timed_out_is_an_outage() -> None:
    error = TimeoutError()
    assert isinstance(error, OUTAGE_ERRORS)
    assert unavailable(error, WHERE).kind == "locked"  # no answer in time: as a held lock


def test_a_query_on_a_closing_connection_says_so_in_one_line() -> None:
    error = asyncpg.exceptions.InternalClientError(
        "cannot switch to state 15; another operation (2) is in progress"
    )
    assert str(unavailable(error, WHERE)) == (
        f"the consent store in PostgreSQL {WHERE}: the server closed the connection under a "
        "query (cannot switch to state 15; another operation (2) is in progress)"
    )


def test_a_mistake_of_the_caller_stays_what_it_is() -> None:
    for error in (
        asyncpg.UniqueViolationError("duplicate key"),
        asyncpg.exceptions.UndefinedTableError("no such table"),
        asyncpg.exceptions.SyntaxOrAccessError("syntax"),
    ):
        assert not isinstance(error, OUTAGE_ERRORS)
