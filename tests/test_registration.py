"""Learning clients from registration responses, whatever their size and shape."""

from __future__ import annotations

import json

import aiohttp
import pytest
from aiohttp import web

from consentgate.appkeys import STORE
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


@pytest.mark.parametrize(("padding", "learned"), [(100, True), (200_000, True), (400_000, False)])
async def test_registration_responses_are_relayed_whole_and_learned_up_to_a_bound(
    start_upstream: StartUpstream, start_gate: StartGate, padding: int, learned: bool
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
    assert (record is not None) is learned
    if record is not None:
        assert "s3cret-value" not in record.registration_json


@pytest.mark.parametrize(
    ("status", "content_type"), [(400, "application/json"), (201, "text/html")]
)
async def test_only_successful_json_registrations_are_learned(
    start_upstream: StartUpstream, start_gate: StartGate, status: int, content_type: str
) -> None:
    gate = await start_gate(
        await start_upstream(registrar(10, status=status, content_type=content_type))
    )
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{gate.url}/register", json={}) as response,
    ):
        assert response.status == status
    assert await gate.app[STORE].get_client("client-padded") is None
