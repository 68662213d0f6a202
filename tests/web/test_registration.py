"""Learning clients from registration responses, whatever their size and shape."""

from __future__ import annotations

import json

import aiohttp
import pytest
from aiohttp import web

from consentgate.web.appkeys import STORE
from tests.conftest import StartGate, StartUpstream


def registrar(
    padding: int, *, status: int = 201, content_type: str = "application/json"
) -> web.Application:
    async def register(request: web.Request) -> web.StreamResponse:
        body = json.dumps(
            {
                "client_id": "client-padded",
                "client_secret": "s3cret-value",
                "redirect_uris": ["https://client.example/cb"],
                "client_name": "Padded",
                "software_statement": "x" * padding,
            }
        ).encode()
        response = web.StreamResponse(status=status, headers={"Content-Type": content_type})
        response.content_length = len(body)
        await response.prepare(request)
        for start in range(0, len(body), 8192):  # many small writes: many TCP segments
            await response.write(body[start : start + 8192])
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_post("/register", register)
    return app


@pytest.mark.parametrize("padding", [100, 200_000])
async def test_registration_responses_are_relayed_whole_and_learned(
    start_upstream: StartUpstream, start_gate: StartGate, padding: int
) -> None:
    gate = await start_gate(await start_upstream(registrar(padding)))
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{gate.url}/register", json={"redirect_uris": ["https://client.example/cb"]}
        ) as response,
    ):
        assert response.status == 201
        document = await response.json()
    assert document["client_secret"] == "s3cret-value"  # the client gets its answer untouched
    assert len(document["software_statement"]) == padding
    record = await gate.app[STORE].get_client("client-padded")
    assert record is not None
    assert "s3cret-value" not in record.registration_json


@pytest.mark.parametrize(
    ("padding", "content_type"),
    [(400_000, "application/json"), (10, "text/html"), (10, "application/json; x")],
)
async def test_a_successful_registration_the_gate_cannot_learn_is_refused_with_502(
    start_upstream: StartUpstream, start_gate: StartGate, padding: int, content_type: str
) -> None:
    """Relaying it unlearned would leave the client unknown, so its redirect-URI check
    would be off: the gate refuses it and says why (hardening #10, "also")."""
    gate = await start_gate(await start_upstream(registrar(padding, content_type=content_type)))
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{gate.url}/register", json={}) as response,
    ):
        body = await response.text()
    expected = 502 if content_type != "application/json; x" else 201
    assert response.status == expected, body[:300]
    if expected == 502:
        assert "registration_unreadable" in body
        assert "s3cret-value" not in body
        assert await gate.app[STORE].get_client("client-padded") is None


async def test_a_failed_registration_is_relayed_and_not_learned(
    start_upstream: StartUpstream, start_gate: StartGate
) -> None:
    gate = await start_gate(await start_upstream(registrar(10, status=400)))
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{gate.url}/register", json={}) as response,
    ):
        assert response.status == 400
    assert await gate.app[STORE].get_client("client-padded") is None
