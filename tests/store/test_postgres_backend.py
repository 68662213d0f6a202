"""The PostgreSQL backend's own machinery: migrations under the advisory lock, schema
versions, startup errors (with the password never shown), the connection settings,
LISTEN/NOTIFY invalidation, a lost listener connection, a server that goes away,
the least-privileged role and the lookup index.

Behaviour every backend shares is in test_store.py, test_backend_contract.py and
test_tamper_property.py (run on PostgreSQL through the ``postgres`` parameter of the
``database`` fixture). Every test runs on a real server (tests/support/pgcluster.py),
in a fresh database; a wait for something asynchronous is a bounded poll
(:func:`eventually`), never a sleep that hopes.
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from consentgate import ConsentStore, KeyRing
from consentgate.core.oauth.authorization_requests import ApprovalKey
from consentgate.core.startup_errors import StartupError
from consentgate.store.postgres import PostgresBackend, describe, mask_password, migrate
from consentgate.store.postgres.postgres_backend import LOOKUP
from consentgate.store.postgres.postgres_schema import SCHEMA_VERSION
from consentgate.store.store_errors import StoreUnavailable
from tests.store.conftest import CB, T0, FakeClock, PostgresDatabase, approve, approved
from tests.support.pgcluster import (
    GATE_ROLE,
    PASSWORD,
    PASSWORD_ROLE,
    PostgresCluster,
    cluster_or_skip,
)

pytestmark = pytest.mark.slow  # PostgreSQL only: the server's own behaviour, for a whole module

WAIT = 5.0
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
async def database(postgres_cluster: PostgresCluster) -> AsyncIterator[PostgresDatabase]:
    """This file's tests are PostgreSQL's: a fresh database owned by the gate's role."""
    opened = PostgresDatabase(postgres_cluster, postgres_cluster.create_database(GATE_ROLE))
    try:
        yield opened
    finally:
        await opened.close()
        postgres_cluster.drop_database(opened.dbname)


async def eventually(check: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    """Wait until ``check()`` is true, at most ``timeout`` seconds (then fail)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        await asyncio.sleep(0.002)


async def admin_fetch(database: PostgresDatabase, sql: str, *args: Any) -> list[Any]:
    """Rows of one query as the superuser (behind every store's back)."""
    conn = await database.admin()
    try:
        return [tuple(row) for row in await conn.fetch(sql, *args)]
    finally:
        await conn.close()


async def admin_execute(database: PostgresDatabase, sql: str, *args: Any) -> None:
    """One statement as the superuser, without waiting for any store to hear of it."""
    conn = await database.admin()
    try:
        await conn.execute(sql, *args)
    finally:
        await conn.close()


def backend_of(store: ConsentStore) -> PostgresBackend:
    backend = store._backend
    assert isinstance(backend, PostgresBackend)
    return backend


def moved_past(backend: PostgresBackend, counter: int) -> Callable[[], bool]:
    """A check that ``backend`` heard of a change after ``counter``."""
    return lambda: (backend.current_counter() or 0) > counter


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- URLs in messages ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        (
            "postgresql://gate:s3cret@db.example:5432/consents?sslmode=require",
            "postgresql://gate:***@db.example:5432/consents?sslmode=require",
        ),
        ("postgres://gate:p%40ss%3Aword@db/c", "postgres://gate:***@db/c"),
        ("postgresql://gate:a@b@db/c", "postgresql://gate:***@db/c"),
        (
            "postgresql://gate@db/c?password=s3cret&sslmode=verify-full",
            "postgresql://gate@db/c?password=***&sslmode=verify-full",
        ),
        ("postgresql://:s3cret@[::1]:5433/c", "postgresql://:***@[::1]:5433/c"),
        ("postgresql://gate:s3cret@h1:5432,h2:5433/c", "postgresql://gate:***@h1:5432,h2:5433/c"),
        ("postgresql://gate@db/c", "postgresql://gate@db/c"),
        ("postgresql:///c?host=/run/postgresql", "postgresql:///c?host=/run/postgresql"),
        ("host=db user=gate password=s3cret dbname=c", "host=db user=gate password=*** dbname=c"),
        ("host=db password='s3 cret' dbname=c", "host=db password=*** dbname=c"),
    ],
)
def test_a_url_shown_anywhere_has_its_password_masked(url: str, masked: str) -> None:
    assert mask_password(url) == masked
    assert "s3cret" not in mask_password(url)


