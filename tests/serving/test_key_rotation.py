"""Rotating the signing key of two gate processes on one store, one of them not yet
reloaded (docs/deploy.md, "Rotating the keys of several instances").

Two ``consentgate serve`` processes share one store (a SQLite file, or a PostgreSQL
database), as two instances do; each has its own keys directory, a copy of the
first, as each host has its own copy of the keys (a secret mounted on every host,
updated on each at its own time). A round-robin front sends each request of one
browser to the gate the test chooses, so a consent page rendered by one gate is
answered on the other, and an approval remembered by one is asked of the other.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import StartUpstream
from tests.support.browsersim import Browser
from tests.support.fakeproxy import FakeProxy
from tests.support.gateproc import GateProcess, gate_process, write_config
from tests.support.pgcluster import GATE_ROLE, PostgresCluster, postgres_cluster
from tests.support.roundrobin import RoundRobin
from tests.web.consent_flow.test_authorize import CLIENT_REDIRECT, auth_params

pytestmark = pytest.mark.slow  # two gate processes and several CLI runs

__all__ = ["postgres_cluster"]  # the session fixture, used by name on PostgreSQL

A, B = 0, 1


@dataclass
class Gate:
    home: Path
    process: GateProcess
    lines: list[str] = field(default_factory=list)

    @property
    def keys(self) -> Path:
        return self.home / "keys"

    async def logged(self, text: str, after: int, seconds: float = 15) -> None:
        """Wait until a log line from index ``after`` on contains ``text``."""
        deadline = asyncio.get_running_loop().time() + seconds
        while asyncio.get_running_loop().time() < deadline:
            if any(text in line for line in self.lines[after:]):
                return
            await asyncio.sleep(0.05)
        raise TimeoutError(f"the gate did not log {text!r}")

    async def reload(self) -> None:
        """SIGHUP, and wait until the gate re-read its keys directory."""
        seen = len(self.lines)
        self.process.process.send_signal(signal.SIGHUP)
        await self.logged("keys reloaded", seen)

    async def readyz(self) -> tuple[int, dict[str, Any]]:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{self.process.url}/_consentgate/readyz") as response,
        ):
            return response.status, await response.json()


@dataclass
class Fleet:
    url: str
    gates: list[Gate]
    proxy: FakeProxy
    target: list[int]

    def to(self, index: int) -> None:
        """Send the next connections to gate ``index``."""
        self.target[0] = index


async def consentgate(*args: str) -> str:
    """Run a ``consentgate`` command as an operator would; its output."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "consentgate",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, output.decode()
    return output.decode()


async def _drain(process: GateProcess, lines: list[str]) -> None:
    stream = process.process.stderr
    assert stream is not None
    while line := await stream.readline():
        lines.append(line.decode(errors="replace"))


def shared_store(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    """The ``[store]`` both gates use: one SQLite file, or one PostgreSQL database."""
    if request.param == "sqlite":
        return {"path": str(tmp_path / "store.sqlite3")}
    cluster: PostgresCluster = request.getfixturevalue("postgres_cluster")
    return {"url": cluster.dsn(cluster.create_database(owner=GATE_ROLE), user=GATE_ROLE)}


@pytest.fixture(params=["sqlite", "postgres"])
async def fleet(
    request: pytest.FixtureRequest, tmp_path: Path, start_upstream: StartUpstream
) -> AsyncIterator[Fleet]:
    proxy = FakeProxy()
    upstream = await start_upstream(proxy.app())
    target = [A]
    backends: list[tuple[str, int]] = []
    front = RoundRobin(backends, steer=lambda _line: target[0])
    homes = [tmp_path / "gate-a", tmp_path / "gate-b"]
    for home in homes:
        home.mkdir()
    async with front.serve() as url, contextlib.AsyncExitStack() as stack:
        proxy.public_url = url
        sections: dict[str, dict[str, Any]] = {
            "server": {"public_url": url},
            "store": shared_store(request, tmp_path),
        }
        await consentgate(
            "keys", "generate", "--config", str(write_config(homes[A], upstream, 0, sections))
        )
        shutil.copytree(homes[A] / "keys", homes[B] / "keys")  # the same keys on both hosts
        gates: list[Gate] = []
        drains: list[asyncio.Task[None]] = []
        for index, home in enumerate(homes):
            process = await stack.enter_async_context(
                gate_process(home, upstream, sections, create_store=index == A)
            )
            gate = Gate(home, process)
            drains.append(asyncio.create_task(_drain(process, gate.lines)))
            gates.append(gate)
        backends.extend(("127.0.0.1", int(g.process.url.rsplit(":", 1)[1])) for g in gates)
        try:
            yield Fleet(url, gates, proxy, target)
        finally:
            for task in drains:
                task.cancel()


async def register(fleet: Fleet, on: int) -> str:
    fleet.to(on)
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{fleet.url}/register",
            json={"redirect_uris": [CLIENT_REDIRECT], "client_name": "Example Client"},
        ) as response,
    ):
        assert response.status == 201
        client_id: str = (await response.json())["client_id"]
    return client_id


