"""The seams of the app factory: one upstream object, one settings snapshot per request,
one audit trail that the handlers and the store both emit through."""

from __future__ import annotations

import asyncio
import dataclasses

import aiohttp
from aiohttp import web

from consentgate.audit.events import AuditEvent, AuditTrail
from consentgate.upstream.pool import UpstreamPool
from consentgate.web.appkeys import LIVE_SETTINGS, UPSTREAM
from tests.conftest import StartGate, StartStack, StartUpstream
from tests.support.browsersim import Browser
from tests.web.consent_flow.test_authorize import approve_new, auth_params, register


async def test_the_app_owns_one_upstream_from_its_config(
    start_upstream: StartUpstream, start_gate: StartGate
) -> None:
    upstream_url = await start_upstream(web.Application())
    gate = await start_gate(upstream_url, upstream={"read_timeout": 7, "connect_timeout": 3})
    upstream = gate.app[UPSTREAM]
    assert (upstream.base_url, upstream.read_timeout, upstream.connect_timeout) == (
        upstream_url,
        7.0,
        3.0,
    )
    assert isinstance(upstream.pool, UpstreamPool)
    async with aiohttp.ClientSession() as client, client.get(f"{gate.url}/nothing") as response:
        assert response.status == 404
    assert upstream.pool.open_connections == 1  # the relay went through this pool


async def test_a_request_keeps_the_settings_it_entered_with_while_a_swap_happens(
    start_upstream: StartUpstream, start_gate: StartGate, client: aiohttp.ClientSession
) -> None:
    """The Location rewrite of a response uses the public_url in force when the request
    entered, even when the settings are swapped while the upstream is answering."""
    entered = asyncio.Event()
    release = asyncio.Event()
    origin: list[str] = []

    async def slow_redirect(request: web.Request) -> web.Response:
        entered.set()
        await release.wait()
        return web.Response(status=302, headers={"Location": f"{origin[0]}/moved"})

    upstream_app = web.Application()
    upstream_app.router.add_get("/slow", slow_redirect)
    origin.append(await start_upstream(upstream_app))
    gate = await start_gate(origin[0])
    live = gate.app[LIVE_SETTINGS]
    old_public = gate.config.server.public_url
    new_config = dataclasses.replace(
        gate.config,
        server=dataclasses.replace(gate.config.server, public_url="https://new.example"),
    )

    async def fetch() -> str:
        async with client.get(f"{gate.url}/slow", allow_redirects=False) as response:
            return response.headers["Location"]

    in_flight = asyncio.create_task(fetch())
    await asyncio.wait_for(entered.wait(), 5)
    live.swap(new_config)
    release.set()
    assert await asyncio.wait_for(in_flight, 5) == f"{old_public}/moved"
    assert await asyncio.wait_for(fetch(), 5) == "https://new.example/moved"


async def test_handlers_and_the_store_emit_through_the_one_audit_trail(
    start_stack: StartStack,
) -> None:
    events: list[AuditEvent] = []
    stack = await start_stack(audit=AuditTrail([events.append]))
    client_id = await register(stack)
    async with Browser(stack.url) as browser:
        page = await approve_new(browser, auth_params(client_id), remember=True)
        assert page.status == 303
    names = [e.event for e in events]
    assert names == ["client_registered", "consent_asked", "consent_recorded", "consent_approved"]
    by_name = {e.event: e for e in events}
    assert by_name["consent_recorded"].fields["client_id"] == client_id
    assert by_name["consent_approved"].fields["remembered"] is True
    # Events of a request carry its id; the store's own events carry none.
    assert by_name["consent_asked"].request_id
    assert by_name["consent_approved"].request_id != by_name["consent_asked"].request_id
    assert by_name["consent_recorded"].request_id == ""
