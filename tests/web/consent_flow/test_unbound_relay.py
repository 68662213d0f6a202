"""An approved authorization the gate relays but cannot bind to the browser: the
upstream's redirect is not recognised as a hand-off to its IdP (another origin, one
``state``), so the IdP's callback will be refused. The operator is told at once, with
the likely cause, and a counter moves; the browser still gets what the upstream said.

Real gates in front of aiohttp upstreams on loopback, a browser simulator approving.
"""

from __future__ import annotations

import logging
import urllib.parse

import pytest
from aiohttp import web

from consentgate.web.appkeys import METRICS
from tests.conftest import Stack, StartGate, StartUpstream
from tests.support.browsersim import Browser
from tests.support.fakeproxy import IDP, UPSTREAM_CLIENT_ID, FakeProxy
from tests.web.consent_flow.test_authorize import approve_new, auth_params, register


class StatelessIdpProxy(FakeProxy):
    """Hands off to an IdP whose authorization URL carries its transaction under
    another name than ``state``."""

    async def _authorize(self, request: web.Request) -> web.Response:
        query = {"client_id": UPSTREAM_CLIENT_ID, "transaction": "t-1", "response_type": "code"}
        raise web.HTTPFound(f"{IDP}?{urllib.parse.urlencode(query)}")


class OwnLoginProxy(FakeProxy):
    """Sends the browser to a login page of its own origin (which the gate rewrites to
    its public origin) rather than to an IdP."""

    async def _authorize(self, request: web.Request) -> web.Response:
        raise web.HTTPFound(f"{request.scheme}://{request.host}/login?state=t-1")


def unbound_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        record
        for record in caplog.records
        if record.levelno == logging.WARNING and "without a flow binding" in record.getMessage()
    ]


async def approve_once(
    proxy: FakeProxy, start_upstream: StartUpstream, start_gate: StartGate
) -> tuple[int, str, str]:
    """One approval through a gate in front of ``proxy``: the browser's status, its
    Location, and the gate's exposition afterwards."""
    gate = await start_gate(await start_upstream(proxy.app()))
    proxy.public_url = gate.url

    client_id = await register(Stack(proxy, gate), client_name="Example")
    async with Browser(gate.url) as browser:
        done = await approve_new(browser, auth_params(client_id))
    exposition = gate.app[METRICS].exposition().decode()
    return done.status, done.location, exposition


@pytest.mark.parametrize(
    ("proxy", "cause"),
    [
        (StatelessIdpProxy(), "carries no single state parameter"),
        (OwnLoginProxy(), "stays on the gate's own origin"),
    ],
)
async def test_an_approval_relayed_without_a_binding_is_a_warning_with_its_cause_and_counted(
    proxy: FakeProxy,
    cause: str,
    start_upstream: StartUpstream,
    start_gate: StartGate,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="consentgate"):
        status, location, exposition = await approve_once(proxy, start_upstream, start_gate)
    assert status == 303  # relayed as the upstream said, after the form
    assert "t-1" in location
    [warning] = unbound_warnings(caplog)
    text = warning.getMessage()
    assert cause in text
    assert "the IdP's callback will be refused" in text
    fields = getattr(warning, "fields", {})
    assert "t-1" not in str(fields)  # the redirect's query (its state) is not logged
    assert "consentgate_unbound_relays_total 1.0" in exposition


async def test_a_bound_approval_is_neither_warned_about_nor_counted(
    start_upstream: StartUpstream, start_gate: StartGate, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="consentgate"):
        status, location, exposition = await approve_once(FakeProxy(), start_upstream, start_gate)
    assert (status, location.split("?")[0]) == (303, IDP)
    assert unbound_warnings(caplog) == []
    assert "consentgate_unbound_relays_total 0.0" in exposition
