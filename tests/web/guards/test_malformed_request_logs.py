"""A request whose head aiohttp cannot parse leaves no secret in the gate's log.

aiohttp answers such a request itself, before any handler runs, and logged it as
"Error handling request" with a traceback whose exception message quotes the bad
header line: an MCP bearer token, a browser's consent cookie at the start of an
over-long ``Cookie`` header, the admin token of a token file saved with Windows line
endings (``Bearer <token>\\r``). The gate's log is redacted (docs/logging.md says
headers are never logged); these lines came through aiohttp's own logger.

A real ``consentgate serve`` process, requests over raw sockets, and the whole of its
stderr read after it stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path
from typing import Any

from aiohttp import web

from consentgate.web.guards.malformed import BAD_REQUEST_TEXT
from tests.conftest import StartUpstream
from tests.support import rawhttp
from tests.support.gateproc import free_port, gate_process

BEARER = "mcp-bearer-" + "7f3a9c" * 6
CONSENT_COOKIE = "cg_bid=" + "Zq8vR2" * 8
ADMIN_SECRET = "5e1f" * 16


async def send(url: str, headers: list[tuple[str, str]]) -> tuple[int, bytes] | None:
    """The status and body of the answer, or None when the connection closed without one."""
    with contextlib.suppress(ValueError, IndexError, ConnectionError, asyncio.IncompleteReadError):
        response = await rawhttp.request(url, "/mcp", headers=headers, timeout=5)
        return response.status, response.body
    return None


async def test_malformed_headers_are_answered_400_and_no_secret_or_traceback_is_logged(
    tmp_path: Path, start_upstream: StartUpstream
) -> None:
    async def anything(request: web.Request) -> web.Response:
        return web.Response(text="upstream")

    upstream_app = web.Application()
    upstream_app.router.add_route("*", "/{tail:.*}", anything)
    upstream = await start_upstream(upstream_app)
    token_file = tmp_path / "admin.token"
    token_file.write_bytes(ADMIN_SECRET.encode() + b"\r\n")  # saved on Windows
    token_file.chmod(0o600)
    admin = f"127.0.0.1:{free_port()}"
    sections: dict[str, dict[str, Any]] = {
        "admin": {"listen": admin, "token_file": str(token_file)},
        "log": {"access_log": True},
    }
    async with gate_process(tmp_path, upstream, sections) as gate:
        answers = {
            "bearer in a header with a control character": await send(
                gate.url, [("Authorization", f"Bearer {BEARER}\x01")]
            ),
            "bearer in a header name": await send(
                gate.url, [(f"Authorization Bearer {BEARER}", "x")]
            ),
            "consent cookie first in an over-long Cookie": await send(
                gate.url, [("Cookie", f"{CONSENT_COOKIE}; pad={'p' * 9000}")]
            ),
            "bearer before a bare CR": await send(
                gate.url, [("Authorization", f"Bearer {BEARER}\rX-Next: 1")]
            ),
            "admin token from a CRLF file": await send(
                f"http://{admin}", [("Authorization", f"Bearer {ADMIN_SECRET}\r")]
            ),
            "admin token in an over-long header": await send(
                f"http://{admin}", [("Authorization", f"Bearer {ADMIN_SECRET}{'x' * 9000}")]
            ),
        }
        # The gate still serves after all of that.
        ordinary = await rawhttp.request(gate.url, "/mcp")
        gate.process.send_signal(signal.SIGINT)
        await asyncio.wait_for(gate.process.wait(), 15)
        log = await gate.stderr_text()

    # A short 400 that quotes nothing of the request (aiohttp's quoted the header line).
    assert answers == dict.fromkeys(answers, (400, BAD_REQUEST_TEXT.encode())), log
    assert ordinary.status == 200
    for secret in (BEARER, CONSENT_COOKIE, CONSENT_COOKIE.split("=")[1], ADMIN_SECRET):
        assert secret not in log
    assert "Traceback" not in log
    # Each refused request is one short line, naming what was wrong but no value.
    refused = [line for line in log.splitlines() if "malformed request" in line]
    assert len(refused) == len(answers), log
    assert all(len(line) < 400 for line in refused), refused