@dataclass
class Outcome:
    """What a person got in the sign-ins of :func:`sign_ins`."""

    refused: int = 0  # a consent answer refused
    asked_again: int = 0  # a remembered approval asked again


async def sign_ins(fleet: Fleet, client_id: str, count: int) -> Outcome:
    """``count`` people each get a page from one gate, answer it on the other (approve,
    remember), then sign in again on both: alternately A then B, and B then A."""
    outcome = Outcome()
    for n in range(count):
        first, second = (A, B) if n % 2 == 0 else (B, A)
        async with Browser(fleet.url, fresh_connections=True) as browser:
            fleet.to(first)
            page = await browser.authorize(auth_params(client_id))
            assert page.is_consent_page, page.text[:300]
            fleet.to(second)
            answered = await browser.answer(page, "approve", remember=True)
            if answered.status != 303:
                outcome.refused += 1
                continue
            for gate in (first, second):
                fleet.to(gate)
                again = await browser.authorize(auth_params(client_id))
                if again.status != 302:
                    outcome.asked_again += 1
    return outcome


async def staged_kid(fleet: Fleet) -> str:
    output = await consentgate("keys", "add", "--config", str(fleet.gates[A].process.config_path))
    match = re.search(r"new key ([A-Za-z0-9_-]{16})", output)
    assert match is not None, output
    return match.group(1)


async def test_a_staged_rotation_refuses_no_answer_while_a_gate_has_not_reloaded(
    fleet: Fleet,
) -> None:
    gate_a, gate_b = fleet.gates
    client_id = await register(fleet, on=A)
    old = (await consentgate("keys", "list", "--config", str(gate_a.process.config_path))).split()
    kid = await staged_kid(fleet)

    # B's keys directory does not have the staged key yet: B says so, still ready.
    status, lagging = await gate_b.readyz()
    assert status == 200
    assert any(kid in warning for warning in lagging.get("warnings", [])), lagging

    # The key reaches B's directory (the mounted secret is updated there): B learns it
    # from the store's publication, without a reload.
    shutil.copy2(gate_a.keys / f"ed25519-{kid}.pem", gate_b.keys / f"ed25519-{kid}.pem")
    await gate_b.logged("keys learned", 0)
    status, caught_up = await gate_b.readyz()
    assert (status, caught_up.get("warnings", [])) == (200, [])

    await consentgate("keys", "activate", kid, "--config", str(gate_a.process.config_path))
    await gate_a.reload()  # A signs with the new key
    shutil.copy2(gate_a.keys / "active", gate_b.keys / "active")  # B has not reloaded

    outcome = await sign_ins(fleet, client_id, 8)
    assert outcome == Outcome(refused=0, asked_again=0)
    # A client registered by A (signed with the new key) is known to B.
    fresh_client = await register(fleet, on=A)
    assert (await sign_ins(fleet, fresh_client, 2)) == Outcome()
    # B is named as behind: it still signs with the previous key.
    status, behind = await gate_b.readyz()
    assert status == 200
    assert behind["warnings"] == [
        f"keys: this gate signs with {old[4]}, the store's signing key is {kid}; "
        "reload this gate (SIGHUP) once its keys directory has it"
    ]
    await gate_b.reload()
    assert (await gate_b.readyz()) == (200, {"status": "ready"})


async def test_a_one_step_rotation_makes_a_gate_without_the_new_key_not_ready(
    fleet: Fleet,
) -> None:
    gate_a, gate_b = fleet.gates
    client_id = await register(fleet, on=A)
    output = await consentgate("keys", "rotate", "--config", str(gate_a.process.config_path))
    match = re.search(r"new active signing key ([A-Za-z0-9_-]{16})", output)
    assert match is not None, output
    await gate_a.reload()

    # What the one-step form does to a gate that has neither the key nor a reload:
    # approvals A remembers are asked again on B.
    outcome = await sign_ins(fleet, client_id, 4)
    assert outcome.asked_again > 0
    # And B says that it is behind, so the balancer stops sending it traffic.
    status, document = await gate_b.readyz()
    assert status == 503, document
    assert any(match.group(1) in reason for reason in document["reasons"]), document
