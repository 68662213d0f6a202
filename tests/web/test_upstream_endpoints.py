"""The upstream's advertised endpoints against the paths the gate guards.

A typo in ``[upstream] authorize_path`` made the gate a pass-through: the upstream's
real authorization endpoint was relayed without consent while ``readyz`` answered
200. The gate now compares its paths with the upstream's RFC 8414 metadata at start
(refusing to start on a difference), in ``readyz`` (not ready while they differ), and
the callback path with the ``redirect_uri`` the upstream hands to the IdP (502, the
browser is not sent on).
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from consentgate.core.startup_errors import StartupError
from tests.conftest import ErrorLog, StartGate, StartStack, StartUpstream
from tests.support.browsersim import Browser
from tests.support.fakeproxy import IDP
from tests.support.gateproc import free_port, spawn_serve, write_config
from tests.web.consent_flow.test_authorize import approve_new, auth_params, register

METADATA = "/.well-known/oauth-authorization-server"


@dataclass
class MetadataUpstream:
    """An upstream whose metadata the test changes; ``None`` answers 503."""

    document: dict[str, Any] | None = None
    reached: list[str] = field(default_factory=list)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get(METADATA, self._metadata)
        app.router.add_route("*", "/{tail:.*}", self._anything)
        return app

    async def _metadata(self, request: web.Request) -> web.Response:
        if self.document is None:
            return web.Response(status=503, text="starting")
        return web.json_response(self.document)

    async def _anything(self, request: web.Request) -> web.Response:
        self.reached.append(request.raw_path)
        return web.Response(text="upstream")


def advertising(public_url: str, authorize: str, register: str | None = None) -> dict[str, Any]:
    document: dict[str, Any] = {
        "issuer": public_url,
        "authorization_endpoint": public_url + authorize,
        "token_endpoint": public_url + "/token",
    }
    if register is not None:
        document["registration_endpoint"] = public_url + register
    return document


async def readyz(gate_url: str) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{gate_url}/_consentgate/readyz") as response,
    ):
        return response.status, await response.json()


async def test_a_gate_refuses_to_start_when_the_upstream_advertises_another_authorization_path(
    start_upstream: StartUpstream,
    start_gate: StartGate,
    caplog: pytest.LogCaptureFixture,
) -> None:
    upstream = MetadataUpstream(advertising("http://gate.test", "/authorize"))
    url = await start_upstream(upstream.app())
    with caplog.at_level(logging.ERROR, logger="consentgate"), pytest.raises(StartupError) as exc:
        await start_gate(url, public_url="http://gate.test", upstream={"authorize_path": "/auth"})
    message = str(exc.value)
    assert "upstream.authorize_path" in message
    assert "'/auth'" in message and "'http://gate.test/authorize'" in message
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert any("upstream.authorize_path" in r.getMessage() + repr(r.__dict__) for r in errors)


async def test_a_gate_refuses_to_start_with_an_issuer_the_upstream_does_not_advertise(
    start_upstream: StartUpstream, start_gate: StartGate
) -> None:
    """Its error redirects would carry an ``iss`` clients reject (RFC 9207 §2.4)."""
    upstream = MetadataUpstream(advertising("http://gate.test", "/authorize"))
    url = await start_upstream(upstream.app())
    with pytest.raises(StartupError) as exc:
        await start_gate(
            url, public_url="http://gate.test", upstream={"issuer": "http://gate.test/"}
        )
    assert "upstream.issuer: 'http://gate.test/' is not the issuer" in str(exc.value)


async def test_a_gate_starts_when_the_metadata_cannot_be_read_and_is_not_ready_until_it_matches(
    start_upstream: StartUpstream, start_gate: StartGate, caplog: pytest.LogCaptureFixture
) -> None:
    """The upstream may start after the gate: start anyway, and let readyz tell."""
    upstream = MetadataUpstream(None)
    url = await start_upstream(upstream.app())
    gate = await start_gate(
        url, public_url="http://gate.test", upstream={"authorize_path": "/oauth/authorize"}
    )
    status, _ = await readyz(gate.url)
    assert status == 200  # no metadata: nothing to compare with
    upstream.document = advertising("http://gate.test", "/authorize", "/register")
    with caplog.at_level(logging.ERROR, logger="consentgate"):
        status, document = await readyz(gate.url)
        assert await readyz(gate.url) == (status, document)
    assert status == 503
    assert document["status"] == "unavailable"
    logged = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert logged == ["upstream.authorize_path disagrees with the upstream's metadata; not ready"]
    [reason] = document["reasons"]
    assert reason.startswith("upstream.authorize_path: '/oauth/authorize'")
    assert "'http://gate.test/authorize'" in reason
    upstream.document = advertising("http://gate.test", "/oauth/authorize", "/register")
    status, document = await readyz(gate.url)
    assert (status, document) == (200, {"status": "ready"})


async def test_readyz_names_a_registration_endpoint_the_gate_does_not_guard(
    start_upstream: StartUpstream, start_gate: StartGate
) -> None:
    upstream = MetadataUpstream(None)
    gate = await start_gate(await start_upstream(upstream.app()), public_url="http://gate.test")
    upstream.document = advertising("http://gate.test", "/authorize", "/oauth/register")
    status, document = await readyz(gate.url)
    assert status == 503
    assert [r.split(":")[0] for r in document["reasons"]] == ["upstream.register_path"]


async def test_a_gate_whose_paths_match_the_metadata_starts_and_is_ready(
    start_upstream: StartUpstream, start_gate: StartGate
) -> None:
    """Advertised as the public URL plus the path, with and without registration."""
    for register_path in ("/register", None):
        upstream = MetadataUpstream(advertising("http://gate.test", "/authorize", register_path))
        url = await start_upstream(upstream.app())
        gate = await start_gate(url, public_url="http://gate.test")
        assert await readyz(gate.url) == (200, {"status": "ready"})


async def test_serve_logs_the_mismatch_as_an_error_and_exits(
    tmp_path: Path, start_upstream: StartUpstream
) -> None:
    port = free_port()
    public = f"http://127.0.0.1:{port}"
    upstream = MetadataUpstream(advertising(public, "/authorize"))
    url = await start_upstream(upstream.app())
    sections = {"upstream": {"authorize_path": "/authorise"}, "log": {"format": "json"}}
    process = await spawn_serve(write_config(tmp_path, url, port, sections))
    try:
        _, stderr = await asyncio.wait_for(process.communicate(), 30)
    finally:
        if process.returncode is None:  # it served: the test fails below, the gate stops
            process.kill()
            await process.wait()
            stderr = b""
    assert process.returncode == 1
    lines = stderr.decode().splitlines()
    errors = [
        entry
        for entry in (json.loads(line) for line in lines if line.startswith("{"))
        if entry.get("level") == "error"
    ]
    assert any("upstream.authorize_path" in json.dumps(entry) for entry in errors), lines
    assert any(f"{public}/authorize" in json.dumps(entry) for entry in errors), lines
    assert upstream.reached == []  # nothing but the metadata was asked


async def test_an_idp_hand_off_naming_another_callback_is_not_sent_on(
    error_log: ErrorLog, start_stack: StartStack, caplog: pytest.LogCaptureFixture
) -> None:
    """The fake proxy names ``/auth/callback`` as its redirect_uri; a gate guarding
    another callback path would relay that callback without the browser check."""
    stack = await start_stack(upstream={"callback_path": "/oauth/callback"})
    client_id = await register(stack)
    async with Browser(stack.url) as browser:
        page = await browser.authorize(auth_params(client_id))
        assert page.is_consent_page
        with caplog.at_level(logging.INFO, logger="consentgate"):
            answer = await browser.answer(page, "approve")
        cookies = browser.cookie_names()
    assert answer.status == 502
    assert IDP not in answer.text and "Location" not in answer.headers
    assert "upstream.callback_path" in error_log(answer)
    assert "upstream" not in answer.text.lower()
    assert not [name for name in cookies if "bind" in name]
    assert len(stack.proxy.reached("/authorize")) == 1  # asked, but not sent on
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert any("upstream.callback_path" in r.getMessage() for r in errors)


async def test_an_idp_hand_off_naming_the_configured_callback_is_sent_on(
    start_stack: StartStack,
) -> None:
    stack = await start_stack()
    client_id = await register(stack)
    async with Browser(stack.url) as browser:
        page = await approve_new(browser, auth_params(client_id), remember=False)
    assert page.status == 303
    assert page.location.startswith(IDP)
