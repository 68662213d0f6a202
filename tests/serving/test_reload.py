"""SIGHUP re-reads the configuration of a real ``consentgate serve``.

Each test starts the gate as a child process with ``NOTIFY_SOCKET`` set, rewrites its
configuration file, sends a real SIGHUP and waits for ``READY=1`` (the gate says it
once the reload is done), then looks at what the next requests get and at the lines
on the process's stderr (read as they come, polled with a deadline, no sleeps):

* texts, scope descriptions and preapproved redirect URIs apply to the next request,
  while an event stream opened before the signal goes on and completes;
* keys that need a restart (``server.listen``, ``store.path``) are one warning, with
  old and new values, and the old values stay in use;
* a file with errors is refused whole, every error logged, the old configuration in
  force, the gate serving; fixed, the next SIGHUP applies it;
* ``[log]`` level, format and ``access_log`` take effect without a restart;
* with workers, every worker reloads on the SIGHUP the parent passes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.conftest import ADMIN_TOKEN, StartUpstream, admin_section, admin_token_file
from tests.support.browsersim import Browser, Page
from tests.support.documenthost import answer, issue, make_authority, running
from tests.support.fakeproxy import IDP, FakeProxy
from tests.support.gateproc import free_port, spawn_serve, write_config
from tests.support.notifysock import TIMEOUT, Message, NotifySocket

CLIENT_REDIRECT = "https://client.example/callback"
FIRST_PARTY = "https://first-party.example/callback"


class StderrLines:
    """The gate's stderr, read line by line as it comes (the pipe never fills)."""

    def __init__(self, stream: asyncio.StreamReader) -> None:
        self.lines: list[str] = []
        self._task = asyncio.create_task(self._read(stream))

    async def _read(self, stream: asyncio.StreamReader) -> None:
        while line := await stream.readline():
            self.lines.append(line.decode().rstrip("\n"))

    def mark(self) -> int:
        """Where the lines from now on start."""
        return len(self.lines)

    def since(self, start: int) -> list[str]:
        return self.lines[start:]

    async def wait_for(self, *parts: str, start: int = 0, count: int = 1) -> list[str]:
        """The first ``count`` lines from ``start`` on that contain every one of ``parts``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + TIMEOUT
        while True:
            found = [line for line in self.lines[start:] if all(p in line for p in parts)]
            if len(found) >= count:
                return found[:count]
            if loop.time() > deadline or self._task.done():
                tail = "\n".join(self.lines[-40:])
                raise AssertionError(f"no line with {parts} (x{count}); the log ends:\n{tail}")
            await asyncio.sleep(0.02)

    async def close(self) -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._task, TIMEOUT)


@dataclass
class Gate:
    directory: Path
    upstream: str
    port: int
    process: asyncio.subprocess.Process
    notify: NotifySocket
    log: StderrLines

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def write(self, sections: dict[str, dict[str, Any]]) -> None:
        """Rewrite the configuration file the gate was started with."""
        write_config(self.directory, self.upstream, self.port, sections)

    async def hup(self) -> Message:
        """SIGHUP, and the ``READY=1`` that ends the reload."""
        self.process.send_signal(signal.SIGHUP)
        received = await self.notify.until("READY=1")
        assert "RELOADING=1" in received[0], received
        return received[-1]


@contextlib.asynccontextmanager
async def running_gate(
    tmp_path: Path, upstream: str, sections: dict[str, dict[str, Any]]
) -> AsyncIterator[Gate]:
    port = free_port()
    config = write_config(tmp_path, upstream, port, sections)
    notify = NotifySocket(tmp_path / "notify.sock")
    process = await spawn_serve(config, env={**os.environ, "NOTIFY_SOCKET": notify.path})
    assert process.stderr is not None
    log = StderrLines(process.stderr)
    gate = Gate(tmp_path, upstream, port, process, notify, log)
    try:
        ready = await notify.until("READY=1")
        assert "listening on" in ready[-1].fields["STATUS"]
        yield gate
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), TIMEOUT)
            except TimeoutError:
                process.kill()
                await process.wait()
        await log.close()
        notify.close()


@dataclass
class Upstream:
    url: str
    proxy: FakeProxy
    #: Set by a test: the event stream at ``/events`` sends its second event and ends.
    release: asyncio.Event


@pytest.fixture
async def upstream(start_upstream: StartUpstream) -> Upstream:
    """The fake OAuth proxy, plus ``/events``: an SSE stream held open until released."""
    proxy = FakeProxy()
    release = asyncio.Event()
    app = proxy.app()

    @web.middleware
    async def events(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.path != "/events":
            return await handler(request)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b"data: one\n\n")
        await release.wait()
        await response.write(b"data: two\n\n")
        await response.write_eof()
        return response

    app.middlewares.append(events)
    return Upstream(await start_upstream(app), proxy, release)


async def register(gate_url: str, redirect_uri: str) -> str:
    body = {"redirect_uris": [redirect_uri], "client_name": "Example Client"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{gate_url}/register", json=body) as response,
    ):
        assert response.status == 201
        client_id: str = (await response.json())["client_id"]
        return client_id


def auth_params(client_id: str, redirect_uri: str = CLIENT_REDIRECT) -> dict[str, str]:
    return {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "scope": "openid profile",
        "state": "client-state-1",
        "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        "code_challenge_method": "S256",
    }


async def consent_page(gate: Gate, client_id: str) -> Page:
    async with Browser(gate.url) as browser:
        page = await browser.authorize(auth_params(client_id))
    assert page.is_consent_page, page.text[:300]
    return page


async def get(url: str) -> int:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        await response.read()
        return response.status


async def test_sighup_applies_texts_and_preapproved_uris_to_new_requests_while_a_stream_goes_on(
    tmp_path: Path, upstream: Upstream
) -> None:
    store = str(tmp_path / "store.sqlite3")
    sections: dict[str, dict[str, Any]] = {"consent": {"service_name": "Old Mail"}}
    async with running_gate(tmp_path, upstream.url, sections) as gate:
        upstream.proxy.public_url = gate.url
        client = await register(gate.url, CLIENT_REDIRECT)
        first_party = await register(gate.url, FIRST_PARTY)
        before = await consent_page(gate, client)
        assert "Old Mail" in before.text
        assert "Know who you are" not in before.text
        async with Browser(gate.url) as browser:
            asked = await browser.authorize(auth_params(first_party, FIRST_PARTY))
        assert asked.is_consent_page

        async with aiohttp.ClientSession() as session:
            stream = await session.get(f"{gate.url}/events")
            assert await stream.content.readline() == b"data: one\n"
            assert await stream.content.readline() == b"\n"

            other_port = free_port()
            gate.write(
                {
                    "server": {"listen": f"127.0.0.1:{other_port}"},
                    "store": {"path": str(tmp_path / "moved.sqlite3")},
                    "consent": {
                        "service_name": "New Mail",
                        "preapproved_redirect_uris": [FIRST_PARTY],
                    },
                }
            )
            with gate.directory.joinpath("gate.toml").open("a") as file:
                file.write('[consent.scope_descriptions]\nopenid = "Know who you are"\n')
            mark = gate.log.mark()
            ready = await gate.hup()
            assert ready.fields["STATUS"] == f"listening on http://127.0.0.1:{gate.port}"
            (reloaded,) = await gate.log.wait_for("configuration reloaded", start=mark)
            (ignored,) = await gate.log.wait_for("ignored until restart", start=mark)

            # The stream opened before the signal goes on, and ends properly.
            upstream.release.set()
            assert await stream.content.readline() == b"data: two\n"
            assert await stream.content.readline() == b"\n"
            assert await stream.content.read() == b""
            assert stream.status == 200
            stream.release()

        assert (
            "changed=consent.service_name,consent.preapproved_redirect_uris,"
            "consent.scope_descriptions" in reloaded
        )
        assert "WARNING" in ignored
        assert f'server.listen="127.0.0.1:{gate.port} -> 127.0.0.1:{other_port}"' in ignored
        assert f'store.path="{store} -> {tmp_path / "moved.sqlite3"}"' in ignored

        after = await consent_page(gate, client)
        assert "New Mail" in after.text
        assert "Old Mail" not in after.text
        assert "<code><bdi>openid</bdi></code> &mdash; Know who you are" in after.text
        async with Browser(gate.url) as browser:
            relayed = await browser.authorize(auth_params(first_party, FIRST_PARTY))
        assert relayed.status == 302
        assert relayed.location.startswith(IDP)

        # The restart-only values stay in use: the old port serves, the new one is
        # not listened on, and the store is still the old file.
        assert await get(f"{gate.url}/_consentgate/healthz") == 200
        with pytest.raises(aiohttp.ClientConnectionError):
            await get(f"http://127.0.0.1:{other_port}/_consentgate/healthz")
        assert not (tmp_path / "moved.sqlite3").exists()
        assert await get(f"{gate.url}/_consentgate/readyz") == 200


async def test_a_file_with_errors_is_refused_whole_and_the_gate_serves_on_until_it_is_fixed(
    tmp_path: Path, upstream: Upstream
) -> None:
    sections: dict[str, dict[str, Any]] = {"consent": {"service_name": "Old Mail"}}
    async with running_gate(tmp_path, upstream.url, sections) as gate:
        upstream.proxy.public_url = gate.url
        client = await register(gate.url, CLIENT_REDIRECT)
        config = gate.directory / "gate.toml"
        good = config.read_text()

        # Not TOML at all.
        config.write_text(good.replace('service_name = "Old Mail"', 'service_name = "New'))
        mark = gate.log.mark()
        ready = await gate.hup()
        assert "configuration not reloaded: 1 error(s)" in ready.fields["STATUS"]
        (syntax,) = await gate.log.wait_for("configuration error", start=mark)
        assert "ERROR" in syntax
        assert f"{config}: not valid TOML" in syntax
        await gate.log.wait_for("configuration not reloaded", "errors=1", start=mark)
        assert "Old Mail" in (await consent_page(gate, client)).text

        # Valid TOML: an unknown key and a bad value, both reported, nothing applied
        # (not even the good new service_name beside them).
        gate.write(
            {
                "server": {"lisen": "127.0.0.1:1"},
                "consent": {"service_name": "New Mail", "mode": "sometimes"},
            }
        )
        mark = gate.log.mark()
        ready = await gate.hup()
        assert "configuration not reloaded: 2 error(s)" in ready.fields["STATUS"]
        problems = await gate.log.wait_for("configuration error", start=mark, count=2)
        assert any(
            "server.lisen: unknown key; did you mean `listen`? (got '127.0.0.1:1')" in line
            for line in problems
        ), problems
        assert any(
            'consent.mode: expected one of \\"remember\\", \\"always\\", got \'sometimes\'' in line
            for line in problems
        ), problems
        await gate.log.wait_for("configuration not reloaded", "errors=2", start=mark)
        assert "configuration reloaded" not in "\n".join(gate.log.since(mark))
        assert "Old Mail" in (await consent_page(gate, client)).text
        assert await get(f"{gate.url}/_consentgate/readyz") == 200

        # Fixed: the next SIGHUP applies it, and the status is plain again.
        gate.write({"consent": {"service_name": "New Mail"}})
        mark = gate.log.mark()
        ready = await gate.hup()
        assert ready.fields["STATUS"] == f"listening on http://127.0.0.1:{gate.port}"
        await gate.log.wait_for(
            "configuration reloaded", "changed=consent.service_name", start=mark
        )
        assert "New Mail" in (await consent_page(gate, client)).text
        assert gate.process.returncode is None


async def test_log_level_format_and_the_access_log_change_without_a_restart(
    tmp_path: Path, upstream: Upstream
) -> None:
    async with running_gate(tmp_path, upstream.url, {"log": {"access_log": False}}) as gate:
        assert await get(f"{gate.url}/probe-off") == 200

        gate.write({"log": {"access_log": True}})
        mark = gate.log.mark()
        await gate.hup()
        await gate.log.wait_for("configuration reloaded", "changed=log.access_log", start=mark)
        assert await get(f"{gate.url}/probe-on") == 200
        (line,) = await gate.log.wait_for("consentgate.access request", "path=/probe-on")
        assert "status=200" in line

        # warning: INFO lines stop, the access log's included (and the reload's own line).
        gate.write({"log": {"access_log": True, "level": "warning"}})
        mark = gate.log.mark()
        await gate.hup()
        assert await get(f"{gate.url}/probe-quiet") == 200

        # Back to info, in JSON: the reload's line and the access lines are JSON objects.
        gate.write({"log": {"access_log": True, "level": "info", "format": "json"}})
        await gate.hup()
        (reloaded,) = await gate.log.wait_for('"message": "configuration reloaded"', start=mark)
        assert json.loads(reloaded)["changed"] == "log.format,log.level"
        assert await get(f"{gate.url}/probe-json") == 200
        (access,) = await gate.log.wait_for('"path": "/probe-json"')
        document = json.loads(access)
        assert (document["logger"], document["status"]) == ("consentgate.access", 200)

        everything = "\n".join(gate.log.lines)
        assert "/probe-off" not in everything  # access_log was off
        assert "/probe-quiet" not in everything  # level was warning
        assert [line for line in gate.log.since(mark) if "configuration reloaded" in line] == [
            reloaded
        ]


@pytest.mark.slow  # consentgate serve with worker processes
async def test_with_workers_each_worker_reloads_on_the_sighup_the_parent_passes_on(
    tmp_path: Path, upstream: Upstream
) -> None:
    sections: dict[str, dict[str, Any]] = {
        "server": {"workers": 2, "shutdown_grace": 2},
        "consent": {"service_name": "Old Mail"},
    }
    async with running_gate(tmp_path, upstream.url, sections) as gate:
        upstream.proxy.public_url = gate.url
        client = await register(gate.url, CLIENT_REDIRECT)
        gate.write(
            {"server": {"workers": 2, "shutdown_grace": 2}, "consent": {"service_name": "New Mail"}}
        )
        mark = gate.log.mark()
        await gate.hup()
        reloaded = await gate.log.wait_for(
            "configuration reloaded", "changed=consent.service_name", start=mark, count=2
        )
        assert sorted(line.rsplit("worker=", 1)[1] for line in reloaded) == ["1", "2"]
        # Whichever worker the kernel picks for a new connection, the page is the new one.
        async with Browser(gate.url, fresh_connections=True) as browser:
            for _ in range(8):
                page = await browser.authorize(auth_params(client))
                assert page.is_consent_page
                assert "New Mail" in page.text


async def test_a_reload_that_blocks_a_domain_refuses_its_next_sign_in_without_contacting_it(
    tmp_path: Path, upstream: Upstream
) -> None:
    """[clients] blocked_domains is read per request: a SIGHUP blocks a domain that was
    allowed, for the next request, even for a document already in the cache (the
    domain check comes before the cache), and the host is not contacted again."""
    authority = make_authority(tmp_path, "reload-ca")
    async with running("127.0.0.1", issue(authority, tmp_path)) as host:
        client_id = host.url("/client.json")
        other_id = host.url("/other.json")
        for path, url in (("/client.json", client_id), ("/other.json", other_id)):
            host.routes[path] = answer(
                200,
                json.dumps(
                    {
                        "client_id": url,
                        "client_name": "Example Notes",
                        "redirect_uris": [CLIENT_REDIRECT],
                    }
                ).encode(),
                [("Content-Type", "application/json"), ("Cache-Control", "max-age=3600")],
            )
        clients: dict[str, Any] = {
            "fetch_ca_file": str(authority.cert_file),
            "fetch_allow_networks": ["127.0.0.1/32"],
            "fetch_timeout": "2s",
        }
        async with running_gate(tmp_path, upstream.url, {"clients": clients}) as gate:
            page = await consent_page(gate, client_id)
            assert "Verified domain: <strong><bdi>127.0.0.1</bdi></strong>" in page.text
            assert host.accepted == 1

            gate.write({"clients": {**clients, "blocked_domains": ["127.0.0.1"]}})
            mark = gate.log.mark()
            await gate.hup()
            (reloaded,) = await gate.log.wait_for("configuration reloaded", start=mark)
            assert "clients.blocked_domains" in reloaded
            assert not [line for line in gate.log.since(mark) if "ignored until restart" in line]

            for blocked in (client_id, other_id):  # cached, and never fetched
                async with Browser(gate.url) as browser:
                    refused = await browser.authorize(auth_params(blocked))
                assert refused.status == 403, refused.text[:300]
                assert "This application cannot sign in here" in refused.text
                await gate.log.wait_for(
                    "does not accept applications from this web site",
                    refused.headers["X-Request-Id"],
                    start=mark,
                )
            assert host.accepted == 1
            assert upstream.proxy.reached("/authorize") == []


async def admin_status(admin_url: str, token: str) -> int:
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{admin_url}/admin/clients", headers=headers) as response,
    ):
        await response.read()
        return response.status


async def test_a_refused_reload_changes_nothing_not_even_the_admin_token(
    tmp_path: Path, upstream: Upstream
) -> None:
    """ "Refused whole" (README): a file with an error leaves everything as it was, the
    admin token and the key ring included; and the token's INFO line says it changed
    only when it did."""
    admin_port = free_port()
    admin_url = f"http://127.0.0.1:{admin_port}"
    sections: dict[str, dict[str, Any]] = {
        "admin": admin_section(tmp_path, f"127.0.0.1:{admin_port}")
    }
    async with running_gate(tmp_path, upstream.url, sections) as gate:
        assert await admin_status(admin_url, ADMIN_TOKEN) == 200
        # An unchanged token: a good reload says nothing about it.
        mark = gate.log.mark()
        await gate.hup()
        await gate.log.wait_for("configuration reloaded", start=mark)
        assert not any("admin token" in line for line in gate.log.since(mark))

        # A new token, and a file with an error: nothing changes.
        new_token = "fedcba9876543210" * 4
        admin_token_file(tmp_path, new_token)
        gate.write({**sections, "server": {"lisen": "127.0.0.1:1"}})
        mark = gate.log.mark()
        ready = await gate.hup()
        assert "configuration not reloaded: 1 error(s)" in ready.fields["STATUS"]
        await gate.log.wait_for("configuration not reloaded", start=mark)
        assert await admin_status(admin_url, ADMIN_TOKEN) == 200
        assert await admin_status(admin_url, new_token) == 401
        assert not any("admin token" in line for line in gate.log.since(mark))

        # The file fixed: the next SIGHUP applies the new token, and says so.
        gate.write(sections)
        mark = gate.log.mark()
        await gate.hup()
        await gate.log.wait_for("admin token reloaded", start=mark)
        assert await admin_status(admin_url, new_token) == 200
        assert await admin_status(admin_url, ADMIN_TOKEN) == 401


async def readiness(gate_url: str) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{gate_url}/_consentgate/readyz") as response,
    ):
        return response.status, await response.json()


async def test_readyz_warns_while_the_configuration_file_on_disk_would_not_load(
    tmp_path: Path, upstream: Upstream
) -> None:
    async with running_gate(tmp_path, upstream.url, {}) as gate:
        upstream.proxy.public_url = gate.url
        assert await readiness(gate.url) == (200, {"status": "ready"})
        config = gate.directory / "gate.toml"
        good = config.read_text()

        config.write_text(good.replace("[upstream]", "[upstream"))  # not TOML any more
        mark = gate.log.mark()
        for _ in range(2):
            # Still ready (it serves under the configuration it loaded), but a restart
            # would fail: said so, without the file's contents on a public probe.
            status, document = await readiness(gate.url)
            assert (status, document["status"]) == (200, "ready")
            assert document["warnings"] == [
                "configuration: the file on disk does not load, so a restart would "
                "fail (the log says why)"
            ]
        (line,) = await gate.log.wait_for("configuration file on disk does not load", start=mark)
        assert f"{config}: not valid TOML" in line
        assert "WARNING" in line

        config.write_text(good)
        assert await readiness(gate.url) == (200, {"status": "ready"})
