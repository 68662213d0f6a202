"""A newer consentgate migrates the store under a running older one (a rolling restart
on one host, or a second instance upgraded first on a shared PostgreSQL store).

The older gate's SQL was written for the schema it knows; after the migration its
statements may fail in ways that look like bugs (500s) or, worse, succeed against
tables whose meaning changed. It must notice that the schema moved past it: not
ready (``store: upgraded by a newer consentgate; restart``), and every request that
needs the store refused with the 503 page, nothing relayed (fail closed). The newer
gate is simulated by what its migration leaves: one more table and the schema version
moved on by one.
"""

from __future__ import annotations

import sqlite3

import pytest

from consentgate.store.postgres.postgres_schema import SCHEMA
from consentgate.store.postgres.postgres_schema import SCHEMA_VERSION as PG_VERSION
from consentgate.store.sqlite.sqlite_schema import SCHEMA_VERSION
from tests.conftest import StartStack
from tests.support.browsersim import Browser
from tests.support.pgcluster import GATE_ROLE, PostgresCluster, postgres_cluster
from tests.web.consent_flow.test_authorize import approve_new, auth_params, register
from tests.web.test_store_faults import assert_refused, readiness, relays
from tests.web.test_store_faults_postgres import wait_for_readiness

__all__ = ["postgres_cluster"]  # the session fixture, used here by name

UPGRADED = (503, ["store: upgraded by a newer consentgate; restart"])


def migrate_like_a_newer_gate(path: str) -> None:
    """What a newer gate's SQLite migration leaves: a table this gate does not know and
    ``user_version`` one past this gate's :data:`SCHEMA_VERSION`, in one transaction."""
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("BEGIN IMMEDIATE")
        db.execute("CREATE TABLE newer_feature (id INTEGER PRIMARY KEY, note TEXT)")
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
        db.execute("COMMIT")
    finally:
        db.close()


async def test_a_sqlite_store_migrated_by_a_newer_gate_makes_the_older_not_ready_and_refuse(
    start_stack: StartStack,
) -> None:
    stack = await start_stack()
    client_id = await register(stack)
    async with Browser(stack.url) as alice, Browser(stack.url) as bob:
        assert (await approve_new(alice, auth_params(client_id))).status == 303
        asked = await bob.authorize(auth_params(client_id))
        assert asked.is_consent_page
        relayed_before = relays(stack)
        assert await readiness(stack.url) == (200, [])

        migrate_like_a_newer_gate(str(stack.gate.config.store.path))

        assert await readiness(stack.url) == UPGRADED
        assert_refused(await bob.answer(asked, "approve", remember=True))
        assert_refused(await alice.authorize({**auth_params(client_id), "state": "again"}))
        assert_refused(await bob.authorize({**auth_params(client_id), "state": "new"}))
        assert relays(stack) == relayed_before  # nothing relayed past a store it cannot read
        assert await readiness(stack.url) == UPGRADED  # until a restart


@pytest.mark.slow  # a PostgreSQL cluster
async def test_a_postgres_store_migrated_by_a_newer_gate_makes_the_older_not_ready_and_refuse(
    start_stack: StartStack, postgres_cluster: PostgresCluster
) -> None:
    database = postgres_cluster.create_database(owner=GATE_ROLE)
    stack = await start_stack(store={"url": postgres_cluster.dsn(database, user=GATE_ROLE)})
    client_id = await register(stack)
    async with Browser(stack.url) as alice, Browser(stack.url) as bob:
        assert (await approve_new(alice, auth_params(client_id))).status == 303
        asked = await bob.authorize(auth_params(client_id))
        assert asked.is_consent_page
        relayed_before = relays(stack)
        assert await readiness(stack.url) == (200, [])

        # What a newer gate's migration leaves, as the schema's owner would run it.
        postgres_cluster.psql(
            f"CREATE TABLE {SCHEMA}.newer_feature (id integer PRIMARY KEY, note text); "  # noqa: S608
            f"INSERT INTO {SCHEMA}.schema_version (version) VALUES ({PG_VERSION + 1})",
            database,
        )

        # Noticed at the next readiness write probe (its success is kept a few seconds).
        await wait_for_readiness(stack.url, UPGRADED)
        assert_refused(await bob.answer(asked, "approve", remember=True))
        assert_refused(await alice.authorize({**auth_params(client_id), "state": "again"}))
        assert_refused(await bob.authorize({**auth_params(client_id), "state": "new"}))
        assert relays(stack) == relayed_before
        assert await readiness(stack.url) == UPGRADED  # until a restart


@pytest.mark.slow  # a PostgreSQL cluster
async def test_a_statement_a_newer_postgres_schema_refuses_is_a_503_at_once_not_a_500(
    start_stack: StartStack, postgres_cluster: PostgresCluster
) -> None:
    """Before the next readiness probe: the newer schema refuses the older gate's insert
    (a column it does not fill), and the gate asks whether the schema moved before it
    calls that a bug."""
    database = postgres_cluster.create_database(owner=GATE_ROLE)
    stack = await start_stack(store={"url": postgres_cluster.dsn(database, user=GATE_ROLE)})
    client_id = await register(stack)
    async with Browser(stack.url) as bob:
        asked = await bob.authorize(auth_params(client_id))
        assert asked.is_consent_page
        assert await readiness(stack.url) == (200, [])  # kept a few seconds: no probe now
        relayed_before = relays(stack)

        postgres_cluster.psql(
            f"ALTER TABLE {SCHEMA}.consents ADD COLUMN newer text NOT NULL DEFAULT ''; "  # noqa: S608
            f"ALTER TABLE {SCHEMA}.consents ALTER COLUMN newer DROP DEFAULT; "
            f"INSERT INTO {SCHEMA}.schema_version (version) VALUES ({PG_VERSION + 1})",
            database,
        )

        assert_refused(await bob.answer(asked, "approve", remember=True))
        assert relays(stack) == relayed_before
        assert await readiness(stack.url) == UPGRADED