@pytest.mark.parametrize(
    ("url", "where"),
    [
        ("postgresql://gate:s3cret@db.example:6432/consents", "db.example:6432/consents"),
        ("postgresql://gate@db.example/consents", "db.example:5432/consents"),
        ("postgresql://[::1]/c", "[::1]:5432/c"),
        ("postgresql://h1:5432,h2:5433/c", "h1:5432,h2:5433/c"),
        ("postgresql:///c?host=/run/postgresql&port=5433", "/run/postgresql:5433/c"),
        ("postgresql://db", "db:5432/(default database)"),
    ],
)
def test_where_a_url_points_is_host_port_and_database_without_credentials(
    url: str, where: str
) -> None:
    assert describe(url) == where


# --- migrations and schema versions ----------------------------------------------------


async def test_five_instances_starting_on_an_empty_database_migrate_it_once(
    database: PostgresDatabase, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="consentgate"):
        backends = await asyncio.gather(*(database.backend() for _ in range(5)))
    versions = await admin_fetch(database, "SELECT version FROM schema_version ORDER BY 1")
    assert versions == [(version,) for version in range(1, SCHEMA_VERSION + 1)]
    migrated = [r for r in caplog.records if "migrated from schema version 0" in r.getMessage()]
    assert len(migrated) == 1
    assert all(backend.listening for backend in backends)
    assert len({backend.current_counter() for backend in backends}) == 1


async def test_migrate_ahead_of_a_deploy_then_open_without_migrating(
    database: PostgresDatabase,
) -> None:
    with pytest.raises(StartupError) as caught:
        await PostgresBackend.open(database.dsn, migrate=False)
    assert str(caught.value) == (
        f"the consent store in PostgreSQL {describe(database.dsn)} has schema version 0; "
        f"this consentgate needs {SCHEMA_VERSION}: run consentgate migrate"
    )
    assert await migrate(database.dsn) == (0, SCHEMA_VERSION)
    assert await migrate(database.dsn) == (SCHEMA_VERSION, SCHEMA_VERSION)
    backend = await PostgresBackend.open(database.dsn, migrate=False)
    await backend.close()


async def test_a_newer_schema_is_a_clear_startup_error(database: PostgresDatabase) -> None:
    await (await database.backend()).close()
    await admin_execute(database, "INSERT INTO schema_version (version) VALUES (99)")
    with pytest.raises(StartupError) as caught:
        await PostgresBackend.open(database.dsn)
    assert str(caught.value) == (
        f"the consent store in PostgreSQL {describe(database.dsn)} has schema version 99, "
        f"newer than the {SCHEMA_VERSION} this consentgate knows; upgrade consentgate"
    )
    with pytest.raises(StartupError, match="newer than"):
        await migrate(database.dsn)


async def test_another_applications_tables_are_left_alone(database: PostgresDatabase) -> None:
    await admin_execute(database, "CREATE TABLE public.users (name text)")
    await admin_execute(database, "INSERT INTO public.users VALUES ('carol')")
    await (await database.backend()).close()
    assert await admin_fetch(database, "SELECT name FROM public.users") == [("carol",)]


