"""The SQLite backend's own machinery: file checks and modes, PRAGMAs, migrations,
the query plan and the data_version probe.

Behaviour every backend shares is in test_store.py, test_backend_contract.py and
test_tamper_property.py (whose edits include what SQLite's dynamic typing lets an
attacker write); the tests here open SQLite files directly (mostly through
``ConsentStore.open``, the entry point the gate and the CLI use) and would have no
meaning for another backend.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from consentgate import ClientRecord, ConsentRecord, ConsentStore, KeyRing
from consentgate.core.signed.records import sign_record
from consentgate.core.startup_errors import StartupError
from consentgate.store.sqlite import SQLiteBackend
from consentgate.store.sqlite.sqlite_backend import LOOKUP
from consentgate.store.sqlite.sqlite_schema import SCHEMA_VERSION
from tests.store.conftest import CB, T0, FakeClock, SQLiteDatabase, approve, approved

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def database(tmp_path: Path) -> SQLiteDatabase:
    """This file's tests are SQLite's: the store fixture opens only a SQLite file here."""
    return SQLiteDatabase(tmp_path / "store.sqlite3")


def edit(path: Path, sql: str, *params: object) -> None:
    """Change the file behind the store's back, as an attacker with write access would."""
    with sqlite3.connect(path) as conn:
        conn.execute(sql, params)
    conn.close()


def sqlite_backend(store: ConsentStore) -> SQLiteBackend:
    backend = store._backend
    assert isinstance(backend, SQLiteBackend)
    return backend


# --- queries ------------------------------------------------------------------------------


def test_the_lookup_is_served_by_the_lookup_index(tmp_path: Path, ring: KeyRing) -> None:
    async def create() -> None:
        async with await ConsentStore.open(tmp_path / "s.sqlite3", ring):
            pass

    asyncio.run(create())
    with sqlite3.connect(tmp_path / "s.sqlite3") as conn:
        plan = conn.execute("EXPLAIN QUERY PLAN " + LOOKUP, ("s", "c", "r", "", 0)).fetchall()
    conn.close()
    assert "USING INDEX consents_lookup" in " ".join(str(row[-1]) for row in plan)


async def test_an_approval_does_not_empty_the_cache_of_other_answers(
    store: ConsentStore, database: SQLiteDatabase
) -> None:
    """#10.3: a new approval forgets only its own key, not everyone's cached answers."""
    await approve(store, subject="bob")
    assert await store.is_approved("bob", "client-1", CB, {"openid"})  # cached now
    await database.edit("UPDATE consents SET client_id = 'sneaky'")  # behind the cache
    # the edit is visible to the next check (another connection committed) ...
    assert not await store.is_approved("bob", "client-1", CB, {"openid"})
    await approve(store, subject="bob", client_id="client-2")
    assert await store.is_approved("bob", "client-2", CB, {"openid"})
    lookups = 0

    def count(statement: str) -> None:
        nonlocal lookups
        lookups += statement.startswith("SELECT id, subject")

    db = sqlite_backend(store)._db
    await db.set_trace_callback(count)
    await approve(store, subject="carol")
    assert await store.is_approved("bob", "client-2", CB, {"openid"})
    assert lookups == 1  # the one inside carol's write; bob's answer came from the cache
    await db.set_trace_callback(None)  # type: ignore[arg-type]


# --- migration ---------------------------------------------------------------------------

#: The first schema exactly as it shipped (schema version 1), frozen here on purpose.
SCHEMA_V1 = """
CREATE TABLE consents (
    id TEXT NOT NULL PRIMARY KEY,
    subject TEXT NOT NULL,
    client_id TEXT NOT NULL,
    redirect_uri TEXT NOT NULL,
    scopes TEXT NOT NULL,
    resource TEXT NOT NULL,
    granted_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER,
    key_id TEXT NOT NULL,
    signature BLOB NOT NULL
);
CREATE INDEX consents_lookup ON consents (subject, client_id, redirect_uri, resource, expires_at);
CREATE INDEX consents_by_client ON consents (client_id);
CREATE INDEX consents_by_redirect_uri ON consents (redirect_uri);
CREATE TABLE clients (
    client_id TEXT NOT NULL PRIMARY KEY,
    client_name TEXT,
    redirect_uris TEXT NOT NULL,
    client_uri TEXT,
    logo_uri TEXT,
    tos_uri TEXT,
    policy_uri TEXT,
    registered_at INTEGER NOT NULL,
    registration TEXT NOT NULL,
    key_id TEXT NOT NULL,
    signature BLOB NOT NULL
);
PRAGMA user_version = 1;
"""


