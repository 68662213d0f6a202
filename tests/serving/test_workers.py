"""``[server] workers = N``: N real processes on one port, supervised by a real parent."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import platform
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from consentgate import __version__
from tests.conftest import StartUpstream, admin_section, bound_socket
from tests.support.gateproc import free_port, gate_process, write_config

pytestmark = pytest.mark.slow  # consentgate serve with worker processes


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


def dead(pid: int) -> bool:
    """Gone, or a zombie: its sockets are closed (connections the kernel had queued for
    it are reset, a limit of SO_REUSEPORT that docs/deploy.md states)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):  # reaped, maybe between open and read
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def socket_inodes(pid: int) -> set[str]:
    inodes = set()
    with contextlib.suppress(OSError):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
    return inodes


def listens(pid: int, url: str) -> bool:
    """Whether the worker ``pid`` has a listening socket on the port of ``url``: until
    it has, the kernel sends every new connection to the workers that do."""
    port = f"{int(url.rsplit(':', 1)[1]):04X}"
    mine = socket_inodes(pid)
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                local, state, inode = fields[1], fields[3], fields[9]
                if state == "0A" and local.endswith(f":{port}") and inode in mine:
                    return True
    return False


async def wait_for(condition: Callable[[], bool], seconds: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while asyncio.get_running_loop().time() < deadline:
        if condition():
            return
        await asyncio.sleep(0.1)
    raise TimeoutError("the condition did not become true in time")


async def fetch_on_new_connections(url: str, count: int) -> list[int]:
    statuses = []
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:
        for _ in range(count):
            async with session.get(f"{url}/hello") as response:
                statuses.append(response.status)
                await response.read()
    return statuses


@pytest.fixture
async def upstream(start_upstream: StartUpstream) -> str:
    async def hello(request: web.Request) -> web.Response:
        return web.json_response({"hello": "world"})

    app = web.Application()
    app.router.add_get("/hello", hello)
    return await start_upstream(app)


async def test_two_workers_share_the_port_a_dead_one_is_replaced_and_sigterm_stops_all(
    tmp_path: Path, upstream: str
) -> None:
    sections: dict[str, dict[str, Any]] = {
        "server": {"workers": 2, "shutdown_grace": 3},
        "log": {"access_log": True},
    }
    async with gate_process(tmp_path, upstream, sections) as gate:
        await wait_for(lambda: len(worker_pids(gate.pid)) == 2)
        first = worker_pids(gate.pid)
        await wait_for(lambda: all(listens(pid, gate.url) for pid in first))
        assert await fetch_on_new_connections(gate.url, 40) == [200] * 40

        victim = min(first)
        os.kill(victim, signal.SIGKILL)
        await wait_for(lambda: dead(victim))
        # The other worker keeps serving while the supervisor replaces the dead one.
        assert await fetch_on_new_connections(gate.url, 10) == [200] * 10
        await wait_for(lambda: len(worker_pids(gate.pid) - {victim}) == 2)
        await wait_for(lambda: all(listens(pid, gate.url) for pid in worker_pids(gate.pid)))
        assert await fetch_on_new_connections(gate.url, 10) == [200] * 10

        started = asyncio.get_running_loop().time()
        gate.process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(gate.process.wait(), 10)
        took = asyncio.get_running_loop().time() - started
        log = await gate.stderr_text()
    assert code == 0
    assert took < 3 + 2  # the grace, plus a margin for two interpreters to exit
    assert all(not Path(f"/proc/{pid}").exists() for pid in first - {victim})
    access = [line for line in log.splitlines() if " consentgate.access " in line]
    served_by = {part for line in access for part in line.split() if part.startswith("worker=")}
    assert served_by == {"worker=1", "worker=2"}, log[-2000:]
    assert "worker exited; restarting it" in log
    assert "supervising workers" in log


async def test_a_worker_that_cannot_start_stops_the_gate_with_an_error(
    tmp_path: Path, upstream: str
) -> None:
    taken = bound_socket()  # listening, without SO_REUSEPORT: nobody else may bind it
    port = taken.getsockname()[1]
    config = write_config(tmp_path, upstream, port, {"server": {"workers": 2}})
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "consentgate",
            "serve",
            "--config",
            str(config),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        # A bound, not a measure: the gate stops as soon as a worker reports its failed
        # start, however long the machine takes to spawn it; only a restart loop ends here.
        _, err = await asyncio.wait_for(process.communicate(), 60)
    finally:
        taken.close()
        if process.returncode is None:
            process.kill()
            await process.wait()
    text = err.decode()
    assert process.returncode == 1, text
    assert "the address is already in use" in text
    assert "a worker failed while the gate was starting; stopping" in text
    assert "worker exited; restarting it" not in text


async def hold_workers_as_they_appear(parent: int, count: int) -> set[int]:
    """SIGSTOP each of the parent's ``count`` workers as soon as it exists, long before
    it can bind (a spawned interpreter imports the gate first): what a loaded machine
    does to a starting worker, on purpose. Each is checked to be held alive."""
    held: set[int] = set()
    deadline = asyncio.get_running_loop().time() + 60
    while len(held) < count:
        assert asyncio.get_running_loop().time() < deadline, "the workers never appeared"
        for pid in worker_pids(parent) - held:
            os.kill(pid, signal.SIGSTOP)
            held.add(pid)
        await asyncio.sleep(0.005)
    for pid in held:
        await wait_for(functools.partial(stopped_or_gone, pid))
        assert not dead(pid), "a worker finished starting before it could be held"
    return held


def stopped_or_gone(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):  # reaped, maybe between open and read
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("T", "Z", "X")


async def test_a_worker_slower_to_fail_than_the_young_window_still_stops_the_gate(
    tmp_path: Path, upstream: str
) -> None:
    """On a loaded machine a worker may take more than the supervisor's young window
    (``YOUNG`` seconds) to find it cannot start. That is still a failed start: the gate
    stops with status 1 instead of restarting workers that can never bind."""
    from consentgate.serving.workers import YOUNG

    taken = bound_socket()  # listening, without SO_REUSEPORT: nobody else may bind it
    port = taken.getsockname()[1]
    config = write_config(tmp_path, upstream, port, {"server": {"workers": 2}})
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "consentgate",
        "serve",
        "--config",
        str(config),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    reading = asyncio.create_task(process.stderr.read())
    try:
        held = await hold_workers_as_they_appear(process.pid, 2)
        await asyncio.sleep(YOUNG + 1)  # the scenario: a start slower than the window
        for pid in held:
            os.kill(pid, signal.SIGCONT)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(process.wait(), 30)  # a bound: it stops at once, or never
    finally:
        taken.close()
        if process.returncode is None:
            process.kill()
            await process.wait()
    text = (await reading).decode()
    assert process.returncode == 1, f"the gate did not stop by itself:\n{text[-3000:]}"
    assert "the address is already in use" in text
    assert "a worker failed while the gate was starting; stopping" in text
    assert "worker exited; restarting it" not in text


def mapped_files(pid: int) -> set[str]:
    """The files a process has mapped: its shared libraries, compiled extensions included."""
    return {
        line.split(maxsplit=5)[5]
        for line in Path(f"/proc/{pid}/maps").read_text().splitlines()
        if len(line.split(maxsplit=5)) == 6
    }


async def test_the_supervisor_of_several_workers_does_not_load_the_web_layer(
    tmp_path: Path, upstream: str
) -> None:
    """The parent only prepares, spawns and watches: aiohttp (its compiled parsers) is
    loaded by each worker, not by the parent, whose start it would only slow down."""
    async with gate_process(tmp_path, upstream, {"server": {"workers": 2}}) as gate:
        await wait_for(lambda: len(worker_pids(gate.pid)) == 2)
        workers = worker_pids(gate.pid)
        await wait_for(lambda: all(listens(pid, gate.url) for pid in workers))
        parent = {name for name in mapped_files(gate.pid) if "/aiohttp/" in name}
        worker = {name for name in mapped_files(min(workers)) if "/aiohttp/" in name}
    assert worker, "a worker has aiohttp's extensions mapped (the check can see them)"
    assert parent == set()


def test_several_workers_need_a_fixed_port(tmp_path: Path, upstream: str) -> None:
    from consentgate.config.loading import ConfigError, load_config

    path = write_config(tmp_path, upstream, free_port(), {"server": {"workers": 2}})
    path.write_text(path.read_text().replace('listen = "127.0.0.1:', 'listen = "127.0.0.1:0" #'))
    with pytest.raises(ConfigError, match=r"server.workers: 2 workers share one fixed port"):
        load_config(path)


async def scrape(url: str) -> dict[str, float]:
    """One scrape on a new connection (so successive scrapes may reach other workers)."""
    connector = aiohttp.TCPConnector(force_close=True)
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.get(f"{url}/metrics") as response,
    ):
        assert response.status == 200
        text = await response.text()
    return {
        sample.name + str(sorted(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def worker_socket(pid: int) -> Path:
    """The Unix socket a worker answers the other workers' scrapes on (from /proc)."""
    inodes = socket_inodes(pid)
    for line in Path("/proc/net/unix").read_text().splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 8 and fields[6] in inodes and "/worker-" in fields[7]:
            return Path(fields[7])
    raise LookupError(f"worker {pid} has no metrics socket")


async def own_figures(pid: int) -> dict[str, float]:
    connector = aiohttp.UnixConnector(path=str(worker_socket(pid)))
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.get("http://worker/metrics/local") as response,
    ):
        text = await response.text()
    return {
        sample.name + str(sorted(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def test_with_two_workers_every_scrape_counts_both_workers_requests(
    tmp_path: Path, upstream: str
) -> None:
    """Issue 13, point 1: /metrics reports all workers together, whichever answers."""
    admin = f"127.0.0.1:{free_port()}"
    sections: dict[str, dict[str, Any]] = {
        "server": {"workers": 2},
        "admin": admin_section(tmp_path, admin),
    }
    relayed = "consentgate_relayed_responses_total[('status_class', '2xx')]"
    answered = "consentgate_metrics_workers[('state', 'answered')]"
    missing = "consentgate_metrics_workers[('state', 'missing')]"
    async with gate_process(tmp_path, upstream, sections) as gate:
        await wait_for(lambda: len(worker_pids(gate.pid)) == 2)
        pids = sorted(worker_pids(gate.pid))
        await wait_for(lambda: all(listens(pid, gate.url) for pid in pids))
        await wait_for(lambda: all(worker_socket_or_none(pid) for pid in pids))
        assert await fetch_on_new_connections(gate.url, 40) == [200] * 40
        each = [(await own_figures(pid)).get(relayed, 0.0) for pid in pids]
        assert sum(each) == 40
        assert all(0 < count < 40 for count in each), each  # so one worker alone is wrong
        for _ in range(8):  # new connections: the scrapes land on either worker
            figures = await scrape(f"http://{admin}")
            assert (figures[answered], figures[missing]) == (2, 0)
            assert figures[relayed] == 40
            build = f"consentgate_build_info[('python', '{platform.python_version()}'), "
            assert figures[f"{build}('version', '{__version__}')]"] == 1
        # A worker that dies is missing from the sums until its replacement answers.
        os.kill(pids[0], signal.SIGKILL)
        await wait_for(lambda: dead(pids[0]))
        states = {(await scrape(f"http://{admin}"))[missing] for _ in range(6)}
        assert states <= {0.0, 1.0}


def worker_socket_or_none(pid: int) -> Path | None:
    try:
        return worker_socket(pid)
    except (LookupError, OSError):
        return None


def port_is_free(url: str) -> bool:
    """Whether a new listener binds the port of ``url`` without ``SO_REUSEPORT``: no
    worker is left listening there (``SO_REUSEADDR`` only passes TIME_WAIT leftovers)."""
    port = int(url.rsplit(":", 1)[1])
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
            sock.listen(1)
        except OSError:
            return False
    return True


async def test_workers_whose_supervisor_is_killed_finish_their_requests_and_free_the_port(
    tmp_path: Path, start_upstream: StartUpstream
) -> None:
    arrived = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        arrived.set()
        await asyncio.sleep(1.0)
        return web.Response(text="finished")

    app = web.Application()
    app.router.add_get("/slow", slow)
    upstream = await start_upstream(app)
    sections: dict[str, dict[str, Any]] = {"server": {"workers": 2, "shutdown_grace": 5}}
    workers: set[int] = set()
    try:
        async with gate_process(tmp_path, upstream, sections) as gate:
            await wait_for(lambda: len(worker_pids(gate.pid)) == 2)
            workers = worker_pids(gate.pid)
            await wait_for(lambda: all(listens(pid, gate.url) for pid in workers))
            async with aiohttp.ClientSession() as session:
                pending = asyncio.ensure_future(session.get(f"{gate.url}/slow"))
                await asyncio.wait_for(arrived.wait(), 15)
                gate.process.kill()  # the supervisor: kill -9, no chance to pass anything on
                # (not process.wait(): it waits for stderr too, which the workers hold)
                await wait_for(lambda: gate.process.returncode is not None)
                # The request in flight still ends well: a stop, not a vanishing.
                async with await asyncio.wait_for(pending, 15) as response:
                    assert response.status == 200
                    assert await response.text() == "finished"
            # A bound that only stops a hung test: the grace is 5 s.
            await wait_for(lambda: all(dead(pid) for pid in workers), 30)
            assert port_is_free(gate.url)
            log = await gate.stderr_text()
        assert log.count("the supervisor is gone; stopping") == 2, log[-2000:]
    finally:
        for pid in workers:  # what the unfixed gate leaves running
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