async def test_a_consentgate_schema_that_is_not_ours_is_refused_untouched(
    database: PostgresDatabase,
) -> None:
    await admin_execute(database, "CREATE SCHEMA consentgate")
    await admin_execute(database, "CREATE TABLE consentgate.things (name text)")
    with pytest.raises(StartupError, match=r"schema 'consentgate' that is not consentgate's"):
        await PostgresBackend.open(database.dsn)
    tables = await admin_fetch(
        database, "SELECT tablename FROM pg_tables WHERE schemaname = 'consentgate'"
    )
    assert tables == [("things",)]


async def test_a_database_that_cannot_hold_every_string_is_refused(
    postgres_cluster: PostgresCluster,
) -> None:
    name = postgres_cluster.new_database_name()
    postgres_cluster.psql(
        f"CREATE DATABASE {name} OWNER {GATE_ROLE} TEMPLATE template0 ENCODING 'LATIN1'"
    )
    try:
        with pytest.raises(StartupError, match="has encoding LATIN1; the consent store needs UTF8"):
            await PostgresBackend.open(postgres_cluster.dsn(name, GATE_ROLE))
    finally:
        postgres_cluster.drop_database(name)


# --- startup errors, and the password never shown ------------------------------------------


async def test_an_unreachable_server_is_a_startup_error_naming_host_and_port() -> None:
    port = free_port()
    with pytest.raises(StartupError) as caught:
        await PostgresBackend.open(f"postgresql://gate:s3cret@127.0.0.1:{port}/consents")
    message = str(caught.value)
    assert message.startswith(f"cannot reach PostgreSQL at 127.0.0.1:{port}/consents (")
    assert message.endswith(
        "check that the server runs and that the host and port of the store URL are right"
    )
    assert "s3cret" not in message
    assert "\n" not in message


async def test_a_server_that_does_not_answer_is_a_startup_error_after_the_timeout() -> None:
    with socket.socket() as silent:  # accepts connections (the backlog), never speaks
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        began = time.monotonic()
        with pytest.raises(StartupError) as caught:
            await PostgresBackend.open(f"postgresql://gate@127.0.0.1:{port}/c", connect_timeout=0.3)
        assert time.monotonic() - began < 3
    assert str(caught.value) == (
        f"PostgreSQL at 127.0.0.1:{port}/c did not answer within 0.3 s; check that the server "
        "runs and that the host and port of the store URL are right"
    )


async def test_a_wrong_password_is_a_startup_error_that_never_shows_it(
    postgres_cluster: PostgresCluster, caplog: pytest.LogCaptureFixture
) -> None:
    port = postgres_cluster.port
    wrong = "wrong-horse-battery"
    with caplog.at_level(logging.DEBUG):
        with pytest.raises(StartupError) as in_url:
            await PostgresBackend.open(
                f"postgresql://{PASSWORD_ROLE}:{wrong}@127.0.0.1:{port}/postgres"
            )
        with pytest.raises(StartupError) as as_argument:
            await PostgresBackend.open(
                f"postgresql://{PASSWORD_ROLE}@127.0.0.1:{port}/postgres", password=wrong
            )
    for caught in (in_url, as_argument):
        message = str(caught.value)
        assert message.startswith(f"PostgreSQL at 127.0.0.1:{port}/postgres refused the password (")
        assert "password authentication failed" in message
        assert wrong not in message
    assert not [r for r in caplog.records if wrong in r.getMessage()]


async def test_the_right_password_opens_the_store_from_the_url_or_the_argument(
    postgres_cluster: PostgresCluster, ring: KeyRing, caplog: pytest.LogCaptureFixture
) -> None:
    name = postgres_cluster.create_database(owner=PASSWORD_ROLE)
    encoded = PASSWORD.replace(" ", "%20")
    try:
        with caplog.at_level(logging.DEBUG):
            for url, password in (
                (
                    f"postgresql://{PASSWORD_ROLE}:{encoded}@127.0.0.1:{postgres_cluster.port}/{name}",
                    None,
                ),
                (
                    f"postgresql://{PASSWORD_ROLE}@127.0.0.1:{postgres_cluster.port}/{name}",
                    PASSWORD,
                ),
            ):
                async with ConsentStore(
                    await PostgresBackend.open(url, password=password), ring
                ) as store:
                    await approve(store)
                    assert len(await store.list()) >= 1
        assert not [
            r for r in caplog.records if PASSWORD in r.getMessage() or encoded in r.getMessage()
        ]
    finally:
        postgres_cluster.drop_database(name)


