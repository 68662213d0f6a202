"""``iss`` on the error redirects the gate makes itself (RFC 9207 §2, MCP 2026-07-28).

A client compares ``iss`` byte for byte with the ``issuer`` of the metadata it read
through the gate, and does not act on an error whose ``iss`` differs or is missing.
So each test reads that document as a client does, through the gate, and compares.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

from consentgate.audit.events import AuditEvent, AuditTrail
from tests.conftest import ErrorLog, FakeClock, Stack, StartGate, StartUpstream
from tests.support.browsersim import Browser
from tests.support.fakeproxy import FakeProxy
from tests.web.consent_flow.test_authorize import CLIENT_REDIRECT, auth_params, register


@dataclass
class IssuerProxy(FakeProxy):
    """A proxy whose metadata is chosen by the test: an issuer built from the
    forwarded headers (as an upstream without a configured base URL does), a fixed
    one, or no document at all (``issuer`` None: 503)."""

    from_forwarded_headers: bool = False
    available: bool = True

    async def _metadata(self, request: web.Request) -> web.Response:
        if not self.available:
            return web.Response(status=503, text="starting")
        issuer = self.issuer
        if self.from_forwarded_headers:
            proto = request.headers.get("X-Forwarded-Proto", request.scheme)
            host = request.headers.get("X-Forwarded-Host", request.host)
            issuer = f"{proto}://{host}/"
        return web.json_response({"issuer": issuer, "authorization_endpoint": "/authorize"})


async def start(
    start_upstream: StartUpstream, start_gate: StartGate, proxy: IssuerProxy, **options: Any
) -> Stack:
    upstream = await start_upstream(proxy.app())
    gate = await start_gate(upstream, **options)
    proxy.public_url = gate.url
    return Stack(proxy, gate)


async def issuer_seen_by_clients(stack: Stack) -> str:
    """The ``issuer`` of the metadata a client reads through the gate, as sent."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{stack.url}/.well-known/oauth-authorization-server") as response,
    ):
        assert response.status == 200
        issuer: str = json.loads(await response.read())["issuer"]
    return issuer


async def deny(stack: Stack) -> tuple[int, str, dict[str, str], str]:
    client_id = await register(stack)
    async with Browser(stack.url) as browser:
        page = await browser.authorize(auth_params(client_id))
        denied = await browser.answer(page, "deny")
    return denied.status, denied.location, denied.location_query(), denied.text


async def test_a_deny_names_the_issuer_an_upstream_builds_from_the_forwarded_host(
    start_upstream: StartUpstream, start_gate: StartGate
) -> None:
    """The upstream advertises the origin the gate tells it clients use; the gate reads
    its own copy the way a client's request through it asks, so both see one issuer."""
    proxy = IssuerProxy(from_forwarded_headers=True)
    stack = await start(start_upstream, start_gate, proxy)
    seen = await issuer_seen_by_clients(stack)
    assert seen == f"{stack.url}/"

    status, location, query, _ = await deny(stack)

    assert status == 303 and location.startswith(CLIENT_REDIRECT + "?")
    assert query["iss"] == seen


async def test_a_trailing_slash_in_the_issuer_is_kept(
    start_upstream: StartUpstream, start_gate: StartGate
) -> None:
    stack = await start(start_upstream, start_gate, IssuerProxy(issuer="https://as.example/"))

    _, _, query, _ = await deny(stack)

    assert query["iss"] == await issuer_seen_by_clients(stack) == "https://as.example/"


async def test_an_issuer_with_a_path_is_kept_as_it_is(
    start_upstream: StartUpstream, start_gate: StartGate
) -> None:
    issuer = "https://as.example/tenants/Acme%20One"
    stack = await start(start_upstream, start_gate, IssuerProxy(issuer=issuer))

    _, _, query, _ = await deny(stack)

    assert query["iss"] == await issuer_seen_by_clients(stack) == issuer


async def test_without_a_known_issuer_a_deny_is_a_local_page_not_a_redirect_without_iss(
    start_upstream: StartUpstream, start_gate: StartGate
) -> None:
    """RFC 9207 §2.4: a client that knows the server sends ``iss`` rejects a response
    without it; MCP clients must not act on it. The gate cannot name the issuer, so
    the person gets the local "denied" page, and the event says why."""
    events: list[AuditEvent] = []
    proxy = IssuerProxy(available=False)
    stack = await start(
        start_upstream, start_gate, proxy, clock=FakeClock(), audit=AuditTrail([events.append])
    )

    status, location, _, text = await deny(stack)

    assert (status, location) == (200, "")
    assert "denied" in text.lower()
    (withheld,) = [e for e in events if e.event == "error_redirect_withheld"]
    assert withheld.severity == "warning"
    assert withheld.fields["error"] == "access_denied"
    assert withheld.fields["reason"] == "issuer_unknown"
    assert withheld.fields["redirect_uri"] == CLIENT_REDIRECT
    assert stack.proxy.reached("/authorize") == []


async def test_prompt_none_without_a_known_issuer_is_a_local_page(
    error_log: ErrorLog, start_upstream: StartUpstream, start_gate: StartGate
) -> None:
    proxy = IssuerProxy(available=False)  # not yet readable when the gate starts
    clock = FakeClock()
    stack = await start(start_upstream, start_gate, proxy, clock=clock)
    client_id = await register(stack)
    async with Browser(stack.url) as browser:
        page = await browser.authorize(auth_params(client_id))
        await browser.answer(page, "approve", remember=True)
        refused = await browser.authorize(
            {**auth_params(client_id), "prompt": "none"}, site="cross-site"
        )
        # Once the metadata is back (and the short pause after a failed read is over),
        # the error is redirected with the issuer.
        proxy.available = True
        clock.advance(10)
        redirected = await browser.authorize(
            {**auth_params(client_id), "prompt": "none"}, site="cross-site"
        )

    assert (refused.status, refused.location) == (400, "")
    assert "consent_required" in error_log(refused)
    assert redirected.status == 303
    assert redirected.location_query()["iss"] == proxy.issuer


async def test_the_issuer_read_at_start_names_errors_while_the_metadata_is_away(
    start_upstream: StartUpstream, start_gate: StartGate
) -> None:
    """``serve`` reads the metadata at start (its endpoints are compared): that read
    gives the issuer too, so a later outage of the metadata alone costs no redirect."""
    proxy = IssuerProxy(issuer="https://as.example/")
    stack = await start(start_upstream, start_gate, proxy, clock=FakeClock())
    proxy.available = False

    status, _, query, _ = await deny(stack)

    assert status == 303 and query["iss"] == "https://as.example/"


async def test_an_issuer_the_upstream_changed_is_followed_at_the_next_readiness_probe(
    start_upstream: StartUpstream, start_gate: StartGate
) -> None:
    proxy = IssuerProxy(issuer="https://as.example")
    stack = await start(start_upstream, start_gate, proxy)
    assert (await deny(stack))[2]["iss"] == "https://as.example"

    proxy.issuer = "https://as.example/"  # the upstream restarted with a new version
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{stack.url}/_consentgate/readyz") as ready,
    ):
        assert ready.status == 200

    assert (await deny(stack))[2]["iss"] == await issuer_seen_by_clients(stack)
    assert (await deny(stack))[2]["iss"] == "https://as.example/"
