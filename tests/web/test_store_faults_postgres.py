"""The PostgreSQL store under faults: a database that turns read-only,
as a replica promoted by mistake or a primary demoted in a failover leaves it.
(A stopped server is tests/web/test_instances.py; a full disk has no loopback
stand-in here that does not fill the machine's own disk.)"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

import pytest

from tests.conftest import StartStack
from tests.support.browsersim import Browser, Page
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


# --- the server shut down under load -----------------------------------------------------------

#: Concurrent people signing in while the server stops, how many stops, and the rounds each
#: may run: the
#: test ends by itself even when the gate hangs.
SIGNING_IN = 12
STOPS = 3
MAX_ROUNDS = 40
#: Rounds every person runs after the stop has returned, so each meets the stopped server.
ROUNDS_AFTER_STOP = 3
#: What a person may get: the consent page (200), the approval relayed (303) or a
#: remembered one (302), or "try again shortly" (503); never a 500.
FAIL_CLOSED_STATUSES = frozenset({200, 302, 303, 503})


@dataclass
class Outcome:
    """What one person saw: every status, the 503 pages, and the approvals relayed."""

    statuses: list[int] = field(default_factory=list)
    refusals: list[Page] = field(default_factory=list)
    relayed: int = 0
    after_stop: int = 0


async def sign_in_repeatedly(
    url: str, client_id: str, outcome: Outcome, stopped: asyncio.Event
) -> None:
    """One person after another (a new browser each round, so each answer is read from
    and written to the database, never only the decision cache) opens a consent page and
    approves it, until ``ROUNDS_AFTER_STOP`` rounds after ``stopped`` (bounded)."""
    for round_ in range(MAX_ROUNDS):
        if stopped.is_set():
            if outcome.after_stop >= ROUNDS_AFTER_STOP:
                return
            outcome.after_stop += 1
        async with Browser(url) as person:
            page = await person.authorize(auth_params(client_id, state=f"round-{round_}"))
            pages = [page]
            if page.is_consent_page:
                pages.append(await person.answer(page, "approve", remember=True))
        for seen in pages:
            outcome.statuses.append(seen.status)
            if seen.status == 503:
                outcome.refusals.append(seen)
            if seen.status == 303:
                outcome.relayed += 1


async def stop_under_load(
    cluster: PostgresCluster, url: str, client_id: str
) -> tuple[list[Outcome], tuple[int, list[str]]]:
    """Stop the server fast while ``SIGNING_IN`` people sign in; start it again. Returns
    what they saw and readyz once the stop had returned."""
    outcomes = [Outcome() for _ in range(SIGNING_IN)]
    stopped = asyncio.Event()
    people = [
        asyncio.ensure_future(sign_in_repeatedly(url, client_id, outcome, stopped))
        for outcome in outcomes
    ]
    try:
        deadline = asyncio.get_running_loop().time() + 30
        while sum(len(o.statuses) for o in outcomes) < 2 * SIGNING_IN:  # under load
            assert asyncio.get_running_loop().time() < deadline, "no traffic"
            await asyncio.sleep(0.02)
        await asyncio.to_thread(cluster.stop_server, "fast")
        stopped.set()
        try:
            await asyncio.wait_for(asyncio.gather(*people), 120)
            during = await readiness(url)
        finally:
            await asyncio.to_thread(cluster.start_server)
    finally:
        for task in people:
            task.cancel()
        await asyncio.gather(*people, return_exceptions=True)
    return outcomes, during


async def test_postgres_stopped_fast_under_load_answers_503_never_500_and_recovers(
    start_stack: StartStack,
    postgres_cluster: PostgresCluster,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """``pg_ctl stop -m fast`` ends every session (57P01), refuses new ones (57P03) and
    closes connections a query was about to use: whichever way a connection dies under a
    request, the gate fails closed with its 503 page, never a 500 with a traceback
    (docs/store.md, "When the store is unavailable"). Stopped ``STOPS`` times, each time
    ready again once the server is back."""
    database = postgres_cluster.create_database(owner=GATE_ROLE)
    stack = await start_stack(store={"url": postgres_cluster.dsn(database, user=GATE_ROLE)})
    client_id = await register(stack)
    outcomes: list[Outcome] = []
    readiness_while_stopped = []
    with caplog.at_level(logging.WARNING):
        for _ in range(STOPS):
            seen, during = await stop_under_load(postgres_cluster, stack.url, client_id)
            outcomes.extend(seen)
            readiness_while_stopped.append(during)
            await wait_for_readiness(stack.url, (200, []), seconds=30)
        async with Browser(stack.url) as after:
            back = await approve_new(after, auth_params(client_id, state="after"))

    statuses = [status for outcome in outcomes for status in outcome.statuses]
    unexpected = [status for status in statuses if status not in FAIL_CLOSED_STATUSES]
    assert not unexpected, f"{len(unexpected)} of {len(statuses)} answers: {unexpected}"
    refusals = [page for outcome in outcomes for page in outcome.refusals]
    assert refusals  # the stops were met under load
    for page in refusals:
        assert_refused(page)
    tracebacks = [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]
    assert not tracebacks, [(r.name, r.getMessage()) for r in tracebacks[:3]]
    assert readiness_while_stopped == [(503, ["store: unreachable"])] * STOPS
    # Nothing unconsented reached the upstream: one relay per approval answered 303.
    assert relays(stack) == sum(outcome.relayed for outcome in outcomes) + 1
    assert back.status == 303