async def test_a_missing_database_is_a_startup_error_naming_it(
    postgres_cluster: PostgresCluster,
) -> None:
    with pytest.raises(StartupError) as caught:
        await PostgresBackend.open(postgres_cluster.dsn("no_such_db", GATE_ROLE))
    assert str(caught.value).startswith(
        f"the database 'no_such_db' does not exist on PostgreSQL at "
        f"127.0.0.1:{postgres_cluster.port}/no_such_db ("
    )
    assert str(caught.value).endswith("create it (createdb) or fix the store URL")


async def test_sslmode_is_passed_to_the_driver(postgres_cluster: PostgresCluster) -> None:
    """The test server has no TLS: ``sslmode=disable`` connects, ``sslmode=require``
    is refused, so the parameter reached asyncpg."""
    name = postgres_cluster.create_database(owner=GATE_ROLE)
    try:
        plain = await PostgresBackend.open(
            postgres_cluster.dsn(name, GATE_ROLE) + "?sslmode=disable"
        )
        await plain.close()
        with pytest.raises(
            StartupError, match=rf"127\.0\.0\.1:{postgres_cluster.port}/{name}.*SSL"
        ):
            await PostgresBackend.open(postgres_cluster.dsn(name, GATE_ROLE) + "?sslmode=require")
    finally:
        postgres_cluster.drop_database(name)


async def test_bad_arguments_are_refused_before_connecting() -> None:
    refused: list[dict[str, Any]] = [
        {"pool_size": 0},
        {"statement_timeout": 0},
        {"connect_timeout": -1},
    ]
    for options in refused:
        with pytest.raises(ValueError, match="pool_size must be at least 1"):
            await PostgresBackend.open("postgresql://gate@127.0.0.1:1/c", **options)


# --- connections -----------------------------------------------------------------------


async def test_the_pool_is_bounded_and_every_connection_has_the_statement_timeout(
    database: PostgresDatabase,
) -> None:
    backend = await PostgresBackend.open(database.dsn, pool_size=2, statement_timeout=0.25)
    database.backends.append(backend)
    await asyncio.gather(*(backend.ping() for _ in range(30)))
    rows = await admin_fetch(
        database,
        "SELECT application_name FROM pg_stat_activity WHERE datname = $1 AND usename = $2",
        database.dbname,
        GATE_ROLE,
    )
    names = [name for (name,) in rows]
    assert names.count("consentgate-listener") == 1
    assert 1 <= names.count("consentgate") <= 2  # pool_size
    assert await backend._read("SHOW statement_timeout", ()) == [("250ms",)]
    with pytest.raises(StoreUnavailable, match="canceling statement due to statement timeout"):
        await backend._read("SELECT pg_sleep(2)", ())
    await backend.ping()  # the connection went back to the pool usable


# --- cache coherence across instances ----------------------------------------------------


async def test_a_change_through_one_store_is_seen_by_another_once_its_counter_moved(
    database: PostgresDatabase, ring: KeyRing, clock: FakeClock
) -> None:
    first = await database.open(ring, clock=clock)
    second = await database.open(ring, clock=clock)
    try:
        assert not await second.is_approved("alice", "client-1", CB, {"openid"})  # cached "no"
        record = await approve(first)
        moved = backend_of(first).current_counter()  # its own commit: known at once
        await eventually(
            lambda: backend_of(second).current_counter() == moved, "the approval is heard"
        )
        assert await approved(second, record)  # cached "yes" now
        await first.revoke(id=record.id)
        moved = backend_of(first).current_counter()
        await eventually(
            lambda: backend_of(second).current_counter() == moved, "the revocation is heard"
        )
        assert not await approved(second, record)
    finally:
        await first.close()
        await second.close()


