"""Liveness and readiness under the gate's prefix."""

from __future__ import annotations

import sqlite3

import aiohttp
from aiohttp import web

from consentgate.audit.events import AuditEvent
from consentgate.audit.trail import HEAD_SETTING
from consentgate.web.appkeys import STORE
from tests.conftest import StartGate, StartUpstream, bound_socket


async def test_healthz_answers_even_when_the_upstream_is_down(
    start_gate: StartGate, client: aiohttp.ClientSession
) -> None:
    sock = bound_socket()
    dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    sock.close()
    gate = await start_gate(dead)
    async with client.get(f"{gate.url}/_consentgate/healthz") as response:
        assert response.status == 200
        assert await response.json() == {"status": "ok"}
    async with client.get(f"{gate.url}/_consentgate/readyz") as response:
        assert response.status == 503
        document = await response.json()
        assert document["status"] == "unavailable"
        assert any(reason.startswith("upstream: unreachable") for reason in document["reasons"])


async def test_readyz_is_ready_when_upstream_answers_any_status(
    start_upstream: StartUpstream, start_gate: StartGate, client: aiohttp.ClientSession
) -> None:
    upstream = await start_upstream(web.Application())  # 404 for everything: still reachable
    gate = await start_gate(upstream)
    async with client.get(f"{gate.url}/_consentgate/readyz") as response:
        assert response.status == 200
        assert (await response.json())["status"] == "ready"


async def test_probe_paths_are_never_relayed_in_any_spelling(
    start_upstream: StartUpstream, start_gate: StartGate, client: aiohttp.ClientSession
) -> None:
    reached: list[str] = []

    async def anything(request: web.Request) -> web.Response:
        reached.append(request.raw_path)
        return web.Response(text="upstream")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", anything)
    gate = await start_gate(await start_upstream(app))
    from tests.support import rawhttp

    for target in ("/_consentgate/unknown", "/_CONSENTGATE/healthz", "/x/../_consentgate/readyz"):
        response = await rawhttp.request(gate.url, target)
        assert response.status in (200, 404), target
    # The gate's own metadata reads (at start, in readyz) are not relays of these paths.
    assert [path for path in reached if path != "/.well-known/oauth-authorization-server"] == []


async def test_readyz_is_not_ready_when_the_audit_trail_was_emptied_behind_its_mark(
    start_upstream: StartUpstream, start_gate: StartGate, client: aiohttp.ClientSession
) -> None:
    gate = await start_gate(await start_upstream(web.Application()))
    store = gate.app[STORE]
    for n in range(3):
        store.audit.emit(AuditEvent("key_rotated", "rotated", fields={"active_key": f"k{n}"}))
    await store.flush_audit_mark()
    assert store.path is not None
    with sqlite3.connect(store.path) as conn:  # someone with write access to the database
        conn.execute("DELETE FROM audit")
        conn.execute("DELETE FROM settings WHERE name = ?", (HEAD_SETTING,))
    conn.close()
    async with client.get(f"{gate.url}/_consentgate/readyz") as response:
        assert response.status == 503
        (reason,) = (await response.json())["reasons"]
    assert reason.startswith("audit trail: the keys directory records")
    assert "reached row 3" in reason and "the trail is empty" in reason
