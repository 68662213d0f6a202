"""The PostgreSQL store under faults (issue 16): a database that turns read-only,
as a replica promoted by mistake or a primary demoted in a failover leaves it.
(A stopped server is tests/web/test_instances.py; a full disk has no loopback
stand-in here that does not fill the machine's own disk.)"""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import StartStack
from tests.support.browsersim import Browser
from tests.support.pgcluster import GATE_ROLE, PostgresCluster, postgres_cluster
from tests.web.consent_flow.test_authorize import approve_new, auth_params, register
from tests.web.test_store_faults import assert_refused, honoured, readiness, relays

pytestmark = pytest.mark.slow  # stops and restarts a PostgreSQL cluster

__all__ = ["postgres_cluster"]  # the session fixture, used here by name


def drop_gate_connections(cluster: PostgresCluster, database: str) -> None:
    """End the gate's sessions, so its pool reconnects with the database's new settings."""
    query = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{}'"
    cluster.psql(query.format(database) + " AND pid <> pg_backend_pid()")


async def wait_for_readiness(url: str, wanted: tuple[int, list[str]], seconds: float = 15) -> None:
    """Poll readyz (bounded) until it answers ``wanted``: the pool notices dropped
    connections one request at a time."""
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        answer = await readiness(url)
        if answer == wanted:
            return
        assert asyncio.get_running_loop().time() < deadline, answer
        await asyncio.sleep(0.2)


async def test_a_read_only_postgres_is_named_refuses_new_approvals_and_recovers(
    start_stack: StartStack, postgres_cluster: PostgresCluster
) -> None:
    database = postgres_cluster.create_database(owner=GATE_ROLE)
    stack = await start_stack(store={"url": postgres_cluster.dsn(database, user=GATE_ROLE)})
    client_id = await register(stack)
    async with Browser(stack.url) as alice, Browser(stack.url) as bob:
        assert (await approve_new(alice, auth_params(client_id))).status == 303
        relayed_before = relays(stack)

        postgres_cluster.psql(f"ALTER DATABASE {database} SET default_transaction_read_only = on")
        drop_gate_connections(postgres_cluster, database)
        try:
            await wait_for_readiness(stack.url, (503, ["store: read-only"]))
            asked = await bob.authorize(auth_params(client_id))
            assert asked.is_consent_page  # showing a page writes nothing
            assert_refused(await bob.answer(asked, "approve", remember=True))
            assert_refused(await bob.answer(asked, "deny"))
            assert relays(stack) == relayed_before  # nothing unconsented reached upstream
            # What was approved can still be read, so it is still honoured.
            assert await honoured(alice, client_id)
        finally:
            postgres_cluster.psql(f"ALTER DATABASE {database} RESET default_transaction_read_only")
            drop_gate_connections(postgres_cluster, database)
        await wait_for_readiness(stack.url, (200, []))
        assert await honoured(alice, client_id)  # the approval made before is kept
        assert (await bob.answer(asked, "approve", remember=True)).status == 303  # that page