async def test_a_direct_sql_update_invalidates_every_cache_and_the_row_is_refused(
    database: PostgresDatabase, ring: KeyRing, clock: FakeClock
) -> None:
    first = await database.open(ring, clock=clock)
    second = await database.open(ring, clock=clock)
    try:
        record = await approve(first, scopes={"openid"})
        await database.settle()
        for store in (first, second):
            assert await approved(store, record)  # cached "yes" in both
        before = backend_of(second).current_counter()
        assert before is not None
        await admin_execute(
            database, 'UPDATE consents SET scopes = \'["admin","openid"]\' WHERE id = $1', record.id
        )
        for store in (first, second):
            await eventually(moved_past(backend_of(store), before), "the edit is heard")
            assert not await store.is_approved("alice", "client-1", CB, {"admin"})
            assert not await approved(store, record)
            assert store.tamper_events == 1  # read again, refused; then "no" is cached
    finally:
        await first.close()
        await second.close()


async def test_a_truncate_behind_the_stores_back_empties_their_caches(
    database: PostgresDatabase, ring: KeyRing, clock: FakeClock
) -> None:
    async with await database.open(ring, clock=clock) as store:
        record = await approve(store)
        assert await approved(store, record)
        await database.edit("TRUNCATE consents")
        assert not await approved(store, record)


async def test_a_forged_notification_moves_no_counter(
    database: PostgresDatabase, ring: KeyRing, clock: FakeClock
) -> None:
    """Anyone who may connect may NOTIFY: the payload is never believed, the listener
    reads the counter itself."""
    async with await database.open(ring, clock=clock) as store:
        await approve(store)
        backend = backend_of(store)
        start = backend.current_counter()
        assert start is not None
        seen: set[int | None] = set()
        await admin_execute(database, "NOTIFY consentgate_changes, '999999'")
        await admin_execute(database, "UPDATE consents SET key_id = key_id")  # a real change
        real = start + 1

        def heard() -> bool:
            seen.add(backend.current_counter())
            return backend.current_counter() == real

        await eventually(heard, "the real change is heard")
        assert 999999 not in seen
        assert seen <= {start, real}


async def test_a_deleted_counter_row_makes_writes_fail_closed_until_restored(
    database: PostgresDatabase, ring: KeyRing, clock: FakeClock
) -> None:
    """Without the counter no instance could hear of a change: every write of a consent
    or client, from a gate or from psql, fails with the command that restores it."""
    async with await database.open(ring, clock=clock) as store:
        await approve(store, "alice")
        await admin_execute(database, "DELETE FROM changes")
        with pytest.raises(StoreUnavailable, match=r"restore it: INSERT INTO consentgate\.changes"):
            await approve(store, "bob")
        with pytest.raises(asyncpg.RaiseError, match=r"consentgate\.changes has lost its row"):
            await admin_execute(database, "UPDATE consents SET key_id = key_id")
        await admin_execute(database, "INSERT INTO changes VALUES (1, 0)")
        await approve(store, "bob")
        assert len(await store.list()) == 2


async def test_the_lookup_is_served_by_the_lookup_index(database: PostgresDatabase) -> None:
    backend = await database.backend()
    await database.edit(
        "INSERT INTO consents SELECT 'id' || g, 's' || (g % 1000), 'client-' || (g % 50), "
        "'https://c' || (g % 50) || '.example/cb', '[\"openid\"]', '', 0, 2000000000, NULL, "
        "'kid', '\\x00'::bytea FROM generate_series(1, 20000) g"
    )
    await admin_execute(database, "ANALYZE consents")
    plan = await admin_fetch(
        database,
        "EXPLAIN " + LOOKUP.replace("consentgate.consents", "consents"),
        "s1",
        "client-1",
        "https://c1.example/cb",
        "",
        0,
    )
    assert "consents_lookup" in " ".join(str(row[0]) for row in plan), plan
    assert (
        len(
            await backend.active_consents(
                ApprovalKey("s1", "client-1", "https://c1.example/cb", ""), 0
            )
        )
        == 20
    )
    await backend.close()