async def test_a_store_of_the_first_schema_is_migrated_and_its_rows_still_verify(
    tmp_path: Path, ring: KeyRing, clock: FakeClock
) -> None:
    path = tmp_path / "v1.sqlite3"
    record = sign_record(
        ConsentRecord(
            id="old-1",
            subject="alice",
            client_id="client-1",
            redirect_uri=CB,
            scopes=frozenset({"openid"}),
            resource="",
            granted_at=int(T0) - 100,
            expires_at=int(T0) + 3600,
            revoked_at=None,
            key_id="",
            signature=b"",
        ),
        ring,
    )
    client = sign_record(ClientRecord.from_registration({"client_id": "client-1"}, 1), ring)
    with sqlite3.connect(path) as conn:
        conn.executescript(SCHEMA_V1)
        values = ", ".join("?" * 11)
        conn.execute(f"INSERT INTO consents VALUES ({values})", record.to_row())  # noqa: S608
        conn.execute(f"INSERT INTO clients VALUES ({values})", client.to_row())  # noqa: S608
    conn.close()

    async with await ConsentStore.open(path, ring, clock=clock) as store:
        assert await approved(store, record)
        assert await store.get_client("client-1") == client
        assert (await store.verify_all()).ok
        assert await store.count_pending() == 0
        assert await store.use_binding("b1", int(T0) + 60)
        assert await store.revoke(id="old-1") == 1
        assert not await approved(store, record)
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    conn.close()
    assert {"consents", "clients", "pending", "used_bindings", "counters"} <= tables


# --- startup errors ----------------------------------------------------------------------


def open_unprivileged(path: Path) -> subprocess.CompletedProcess[str]:
    """Open a store in a child process that file modes apply to.

    Root ignores file modes, so when the tests run as root the child drops its
    capabilities with setpriv (util-linux) and stays uid 0 without them.
    """
    code = textwrap.dedent(
        """
        import asyncio, sys
        from consentgate.core.startup_errors import StartupError
        from consentgate.core.signed.keyring import KeyRing
        from consentgate.store import ConsentStore

        async def main():
            store = await ConsentStore.open(sys.argv[1], KeyRing.generate())
            await store.close()

        try:
            asyncio.run(main())
        except StartupError as exc:
            print(exc)
            sys.exit(3)
        """
    )
    command = [sys.executable, "-c", code, str(path)]
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv: root ignores file modes")
        command = [setpriv, "--inh-caps=-all", "--bounding-set=-all", *command]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(command, capture_output=True, text=True, timeout=60, env=env, check=False)


async def test_a_missing_directory_is_a_clear_startup_error(tmp_path: Path, ring: KeyRing) -> None:
    path = tmp_path / "missing" / "store.sqlite3"
    with pytest.raises(StartupError) as caught:
        await ConsentStore.open(path, ring)
    assert str(caught.value) == (
        f"the directory of the consent store {path} does not exist: {path.parent}"
    )


async def test_a_corrupt_file_is_a_clear_startup_error(tmp_path: Path, ring: KeyRing) -> None:
    path = tmp_path / "store.sqlite3"
    path.write_bytes(b"this is not SQLite, just some bytes\n" * 200)
    with pytest.raises(StartupError) as caught:
        await ConsentStore.open(path, ring)
    assert str(caught.value) == (
        f"the consent store {path} is not a SQLite database (corrupt, or another kind of file)"
    )


async def test_a_file_that_is_a_directory_is_a_clear_startup_error(
    tmp_path: Path, ring: KeyRing
) -> None:
    with pytest.raises(StartupError, match="is a directory, not a file"):
        await ConsentStore.open(tmp_path, ring)


