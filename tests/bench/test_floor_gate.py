"""The floor gate (bench/floor_gate.py) takes every step it stands for: the bench
compares the gate with it, so a floor that skipped one would flatter nobody but
itself. Each test runs it in front of the bench's own upstream on loopback."""

from __future__ import annotations

import urllib.parse
from pathlib import Path

import aiohttp
import pytest

from bench.floor_gate import floor_app
from bench.run import AUTHORIZE_PATH, IDP_PREFIX, prepare_store
from bench.upstream import make_app
from tests.conftest import StartUpstream


@pytest.fixture
async def floor(tmp_path: Path, start_upstream: StartUpstream) -> tuple[str, str]:
    """The floor's origin and the approving browser's ``Cookie`` header."""
    cookie, subject = await prepare_store(tmp_path)
    upstream = await start_upstream(make_app("http://127.0.0.1"))
    return await start_upstream(floor_app(upstream, tmp_path, subject)), cookie


def with_query(**changes: str) -> str:
    pairs = urllib.parse.parse_qsl(urllib.parse.urlsplit(AUTHORIZE_PATH).query)
    pairs = [(name, changes.pop(name, value)) for name, value in pairs]
    pairs += list(changes.items())
    return "/authorize?" + urllib.parse.urlencode(pairs, quote_via=urllib.parse.quote)


async def test_a_remembered_request_is_relayed_with_its_flow_bound_and_one_audit_line(
    floor: tuple[str, str], client: aiohttp.ClientSession, tmp_path: Path
) -> None:
    origin, cookie = floor
    async with client.get(
        origin + AUTHORIZE_PATH, headers={"Cookie": cookie}, allow_redirects=False
    ) as answer:
        assert answer.status == 302
        assert answer.headers["Location"].startswith(IDP_PREFIX)
        (binding,) = answer.headers.getall("Set-Cookie")
        assert binding.startswith("cg_b_")
    lines = (tmp_path / "floor-audit.log").read_text().splitlines()
    assert len(lines) == 1
    assert '"event": "approved"' in lines[0]
    assert '"bound": true' in lines[0]


FORGED = "forged"


@pytest.mark.parametrize(
    ("path", "status"),
    [
        (FORGED, 403),  # the approving browser's cookie with another MAC
        (with_query(redirect_uri="https://attacker.example/cb"), 403),
        (with_query(scope="openid"), 403),  # not what was approved
        (with_query(code_challenge_method="plain"), 400),
        (with_query() + "&client_id=client-bench-0001", 400),  # repeated
        (with_query().replace("&state=", "&&state="), 400),  # not strictly formed
    ],
)
async def test_anything_else_is_not_relayed_and_writes_no_audit_line(
    floor: tuple[str, str], client: aiohttp.ClientSession, tmp_path: Path, path: str, status: int
) -> None:
    origin, cookie = floor
    if path == FORGED:
        path, cookie = with_query(), cookie[:-2] + ("AA" if not cookie.endswith("AA") else "BB")
    async with client.get(
        origin + path, headers={"Cookie": cookie}, allow_redirects=False
    ) as answer:
        assert answer.status == status
        assert "Location" not in answer.headers
    audit = tmp_path / "floor-audit.log"
    assert audit.read_text() == ""