# --- a lost listener connection, a server that goes away ---------------------------------


async def test_a_lost_listener_connection_means_cannot_tell_until_it_reconnects(
    database: PostgresDatabase, ring: KeyRing, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    store = await database.open(ring, clock=clock)
    backend = backend_of(store)
    try:
        record = await approve(store)
        # A tampered row is reported each time it is read: the tamper count tells
        # whether an answer came from the cache.
        await database.edit(
            "UPDATE consents SET expires_at = expires_at + 1 WHERE id = ?", record.id
        )
        assert not await approved(store, record)
        assert not await approved(store, record)
        assert store.tamper_events == 1  # cached
        pid = backend.listener_pid
        assert pid is not None
        # No new connection to this database until the test allows it again, so the
        # outage lasts as long as the test needs (the pool's connection stays up).
        await admin_execute(database, f"ALTER DATABASE {database.dbname} CONNECTION LIMIT 0")
        with caplog.at_level(logging.INFO, logger="consentgate"):
            await admin_execute(database, "SELECT pg_terminate_backend($1)", pid)
            await eventually(lambda: backend.current_counter() is None, "the loss is noticed")
            assert not backend.listening
            for expected in (2, 3, 4):  # every answer comes from the database now
                assert not await approved(store, record)
                assert store.tamper_events == expected
            # A change nobody hears of while the listener is down ...
            await admin_execute(database, "UPDATE consents SET key_id = key_id")
            await admin_execute(database, f"ALTER DATABASE {database.dbname} CONNECTION LIMIT -1")
            await eventually(lambda: backend.listening, "the listener reconnects")
        # ... is in the counter it read again once back
        [(counter,)] = await admin_fetch(database, "SELECT counter FROM changes")
        assert backend.current_counter() == counter
        assert backend.listener_pid not in (None, pid)
        assert not await approved(store, record)
        assert not await approved(store, record)
        assert store.tamper_events == 5  # trusted again: one read, then the cache
        lines = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "consentgate"]
        where = describe(database.dsn)
        assert lines == [
            (
                "WARNING",
                f"the consent store lost its change notifications from PostgreSQL {where}; "
                "cached answers are not used until it reconnects",
            ),
            (
                "INFO",
                f"the consent store's change notifications from PostgreSQL {where} are back; "
                "cached answers are used again",
            ),
        ]
    finally:
        await admin_execute(database, f"ALTER DATABASE {database.dbname} CONNECTION LIMIT -1")
        await store.close()


async def test_a_server_that_goes_away_makes_the_store_unavailable_until_it_is_back(
    database: PostgresDatabase, ring: KeyRing, clock: FakeClock
) -> None:
    store = await database.open(ring, clock=clock)
    backend = backend_of(store)
    cluster = database.cluster
    try:
        record = await approve(store)
        assert await approved(store, record)
        cluster.stop_server()
        try:
            await eventually(lambda: backend.current_counter() is None, "the loss is noticed")
            with pytest.raises(StoreUnavailable, match=rf"PostgreSQL {describe(database.dsn)}"):
                await approved(store, record)  # the cache is not trusted: it must ask
            with pytest.raises(StoreUnavailable):
                await store.ping()
            with pytest.raises(StoreUnavailable):
                await store.use_binding("b1", int(T0) + 60)
        finally:
            cluster.start_server()
        await eventually(lambda: backend.listening, "the listener reconnects", timeout=10)
        deadline = time.monotonic() + 10
        while True:  # the pool replaces its dead connections by itself
            try:
                await store.ping()
                break
            except StoreUnavailable:
                assert time.monotonic() < deadline, "the pool did not recover"
                await asyncio.sleep(0.05)
        assert await approved(store, record)  # nothing that committed was lost
        assert await store.use_binding("b1", int(T0) + 60)
    finally:
        await store.close()


