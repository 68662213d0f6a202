"""Factories shared by the tests: configs, a real upstream on loopback, a running gate.

Nothing here is a mock: the upstream is an aiohttp server on 127.0.0.1, the gate
is started exactly as ``consentgate serve`` starts it (``server.start``), and
the store is a real SQLite file under the test's tmp_path.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from consentgate.audit.events import AuditTrail
from consentgate.config.loading import config_from_mapping
from consentgate.config.model import Config
from consentgate.core.clock import system_clock
from consentgate.serving.application import create_app
from consentgate.serving.connections import GuardedAppRunner
from consentgate.serving.server import start
from tests.support.fakeproxy import FakeProxy


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def make_config(
    tmp_path: Path,
    upstream_url: str,
    public_url: str = "http://127.0.0.1:8080",
    **sections: dict[str, Any],
) -> Config:
    """A valid configuration for tests; ``sections`` override tables key by key."""
    data: dict[str, Any] = {
        "server": {"public_url": public_url, "listen": "127.0.0.1:0"},
        "upstream": {"url": upstream_url},
        "store": {"path": str(tmp_path / "consentgate.sqlite3")},
        "keys": {"dir": str(tmp_path / "keys")},
        "log": {"access_log": True},
    }
    return config_from_mapping(deep_merge(data, sections), base_dir=tmp_path, environ={})


@dataclass
class RunningGate:
    url: str
    config: Config
    runner: GuardedAppRunner

    @property
    def app(self) -> web.Application:
        app = self.runner.app
        assert isinstance(app, web.Application)
        return app


#: The admin token the tests' token files hold (64 hex characters, as openssl makes).
ADMIN_TOKEN = "0123456789abcdef" * 4


def admin_token_file(directory: Path, token: str = ADMIN_TOKEN, mode: int = 0o600) -> Path:
    """An ``[admin] token_file`` holding ``token`` (with the newline an editor adds)."""
    path = directory / "admin.token"
    path.write_text(token + "\n")
    path.chmod(mode)
    return path


def admin_section(directory: Path, listen: str, **extra: Any) -> dict[str, Any]:
    """An ``[admin]`` table listening on ``listen`` with a usable token file."""
    return {"listen": listen, "token_file": str(admin_token_file(directory)), **extra}


StartGate = Callable[..., Awaitable[RunningGate]]
StartUpstream = Callable[..., Awaitable[str]]


def bound_socket(host: str = "127.0.0.1") -> socket.socket:
    """A listening socket on a free port, so the URL is known before the server starts."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    sock.listen(128)
    sock.setblocking(False)
    return sock


@pytest.fixture
async def start_upstream() -> AsyncIterator[StartUpstream]:
    """Start an aiohttp app on 127.0.0.1 as the upstream; returns its origin."""
    servers: list[TestServer] = []

    async def _start(app: web.Application, **runner_options: Any) -> str:
        server = TestServer(app, host="127.0.0.1")
        await server.start_server(**runner_options)
        servers.append(server)
        return str(server.make_url("")).rstrip("/")

    yield _start
    for server in servers:
        await server.close()


@pytest.fixture
async def start_gate(tmp_path: Path) -> AsyncIterator[StartGate]:
    """Start the gate in front of ``upstream_url`` exactly as ``serve`` does."""
    runners: list[GuardedAppRunner] = []

    async def _start(
        upstream_url: str,
        *,
        clock: Callable[[], float] | None = None,
        audit: AuditTrail | None = None,
        public_url: str | None = None,
        **sections: dict[str, Any],
    ) -> RunningGate:
        sock = bound_socket()
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        config = make_config(tmp_path, upstream_url, public_url or url, **sections)
        app = (
            create_app(config, clock=clock or system_clock, audit=audit)
            if clock is not None or audit is not None
            else None
        )
        try:
            runner = await start(config, app, sock=sock)
        except BaseException:
            sock.close()  # a refused start (StartupError) must not leak the socket
            raise
        runners.append(runner)
        return RunningGate(url=url, config=config, runner=runner)

    yield _start
    for runner in reversed(runners):
        await runner.cleanup()


class FakeClock:
    """A clock the test moves by hand: expiry without sleeping."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Stack:
    """The fake single-client proxy with the gate in front of it."""

    proxy: FakeProxy
    gate: RunningGate

    @property
    def url(self) -> str:
        return self.gate.url


StartStack = Callable[..., Awaitable[Stack]]


@pytest.fixture
async def start_stack(start_upstream: StartUpstream, start_gate: StartGate) -> StartStack:
    """Start a fake single-client OAuth proxy and the gate in front of it."""

    async def _start(**options: Any) -> Stack:
        proxy = FakeProxy()
        upstream = await start_upstream(proxy.app())
        gate = await start_gate(upstream, **options)
        proxy.public_url = gate.url
        return Stack(proxy, gate)

    return _start


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    """A plain HTTP client: no redirects followed by default, bodies left encoded."""
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        yield session


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """``configure_logging`` (and ``serve``) change the ``consentgate`` logger's
    handlers, level and propagation, and the root logger's handlers: put them back
    for the tests that follow."""
    logger = logging.getLogger("consentgate")
    saved = (list(logger.handlers), logger.level, logger.propagate)
    root = logging.getLogger()  # the libraries' handler is the root logger's
    saved_root = list(root.handlers)
    yield
    logger.handlers[:] = saved[0]
    logger.setLevel(saved[1])
    logger.propagate = saved[2]
    root.handlers[:] = saved_root


#: What :func:`error_log` returns: the operator's message logged for one error page.
ErrorLog = Callable[[Any], str]


@pytest.fixture
def error_log(caplog: pytest.LogCaptureFixture) -> ErrorLog:
    """The operator's reason for an error page, read from the log by the response's
    request id: a page tells the person what to do in plain words, and the reason
    (a parameter, the upstream, an error code) is logged (``web/rendering/pages.py``)."""
    caplog.set_level(logging.INFO, logger="consentgate.pages")

    def reason(response: Any) -> str:
        request_id = response.headers["X-Request-Id"]
        lines = [
            f"{record.__dict__['fields']['reason']} [{record.__dict__['fields']['code']}]"
            for record in caplog.records
            if record.name == "consentgate.pages"
            and record.__dict__.get("fields", {}).get("request_id") == request_id
        ]
        assert len(lines) == 1, (request_id, lines)
        return lines[0]

    return reason