async def test_a_newer_schema_is_a_clear_startup_error(tmp_path: Path, ring: KeyRing) -> None:
    path = tmp_path / "store.sqlite3"
    async with await ConsentStore.open(path, ring):
        pass
    edit(path, "PRAGMA user_version = 99")
    with pytest.raises(StartupError) as caught:
        await ConsentStore.open(path, ring)
    assert str(caught.value) == (
        f"the consent store {path} has schema version 99, newer than the {SCHEMA_VERSION} "
        "this consentgate knows; upgrade consentgate"
    )


async def test_another_applications_database_is_refused(tmp_path: Path, ring: KeyRing) -> None:
    path = tmp_path / "other.sqlite3"
    edit(path, "CREATE TABLE users (name TEXT)")
    with pytest.raises(StartupError, match=r"SQLite database of something else .* 'users'"):
        await ConsentStore.open(path, ring)
    with sqlite3.connect(path) as conn:  # and it was left alone
        assert [row[0] for row in conn.execute("SELECT name FROM sqlite_master")] == ["users"]
    conn.close()


async def test_a_missing_file_is_refused_when_creation_is_off(
    tmp_path: Path, ring: KeyRing
) -> None:
    path = tmp_path / "store.sqlite3"
    with pytest.raises(StartupError, match="does not exist; the gate creates it"):
        await ConsentStore.open(path, ring, create=False)
    assert not path.exists()


async def test_a_new_store_file_is_private(tmp_path: Path, ring: KeyRing) -> None:
    path = tmp_path / "store.sqlite3"
    async with await ConsentStore.open(path, ring):
        assert path.stat().st_mode & 0o777 == 0o600


def test_a_read_only_directory_is_a_clear_startup_error(tmp_path: Path) -> None:
    directory = tmp_path / "ro"
    directory.mkdir()
    directory.chmod(0o500)
    try:
        result = open_unprivileged(directory / "store.sqlite3")
    finally:
        directory.chmod(0o700)
    assert result.returncode == 3, result.stderr
    assert result.stdout.strip() == (
        f"cannot create the consent store {directory / 'store.sqlite3'}: Permission denied "
        f"(is {directory} writable?)"
    )


def test_an_existing_store_in_a_read_only_directory_is_a_clear_startup_error(
    tmp_path: Path, ring: KeyRing
) -> None:
    directory = tmp_path / "ro"
    directory.mkdir()
    path = directory / "store.sqlite3"

    async def create() -> None:
        async with await ConsentStore.open(path, ring):
            pass

    asyncio.run(create())
    directory.chmod(0o500)
    try:
        result = open_unprivileged(path)
    finally:
        directory.chmod(0o700)
    assert result.returncode == 3, result.stderr
    assert re.fullmatch(
        rf"the consent store {re.escape(str(path))} is read-only \(.*\); the gate must be able "
        rf"to write it and to create store.sqlite3-wal and store.sqlite3-shm in "
        rf"{re.escape(str(directory))}\n",
        result.stdout,
    ), result.stdout


def test_a_read_only_store_file_is_a_clear_startup_error(tmp_path: Path, ring: KeyRing) -> None:
    path = tmp_path / "store.sqlite3"

    async def create() -> None:
        async with await ConsentStore.open(path, ring):
            pass

    asyncio.run(create())
    path.chmod(0o400)
    result = open_unprivileged(path)
    assert result.returncode == 3, result.stderr
    assert result.stdout.startswith(
        f"the consent store {path} is read-only (attempt to write a readonly database)"
    )


def test_a_writable_store_opens_in_the_unprivileged_child(tmp_path: Path) -> None:
    # The control for the three tests above: the same child succeeds when allowed.
    result = open_unprivileged(tmp_path / "store.sqlite3")
    assert result.returncode == 0, result.stdout + result.stderr


# --- the documented example (it opens a SQLite file) ----------------------------------


def test_the_documented_library_example_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    text = (REPO / "docs" / "store.md").read_text(encoding="utf-8")
    match = re.search(r"```python\n(.*?)```", text, re.DOTALL)
    assert match is not None
    monkeypatch.chdir(tmp_path)
    exec(compile(match.group(1), "docs/store.md", "exec"), {"__name__": "__main__"})  # noqa: S102
    assert capsys.readouterr().out == "approved: True\nafter revocation: False\n"
