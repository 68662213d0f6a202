"""Three gates on one PostgreSQL store behind a round-robin front.

Each gate is a separate application with its own store connections, decision cache
and notification listener, as three hosts would have; they share the database and
the key directory. The front sends every new connection to the next gate, and the
browsers open a new connection per request, so consecutive steps of one sign-in
land on different gates.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from consentgate.core.signed.keyring import KeyRing, jwk_text, secret_fingerprint
from consentgate.web.appkeys import STORE
from tests.conftest import RunningGate, StartGate, StartUpstream
from tests.support.browsersim import Browser, Page
from tests.support.fakeproxy import FakeProxy
from tests.support.pgcluster import GATE_ROLE, PostgresCluster, postgres_cluster
from tests.support.roundrobin import RoundRobin
from tests.web.consent_flow.test_authorize import CLIENT_REDIRECT, auth_params

pytestmark = pytest.mark.slow  # three gates on one PostgreSQL store

__all__ = ["postgres_cluster"]  # the session fixture, used here by name

INSTANCES = 3


@dataclass
class Fleet:
    url: str
    front: RoundRobin
    gates: list[RunningGate]
    proxy: FakeProxy


@pytest.fixture
async def fleet(
    postgres_cluster: PostgresCluster, start_upstream: StartUpstream, start_gate: StartGate
) -> AsyncIterator[Fleet]:
    database = postgres_cluster.create_database(owner=GATE_ROLE)
    proxy = FakeProxy()
    upstream = await start_upstream(proxy.app())
    backends: list[tuple[str, int]] = []
    front = RoundRobin(backends)
    async with front.serve() as url:
        proxy.public_url = url
        gates = [
            await start_gate(
                upstream,
                public_url=url,
                store={"url": postgres_cluster.dsn(database, user=GATE_ROLE)},
            )
            for _ in range(INSTANCES)
        ]
        backends.extend(("127.0.0.1", int(g.url.rsplit(":", 1)[1])) for g in gates)
        yield Fleet(url, front, gates, proxy)


async def register(fleet: Fleet) -> str:
    async with (
        Browser(fleet.url, fresh_connections=True) as tool,
        tool.session.post(
            f"{fleet.url}/register",
            json={"redirect_uris": [CLIENT_REDIRECT], "client_name": "Example Client"},
        ) as response,
    ):
        assert response.status == 201
        client_id: str = (await response.json())["client_id"]
    return client_id


def last_gates(fleet: Fleet, count: int) -> list[int]:
    return fleet.front.sent_to[-count:]


async def test_a_sign_in_whose_steps_land_on_three_gates_succeeds(fleet: Fleet) -> None:
    client_id = await register(fleet)
    async with Browser(fleet.url, fresh_connections=True) as browser:
        page = await browser.authorize(auth_params(client_id))
        assert page.is_consent_page
        done = await browser.answer(page, "approve", remember=True)
        assert done.status == 303
        state = done.location_query()["state"]
        back = await browser.get(f"/auth/callback?code=idp-code&state={state}", site="cross-site")
        steps = last_gates(fleet, 3)
        assert back.status == 302, back.text[:300]
        assert back.location.startswith(CLIENT_REDIRECT + "?code=proxy-code-")
        # The remembered approval is honoured by every gate, not only the one that stored it.
        again = [await browser.authorize(auth_params(client_id)) for _ in range(INSTANCES)]
        silent = last_gates(fleet, INSTANCES)
    assert sorted(steps) == [0, 1, 2]  # authorize, answer and callback on three gates
    assert sorted(silent) == [0, 1, 2]
    assert [p.status for p in again] == [302] * INSTANCES
    assert len(fleet.proxy.reached("/auth/callback")) == 1


async def test_fifty_replays_of_one_answer_over_three_gates_approve_once(fleet: Fleet) -> None:
    client_id = await register(fleet)
    async with Browser(fleet.url, fresh_connections=True) as browser:
        page = await browser.authorize(auth_params(client_id))
        answers: list[Page] = await asyncio.gather(
            *(browser.answer(page, "approve") for _ in range(50))
        )
    statuses = sorted(a.status for a in answers)
    assert statuses == [303] + [403] * 49
    assert len(fleet.proxy.reached("/authorize")) == 1
    assert set(fleet.front.sent_to[-50:]) == {0, 1, 2}


async def test_fifty_replays_of_one_callback_over_three_gates_pass_once(fleet: Fleet) -> None:
    client_id = await register(fleet)
    async with Browser(fleet.url, fresh_connections=True) as browser:
        done = await browser.answer(await browser.authorize(auth_params(client_id)), "approve")
        state = done.location_query()["state"]
        backs = await asyncio.gather(
            *(browser.get(f"/auth/callback?code=c&state={state}") for _ in range(50))
        )
    assert sorted(b.status for b in backs) == [302] + [403] * 49
    assert len(fleet.proxy.reached("/auth/callback")) == 1


async def test_a_revocation_on_one_gate_is_honoured_by_the_others_once_notified(
    fleet: Fleet,
) -> None:
    client_id = await register(fleet)
    async with Browser(fleet.url, fresh_connections=True) as browser:
        done = await browser.answer(
            await browser.authorize(auth_params(client_id)), "approve", remember=True
        )
        assert done.status == 303
        # Every gate answers silently, so every gate has the approval in its cache.
        assert [(await browser.authorize(auth_params(client_id))).status for _ in range(3)] == [
            302
        ] * 3
        others = [g.app[STORE] for g in fleet.gates[1:]]
        seen = [store._backend.current_counter() for store in others]
        assert await fleet.gates[0].app[STORE].revoke(client_id=client_id) == 1
        # NOTIFY is asynchronous: wait (bounded) until each other gate heard of the change.
        for _ in range(100):
            now = [store._backend.current_counter() for store in others]
            if all(
                a is not None and b is not None and a > b for a, b in zip(now, seen, strict=True)
            ):
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError(f"no notification reached the other gates: {seen} -> {now}")
        asked = [await browser.authorize(auth_params(client_id)) for _ in range(3)]
    assert [p.is_consent_page for p in asked] == [True] * 3


async def test_a_lost_notification_connection_is_said_in_readyz_until_it_is_back(
    fleet: Fleet, postgres_cluster: PostgresCluster
) -> None:
    gate = fleet.gates[0]
    backend = gate.app[STORE]._backend
    pid = getattr(backend, "listener_pid", None)
    assert pid is not None
    async with Browser(gate.url) as probe:
        before = await probe.get("/_consentgate/readyz")
        # The listener is cut, and cannot come back while the role may open no new
        # connection (the pool's open connections go on serving).
        postgres_cluster.psql(f"ALTER ROLE {GATE_ROLE} CONNECTION LIMIT 0")
        try:
            postgres_cluster.psql(f"SELECT pg_terminate_backend({int(pid)})")
            for _ in range(250):
                if not gate.app[STORE].sees_other_writers:
                    break
                await asyncio.sleep(0.02)
            during = await probe.get("/_consentgate/readyz")
        finally:
            postgres_cluster.psql(f"ALTER ROLE {GATE_ROLE} CONNECTION LIMIT -1")
        for _ in range(250):  # the listener reconnects by itself (bounded wait)
            if gate.app[STORE].sees_other_writers:
                break
            await asyncio.sleep(0.02)
        after = await probe.get("/_consentgate/readyz")
    assert (before.status, "warnings" in before.text) == (200, False)
    assert during.status == 200
    assert "not notified right now" in during.text
    assert (after.status, "warnings" in after.text) == (200, False)


async def test_postgres_stopped_under_running_gates_fails_closed_and_recovers_by_itself(
    fleet: Fleet, postgres_cluster: PostgresCluster
) -> None:
    client_id = await register(fleet)
    gate = fleet.gates[0]
    async with Browser(gate.url) as browser:
        postgres_cluster.stop_server()
        try:
            refused = await browser.authorize(auth_params(client_id))
            ready = await browser.get("/_consentgate/readyz")
            relayed = await browser.get("/mcp/tools")
        finally:
            postgres_cluster.start_server()
        deadline = asyncio.get_running_loop().time() + 15
        while True:  # the pool and the listener come back by themselves
            page = await browser.authorize(auth_params(client_id))
            if page.status != 503 or asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.1)
        back_ready = await browser.get("/_consentgate/readyz")
    assert refused.status == 503
    assert "Please try again in a minute" in refused.text
    assert not fleet.proxy.reached("/authorize")  # nothing unconsented was relayed
    assert ready.status == 503 and "store: unreachable" in ready.text, ready.text
    assert relayed.status == 200  # relaying needs no store
    assert page.is_consent_page, page.text[:300]
    assert back_ready.status == 200


async def test_the_per_browser_page_limit_holds_across_gates(fleet: Fleet) -> None:
    """Eight consent pages opened by one browser over three gates: the browser keeps the
    cookies of the newest five (max_pending_per_browser), whichever gate showed them,
    and the store keeps nothing for any of them."""
    client_id = await register(fleet)
    async with Browser(fleet.url, fresh_connections=True) as browser:
        pages = [await browser.authorize(auth_params(client_id, state=f"s{n}")) for n in range(8)]
        assert {fleet.front.sent_to[-8:].count(g) for g in range(3)} <= {2, 3}
        assert len([n for n in browser.cookie_names() if n.startswith("cg_p_")]) == 5
        assert await fleet.gates[0].app[STORE].count_pending() == 0
        oldest = await browser.answer(pages[0], "approve")
        newest = await browser.answer(pages[-1], "approve")
    assert oldest.status == 403
    assert newest.status == 303


async def test_a_gate_whose_cookie_secret_differs_from_the_stores_is_not_ready(
    postgres_cluster: PostgresCluster, start_upstream: StartUpstream, start_gate: StartGate
) -> None:
    database = postgres_cluster.create_database(owner=GATE_ROLE)
    upstream = await start_upstream(FakeProxy().app())
    store = {"url": postgres_cluster.dsn(database, user=GATE_ROLE)}
    first = await start_gate(upstream, store=store, keys={"cookie_secret": "a" * 40})
    other = await start_gate(upstream, store=store, keys={"cookie_secret": "b" * 40})
    async with Browser(first.url) as probe:
        ready = await probe.get(f"{first.url}/_consentgate/readyz")
        refused = await probe.get(f"{other.url}/_consentgate/readyz")
    mine = secret_fingerprint(b"b" * 40)
    theirs = secret_fingerprint(b"a" * 40)
    assert ready.status == 200
    assert refused.status == 503
    assert (
        f"fingerprint {mine}) differs from the one the store's gates use (fingerprint {theirs})"
        in (refused.text)
    )
    assert "a" * 40 not in refused.text and "b" * 40 not in refused.text


async def test_gates_keep_their_public_keys_and_an_edited_one_makes_a_gate_not_ready(
    postgres_cluster: PostgresCluster, start_upstream: StartUpstream, start_gate: StartGate
) -> None:
    """The first gate records its public key in the store; one that
    starts after the row was replaced with another key refuses to become ready."""
    database = postgres_cluster.create_database(owner=GATE_ROLE)
    upstream = await start_upstream(FakeProxy().app())
    store = {"url": postgres_cluster.dsn(database, user=GATE_ROLE)}
    first = await start_gate(upstream, store=store)
    kid = first.app[STORE].keyring.active_kid
    stored = await first.app[STORE].stored_keys()
    assert list(stored.keys) == [kid]
    impostor = KeyRing.generate()
    key = impostor.public_key(impostor.active_kid)
    assert key is not None
    forged = jwk_text(key).replace("'", "''")
    postgres_cluster.psql(
        f"UPDATE consentgate.settings SET value = '{forged}' WHERE name = 'signing_key:{kid}'",  # noqa: S608
        database,
    )
    second = await start_gate(upstream, store=store)
    async with Browser(second.url) as probe:
        refused = await probe.get(f"{second.url}/_consentgate/readyz")
    assert refused.status == 503
    assert f"the store keeps a different public key under key id(s) {kid}" in refused.text


async def test_the_per_browser_flow_limit_holds_across_gates(fleet: Fleet) -> None:
    """Eight sign-ins started by one browser over three gates: it holds at most five flow
    bindings (max_flows_per_browser), whichever gate issued them, so only five of the
    eight callbacks pass, the newest among them. (Which older ones go depends on the
    order the browser sends its cookies in, when they were issued in the same second.)"""
    limit = fleet.gates[0].config.consent.max_flows_per_browser
    client_id = await register(fleet)
    async with Browser(fleet.url, fresh_connections=True) as browser:
        first = await browser.authorize(auth_params(client_id, state="s0"))
        done = await browser.answer(first, "approve", remember=True)
        states = [done.location_query()["state"]]
        held: list[int] = []
        for n in range(1, 8):
            relayed = await browser.authorize(auth_params(client_id, state=f"s{n}"))
            assert relayed.status == 302
            states.append(relayed.location_query()["state"])
            held.append(sum("_b_" in name for name in browser.cookie_names()))  # bindings
        assert set(fleet.front.sent_to[-7:]) == {0, 1, 2}
        backs = [await browser.get(f"/auth/callback?code=c&state={s}") for s in states]
    statuses = [b.status for b in backs]
    assert held == [2, 3, 4, 5, 5, 5, 5]
    assert sorted(statuses) == [302] * limit + [403] * (8 - limit)
    assert statuses[-1] == 302
