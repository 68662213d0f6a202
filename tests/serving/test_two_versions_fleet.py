"""Two versions on one store, with a real gate process: a migration of a later release
that would break the running gate is refused naming the gate's process, waits for it
to stop (``--wait``'s loop) and then goes ahead; an additive one goes ahead under it
while it keeps serving. On one SQLite file and on a real PostgreSQL. And with several
workers, each is a gate of its own in the store.

The later release's migration is this code's plus synthetic steps of a declared level
(tests/support/later_release.py): no release of this code has a breaking step yet.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import aiosqlite
import pytest

from consentgate.core.attached_gates import GatesAttached
from consentgate.core.schema_versions import POSTGRES_SCHEMA, SQLITE_SCHEMA
from consentgate.store.opening import while_gates_attached
from consentgate.store.parts.readiness import HEALTH_INTERVAL
from consentgate.store.sqlite import sqlite_schema
from tests.conftest import StartUpstream
from tests.serving.test_key_rotation import shared_store
from tests.serving.test_workers import wait_for, worker_pids
from tests.support.browsersim import Browser
from tests.support.fakeproxy import FakeProxy
from tests.support.gateproc import free_port, gate_process, spawn_serve, write_config
from tests.support.later_release import migrate_postgres_later, migrate_sqlite_later
from tests.support.pgcluster import postgres_cluster
from tests.web.consent_flow.test_authorize import CLIENT_REDIRECT, approve_new, auth_params

pytestmark = pytest.mark.slow  # gate processes

__all__ = ["postgres_cluster"]  # the session fixture, used by name on PostgreSQL


@pytest.fixture(params=["sqlite", "postgres"])
def store_section(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    return shared_store(request, tmp_path)


async def migrate_later(store: dict[str, str], *, level: int, extra: int = 1) -> tuple[int, int]:
    if "path" in store:
        return await migrate_sqlite_later(Path(store["path"]), level=level, extra=extra)
    return await migrate_postgres_later(store["url"], level=level, extra=extra)


async def readyz(url: str) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{url}/_consentgate/readyz") as response,
    ):
        return response.status, await response.json()


async def register(url: str) -> str:
    body = {"redirect_uris": [CLIENT_REDIRECT], "client_name": "Example Client"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{url}/register", json=body) as response,
    ):
        assert response.status == 201
        client_id: str = (await response.json())["client_id"]
    return client_id


async def test_a_later_breaking_migration_waits_for_the_running_gate_an_additive_one_does_not(
    tmp_path: Path, start_upstream: StartUpstream, store_section: dict[str, str]
) -> None:
    proxy = FakeProxy()
    upstream = await start_upstream(proxy.app())
    schema = SQLITE_SCHEMA if "path" in store_section else POSTGRES_SCHEMA
    sections = {"store": store_section}
    async with gate_process(tmp_path, upstream, sections, create_store=True) as gate:
        proxy.public_url = gate.url
        client_id = await register(gate.url)

        # Breaking for the running gate: refused, naming its process; nothing changed.
        with pytest.raises(GatesAttached) as refused:
            await migrate_later(store_section, level=schema + 1)
        assert [attached.pid for attached in refused.value.gates] == [gate.pid]
        assert f"pid {gate.pid} (consentgate " in str(refused.value)
        assert (await readyz(gate.url))[0] == 200

        # Additive: goes ahead under the running gate, which keeps serving.
        assert await migrate_later(store_section, level=schema) == (schema, schema + 1)
        async with Browser(gate.url) as alice:
            assert (await approve_new(alice, auth_params(client_id))).status == 303
            assert (await alice.authorize(auth_params(client_id, state="again"))).status == 302
        await asyncio.sleep(HEALTH_INTERVAL + 0.5)  # the next probe reads the version again
        assert (await readyz(gate.url))[0] == 200

        # Breaking again, now waiting: it goes ahead once the gate stopped.
        migration = asyncio.create_task(
            while_gates_attached(
                lambda: migrate_later(store_section, level=schema + 2, extra=2), 60, poll=0.2
            )
        )
        await asyncio.sleep(1.0)
        assert not migration.done()
        gate.process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(gate.process.wait(), 15) == 0
        assert await asyncio.wait_for(migration, 15) == (schema + 1, schema + 2)

    # This code does not run on what the breaking migration left: refused at start,
    # one line, no traceback.
    process = await spawn_serve(tmp_path / "gate.toml")
    assert await asyncio.wait_for(process.wait(), 30) != 0
    assert process.stderr is not None
    stderr = (await process.stderr.read()).decode()
    assert f"has schema version {schema + 2}, newer than the {schema}" in stderr
    assert "Traceback" not in stderr


def catches_sigterm(pid: int) -> bool:
    """Whether the process handles SIGTERM (its bit in /proc's SigCgt mask)."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("SigCgt:"):
                return bool(int(line.split()[1], 16) & (1 << (signal.SIGTERM - 1)))
    return False


def attached_pids(store_path: Path) -> set[int]:
    with sqlite3.connect(store_path) as conn:
        pids = {int(row[0]) for row in conn.execute("SELECT pid FROM gates")}
    conn.close()
    return pids


async def test_every_worker_is_a_gate_of_its_own_and_leaves_when_the_gate_stops(
    tmp_path: Path, start_upstream: StartUpstream
) -> None:
    upstream = await start_upstream(FakeProxy().app())
    store_path = tmp_path / "store.sqlite3"
    sections: dict[str, dict[str, Any]] = {"server": {"workers": 2, "shutdown_grace": 3}}
    async with gate_process(tmp_path, upstream, sections, create_store=True) as gate:
        workers: set[int] = set()

        def two_workers() -> bool:
            workers.clear()
            workers.update(worker_pids(gate.pid))
            return len(workers) == 2

        await wait_for(two_workers)
        await wait_for(lambda: attached_pids(store_path) == workers)
        assert gate.pid not in attached_pids(store_path)  # the supervisor serves nothing

        killed = min(workers)
        os.kill(killed, signal.SIGKILL)  # leaves its row: stale in a minute
        replaced: set[int] = set()

        def two_workers_again() -> bool:  # one reading of /proc, kept when it is right
            replaced.clear()
            replaced.update(worker_pids(gate.pid) - {killed})
            return len(replaced) == 2

        await wait_for(two_workers_again)
        await wait_for(lambda: attached_pids(store_path) == replaced | {killed})
        # A worker killed by a SIGTERM that comes before it handles one leaves its row
        # (stale in a minute, like the killed one's): stop once both handle it.
        await wait_for(lambda: all(catches_sigterm(pid) for pid in replaced))

        gate.process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(gate.process.wait(), 15) == 0
        log = await gate.stderr_text()
    assert attached_pids(store_path) == {killed}, log[-3000:]


async def a_store_under_an_announcing_older_gate(path: Path) -> None:
    """A SQLite store at schema 6 that a gate of schema 5 announces itself in, alive:
    what this release's migration to 7 (which runs code of 6 or newer) must not break.
    (No release of schema 5 announced itself; the table is put there by hand.)"""
    db = await aiosqlite.connect(path, isolation_level=None)
    try:
        await sqlite_schema.migrate(
            db, path, migrations=sqlite_schema.MIGRATIONS[:6], levels=sqlite_schema.LEVELS[:6]
        )
        await db.execute(sqlite_schema.MIGRATIONS[6][0])  # CREATE TABLE gates
        await db.execute(
            "INSERT INTO gates VALUES ('old-1', 5, '0.1.9', 'old-host', 4242, ?, ?, 15)",
            (int(time.time()) - 600, int(time.time())),
        )
    finally:
        await db.close()
    path.chmod(0o600)


async def test_serve_and_migrate_refuse_in_one_line_to_break_an_attached_gate(
    tmp_path: Path, start_upstream: StartUpstream
) -> None:
    upstream = await start_upstream(FakeProxy().app())
    store_path = tmp_path / "store.sqlite3"
    await a_store_under_an_announcing_older_gate(store_path)
    config = write_config(tmp_path, upstream, free_port())
    named = "old-host pid 4242 (consentgate 0.1.9, schema 5, seen "  # N s ago

    process = await spawn_serve(config)
    assert await asyncio.wait_for(process.wait(), 30) == 1
    assert process.stderr is not None
    stderr = (await process.stderr.read()).decode()
    assert named in stderr
    assert "stop those gates first" in stderr
    assert "Traceback" not in stderr

    migrate = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "consentgate", "migrate", "--config", str(config), "--wait", "1s",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(migrate.communicate(), 30)
    assert migrate.returncode == 1
    lines = err.decode().splitlines()
    assert lines[0].startswith(f"consentgate: waiting up to 1 s for 1 gate(s) of an older "
                               f"consentgate to leave sqlite:{store_path}: {named}")  # fmt: skip
    assert lines[-1].startswith(f"consentgate: error: the consent store {store_path} was not")
    assert lines[-1].endswith("(waited 1 s)")
    assert named in lines[-1]
    assert out == b""
    with sqlite3.connect(store_path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (6,)
    conn.close()
