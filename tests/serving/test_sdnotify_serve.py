"""A real ``consentgate serve`` talks to a real notify socket, as under systemd
``Type=notify``.

The test binds an AF_UNIX datagram socket, starts the gate with ``NOTIFY_SOCKET``
naming it, and reads what arrives, with the sender's pid from ``SCM_CREDENTIALS``
(the kernel's word, as systemd reads it): READY=1 only once the gate answers its
liveness probe, RELOADING=1 then READY=1 around SIGHUP, STOPPING=1 on SIGTERM,
WATCHDOG=1 at half of ``WATCHDOG_USEC``; with workers, only the parent speaks. And
``contrib/systemd/consentgate.service`` passes ``systemd-analyze verify``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from consentgate.config.sections_traffic import ServerConfig
from consentgate.serving.workers import KILL_AFTER_GRACE
from tests.conftest import StartUpstream
from tests.support.gateproc import free_port, gate_process, spawn_serve, write_config
from tests.support.notifysock import TIMEOUT, NotifySocket

pytestmark = pytest.mark.slow  # consentgate serve processes


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[NotifySocket]:
    sock = NotifySocket(tmp_path / "notify.sock")
    try:
        yield sock
    finally:
        sock.close()


@pytest.fixture
async def upstream(start_upstream: StartUpstream) -> str:
    async def hello(request: web.Request) -> web.Response:
        return web.json_response({"hello": "world"})

    app = web.Application()
    app.router.add_get("/hello", hello)
    return await start_upstream(app)


def worker_pids(parent: int) -> set[int]:
    """The parent's worker processes (not multiprocessing's resource tracker)."""
    found = set()
    for task in Path(f"/proc/{parent}/task").iterdir():
        with contextlib.suppress(OSError):  # a thread or a child may end while we read
            for pid in (task / "children").read_text().split():
                with contextlib.suppress(OSError):
                    if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes():
                        found.add(int(pid))
    return found


@contextlib.asynccontextmanager
async def started_gate(
    tmp_path: Path,
    upstream: str,
    env: dict[str, str],
    sections: dict[str, dict[str, Any]] | None = None,
) -> AsyncIterator[tuple[asyncio.subprocess.Process, int]]:
    """``python -m consentgate serve`` started and *not* waited for: the notification is
    what the test waits for (``gate_process`` waits for the probe first)."""
    port = free_port()
    config = write_config(tmp_path, upstream, port, sections)
    process = await spawn_serve(config, env={**os.environ, **env})
    try:
        yield process, port
    finally:
        await stop(process)


async def stop(process: asyncio.subprocess.Process) -> None:
    """SIGTERM (the parent stops its workers); after TIMEOUT, SIGKILL to the parent and
    each worker, which would otherwise outlive it holding the port and the stderr pipe."""
    if process.returncode is not None:
        return
    workers: set[int] = set()
    with contextlib.suppress(OSError):
        workers = worker_pids(process.pid)
    process.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), TIMEOUT)
    except TimeoutError:
        for pid in (process.pid, *workers):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        await asyncio.wait_for(process.wait(), TIMEOUT)


async def healthz(port: int) -> int:
    """One request to the liveness probe, no retry: its status, or 0 when refused."""
    timeout = aiohttp.ClientTimeout(total=5)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        try:
            async with session.get(f"http://127.0.0.1:{port}/_consentgate/healthz") as response:
                return response.status
        except aiohttp.ClientConnectionError:
            return 0


async def stderr_of(process: asyncio.subprocess.Process) -> str:
    assert process.stderr is not None
    return (await asyncio.wait_for(process.stderr.read(), TIMEOUT)).decode()


async def test_ready_once_listening_reloading_on_sighup_stopping_on_sigterm(
    tmp_path: Path, upstream: str, notify_socket: NotifySocket
) -> None:
    env = {"NOTIFY_SOCKET": notify_socket.path}
    async with started_gate(tmp_path, upstream, env) as (process, port):
        ready = await notify_socket.next()
        # The very first request after READY=1 is answered: it was sent once listening.
        assert await healthz(port) == 200
        assert "READY=1" in ready
        assert ready.pid == process.pid
        assert ready.fields["MAINPID"] == str(process.pid)
        assert ready.fields["STATUS"] == f"listening on http://127.0.0.1:{port}"

        before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        process.send_signal(signal.SIGHUP)
        reloading = await notify_socket.next()
        reloaded = await notify_socket.next()
        assert "RELOADING=1" in reloading
        assert (
            before
            <= int(reloading.fields["MONOTONIC_USEC"])
            <= time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        )
        assert "READY=1" in reloaded
        assert reloaded.fields["STATUS"] == ready.fields["STATUS"]
        assert await healthz(port) == 200

        process.send_signal(signal.SIGTERM)
        stopping = await notify_socket.next()
        assert "STOPPING=1" in stopping
        assert await asyncio.wait_for(process.wait(), TIMEOUT) == 0
        log = await stderr_of(process)
    assert notify_socket.pending() == []  # nothing else: no watchdog was asked for
    assert {m.pid for m in (ready, reloading, reloaded, stopping)} == {process.pid}
    assert "keys reloaded" in log
    assert "could not notify" not in log


async def test_watchdog_pings_at_half_of_watchdog_usec(
    tmp_path: Path, upstream: str, notify_socket: NotifySocket
) -> None:
    env = {**os.environ, "NOTIFY_SOCKET": notify_socket.path, "WATCHDOG_USEC": "400000"}
    async with gate_process(tmp_path, upstream, env=env) as gate:
        first = await notify_socket.next()
        assert "READY=1" in first
        pings: list[float] = []
        while len(pings) < 6:
            message = await notify_socket.next(timeout=5)
            assert message.fields == {"WATCHDOG": "1"}
            assert message.pid == gate.pid
            pings.append(message.at)
        gate.process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(gate.process.wait(), TIMEOUT) == 0
    gaps = [later - earlier for earlier, later in itertools.pairwise(pings)]
    assert 0.1 < statistics.median(gaps) < 0.35, gaps  # every 0.2 s
    left = notify_socket.pending()
    assert [m.fields for m in left if "STOPPING=1" in m] == [
        {"STOPPING": "1", "STATUS": "stopping"}
    ]
    assert all("WATCHDOG=1" in m or "STOPPING=1" in m for m in left), left


async def test_a_notify_socket_nobody_reads_is_one_warning_and_the_gate_serves(
    tmp_path: Path, upstream: str
) -> None:
    env = {**os.environ, "NOTIFY_SOCKET": str(tmp_path / "nobody.sock"), "WATCHDOG_USEC": "400000"}
    async with gate_process(tmp_path, upstream, env=env) as gate:
        gate.process.send_signal(signal.SIGHUP)
        await asyncio.sleep(1)  # several watchdog pings and the reload, all failing
        assert await healthz(int(gate.url.rsplit(":", 1)[1])) == 200
        gate.process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(gate.process.wait(), TIMEOUT) == 0
        log = await gate.stderr_text()
    warnings = [line for line in log.splitlines() if "could not notify" in line]
    assert len(warnings) == 1, log[-3000:]
    assert "WARNING" in warnings[0]
    assert "keys reloaded" in log


def listening_inodes(port: int) -> set[str]:
    """The socket inodes listening on 127.0.0.1:``port`` (``/proc/net/tcp``)."""
    local = f"0100007F:{port:04X}"
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == local and fields[3] == "0A":  # TCP_LISTEN
            found.add(fields[9])
    return found


def socket_inodes(pid: int) -> set[str]:
    found = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                found.add(target[len("socket:[") : -1])
    return found


async def test_with_workers_only_the_parent_notifies_once_every_worker_listens(
    tmp_path: Path, upstream: str, notify_socket: NotifySocket
) -> None:
    env = {"NOTIFY_SOCKET": notify_socket.path, "WATCHDOG_USEC": "1000000"}
    sections: dict[str, dict[str, Any]] = {"server": {"workers": 2, "shutdown_grace": 2}}
    async with started_gate(tmp_path, upstream, env, sections) as (process, port):
        received = await notify_socket.until("READY=1")  # after watchdog pings, maybe
        # At READY=1 both workers hold a listening socket on the port.
        workers = worker_pids(process.pid)
        listening = listening_inodes(port)
        assert len(workers) == 2
        assert all(socket_inodes(pid) & listening for pid in workers), (workers, listening)
        assert await healthz(port) == 200
        ready = received[-1]
        assert ready.fields["MAINPID"] == str(process.pid)
        assert ready.fields["STATUS"] == f"2 workers listening on 127.0.0.1:{port}"

        process.send_signal(signal.SIGHUP)
        after_hup = await notify_socket.until("READY=1")
        states = [m.fields for m in after_hup if "WATCHDOG=1" not in m]
        assert [next(iter(s)) for s in states] == ["RELOADING", "READY"]

        await asyncio.sleep(1.2)  # the parent pings its watchdog every 0.5 s
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), TIMEOUT) == 0
        log = await stderr_of(process)
    received += after_hup + notify_socket.pending()
    assert {m.pid for m in received} == {process.pid}, "a worker notified"
    assert [m.fields["STATUS"] for m in received if "READY=1" in m] == [ready.fields["STATUS"]] * 2
    assert sum("WATCHDOG=1" in m for m in received) >= 2
    assert sum("STOPPING=1" in m for m in received) == 1
    assert log.count("keys reloaded") == 2  # each worker reloaded


UNIT = Path(__file__).resolve().parents[2] / "contrib" / "systemd" / "consentgate.service"


def unit_settings(text: str) -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            settings.setdefault(key, []).append(value)
    return settings


def test_the_unit_notifies_reloads_and_outlasts_the_default_grace() -> None:
    settings = unit_settings(UNIT.read_text())
    assert settings["Type"] == ["notify"]
    # The shell's kill: /bin/kill (procps) is missing on minimal Debian roots.
    assert settings["ExecReload"] == ["/bin/sh -c 'kill -HUP $$MAINPID'"]
    assert settings["KillMode"] == ["mixed"]  # SIGTERM to the supervisor, which passes it on
    (grace,) = (f.default for f in dataclasses.fields(ServerConfig) if f.name == "shutdown_grace")
    assert isinstance(grace, float)
    (stop,) = settings["TimeoutStopSec"]
    assert float(stop.removesuffix("s")) > grace + KILL_AFTER_GRACE
    assert settings["StateDirectory"] == ["consentgate"]
    assert settings["StateDirectoryMode"] == ["0700"]


def verify(unit: Path) -> tuple[int, list[str]]:
    """``systemd-analyze verify``: its exit status and the lines about our unit (it may
    also warn about unrelated units of the machine it runs on)."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (Debian: the systemd package)")
    done = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False
    )
    output = (done.stdout + done.stderr).splitlines()
    return done.returncode, [line for line in output if "consentgate.service" in line]


def test_systemd_analyze_verify_finds_nothing_wrong_with_the_unit(tmp_path: Path) -> None:
    text = UNIT.read_text()
    (exec_start,) = unit_settings(text)["ExecStart"]
    program = exec_start.split()[0]
    # The unit names /usr/local/bin/consentgate.pyz, which verify checks exists.
    copy = tmp_path / "consentgate.service"
    copy.write_text(text.replace(f"ExecStart={program} ", f"ExecStart={sys.executable} ", 1))
    assert copy.read_text() != text
    code, about_ours = verify(copy)
    assert about_ours == []
    assert code == 0

    # The filter is not blind: a mistake in the unit is a line naming it.
    copy.write_text(copy.read_text().replace("Type=notify\n", "Type=notfy\n"))
    _, about_ours = verify(copy)
    assert any("notfy" in line for line in about_ours), about_ours