# --- privileges ----------------------------------------------------------------------------


async def test_a_role_with_only_the_documented_privileges_runs_the_store(
    database: PostgresDatabase, ring: KeyRing, clock: FakeClock
) -> None:
    """The gate's role of docs/store.md: CONNECT, USAGE on the schema, SELECT, INSERT,
    UPDATE and DELETE on its tables; the schema owned by the migration role."""
    assert await migrate(database.dsn) == (0, SCHEMA_VERSION)  # as the owner
    runtime = f"runtime_{database.dbname}"
    await admin_execute(database, f"CREATE ROLE {runtime} LOGIN")
    try:
        for grant in (
            f"GRANT CONNECT ON DATABASE {database.dbname} TO {runtime}",
            f"GRANT USAGE ON SCHEMA consentgate TO {runtime}",
            "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA consentgate "
            f"TO {runtime}",
        ):
            await admin_execute(database, grant)
        dsn = database.cluster.dsn(database.dbname, runtime)
        backend = await PostgresBackend.open(dsn)  # migrate=True: nothing to do, no DDL
        async with ConsentStore(backend, ring, clock=clock) as store:
            record = await approve(store)
            assert await approved(store, record)
            await store.upsert_client({"client_id": "client-1", "redirect_uris": [CB]})
            assert await store.get_client("client-1") is not None
            assert await store.count_pending() == 0
            assert await store.use_binding("b1", int(T0) + 60)
            assert await store.revoke(id=record.id) == 1
            clock.advance(120)
            assert await store.purge_expired(keep_records=1) == 2
            assert (await store.verify_all()).ok
        # ... and it cannot switch the triggers off that keep every cache honest
        conn = await asyncpg.connect(dsn)
        try:
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute("ALTER TABLE consentgate.consents DISABLE TRIGGER ALL")
        finally:
            await conn.close()
    finally:
        await admin_execute(database, f"DROP OWNED BY {runtime}")
        await admin_execute(database, f"DROP ROLE {runtime}")


def test_without_postgresql_the_tests_say_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The skip (or, in CI, the failure) names the command that installs PostgreSQL."""
    from tests.support import pgcluster

    monkeypatch.setattr(
        pgcluster, "_failure", pgcluster.PostgresUnavailable(pgcluster.INSTALL_HINT)
    )
    monkeypatch.setattr(pgcluster, "_cluster", None)
    monkeypatch.delenv("CI_REQUIRE_POSTGRES", raising=False)
    with pytest.raises(
        pytest.skip.Exception, match="apt-get install --no-install-recommends postgresql"
    ):
        cluster_or_skip()
    monkeypatch.setenv("CI_REQUIRE_POSTGRES", "1")
    with pytest.raises(
        pytest.fail.Exception, match="CI_REQUIRE_POSTGRES=1 and PostgreSQL is not installed"
    ):
        cluster_or_skip()


def test_the_documented_postgresql_example_runs(
    postgres_cluster: PostgresCluster,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    text = (REPO / "docs" / "store.md").read_text(encoding="utf-8")
    [example] = [
        block
        for block in re.findall(r"```python\n(.*?)```", text, re.DOTALL)
        if "PostgresBackend" in block
    ]
    name = postgres_cluster.create_database(owner=GATE_ROLE)
    try:
        monkeypatch.setenv("CONSENTGATE_STORE_URL", postgres_cluster.dsn(name, GATE_ROLE))
        monkeypatch.chdir(tmp_path)
        exec(compile(example, "docs/store.md", "exec"), {"__name__": "__main__"})  # noqa: S102
        assert capsys.readouterr().out == "approved: True\n"
    finally:
        postgres_cluster.drop_database(name)
