"""``consentgate store backup`` and ``store restore``: a consistent copy of the SQLite
store taken while approvals are written, put back so that the gate starts on it and
every approval is honoured and verifies; a file that is not a consentgate store, a
store of other keys, or a store a running gate holds, refused with nothing changed."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import aiohttp
import pytest

from consentgate.cli import main
from consentgate.config.loading import load_config
from consentgate.core.signed.records import ConsentRecord
from consentgate.signing.key_directory import load_keyring
from consentgate.store import ConsentStore
from consentgate.store.opening import open_store
from tests.cli.test_store_cli import REPO, Setup, populate, setup, write_config
from tests.support.gateproc import gate_process
from tests.support.pgcluster import GATE_ROLE, PostgresCluster, find_bindir, postgres_cluster

__all__ = ["postgres_cluster", "setup"]  # the fixtures, used here by name

SPECS = [("digest-alice", "client-1", "https://one.example/cb")]


def open_copy(path: Path, keys: Path) -> ConsentStore:
    async def run() -> ConsentStore:
        return await ConsentStore.open(path, load_keyring(keys, create=False), create=False)

    return asyncio.run(run())


def honoured(path: Path, keys: Path, records: list[ConsentRecord]) -> list[bool]:
    """Whether the store at ``path`` approves each record, verified with ``keys``."""

    async def run() -> list[bool]:
        keyring = load_keyring(keys, create=False)
        async with await ConsentStore.open(path, keyring, create=False) as store:
            return [
                await store.is_approved(r.subject, r.client_id, r.redirect_uri, r.scopes)
                for r in records
            ]

    return asyncio.run(run())


def test_a_backup_taken_while_approvals_are_written_holds_every_approval_committed_before_it(
    setup: Setup, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    committed: list[ConsentRecord] = []
    stop = threading.Event()

    async def write() -> None:
        keyring = load_keyring(setup.keys, create=False)
        async with await ConsentStore.open(setup.store, keyring) as store:
            n = 0
            while not stop.is_set() and n < 5000:
                committed.append(
                    await store.record(
                        f"digest-{n}", "client-1", "https://one.example/cb", {"openid"}, ttl=3600
                    )
                )
                n += 1

    writer = threading.Thread(target=asyncio.run, args=(write(),))
    writer.start()
    try:
        while len(committed) < 200 and writer.is_alive():
            stop.wait(0.01)
        before = list(committed)
        out = tmp_path / "backup.sqlite3"
        assert main(setup.args("store", "backup", "--out", str(out))) == 0
        after_backup = len(committed)
    finally:
        stop.set()
        writer.join(timeout=60)
    assert not writer.is_alive()
    # The writer went on while the copy was taken (a load, not an idle store).
    assert len(committed) > len(before) and after_backup > len(before)
    said = capsys.readouterr().out
    assert said.startswith(f"sqlite:{setup.store}: backed up to {out}: ")
    assert oct(out.stat().st_mode & 0o777) == "0o600"
    assert not Path(f"{out}-wal").exists()  # one self-contained file
    assert all(honoured(out, setup.keys, setup.records + before))
    copy_ids = {row[0] for row in sqlite3.connect(out).execute("SELECT id FROM consents")}
    assert {r.id for r in before} <= copy_ids
    copy = open_copy(out, setup.keys)

    async def check() -> tuple[bool, bool]:
        async with copy:
            report = await copy.verify_all()
            chain = await copy.verify_audit()
            return report.ok and report.checked == len(copy_ids) + 1, chain.ok  # + the client

    # Every record in the copy verifies, those written during the copy included.
    assert asyncio.run(check()) == (True, True)


def test_a_restored_store_honours_every_approval_verifies_and_the_gate_starts_on_it(
    setup: Setup, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    revoked = setup.records[1]
    assert main(setup.args("consents", "revoke", "--id", revoked.id)) == 0
    out = tmp_path / "backup.sqlite3"
    assert main(setup.args("store", "backup", "--out", str(out))) == 0
    # After the backup: more approvals and audit rows, so the mark moves on ...
    later = populate(setup.store.parent, [("digest-later", "client-2", "https://two.example/cb")])
    assert main(setup.args("consents", "revoke", "--client", "client-2")) == 0
    # ... then the store is lost (its -wal and -shm too).
    for leftover in (setup.store, Path(f"{setup.store}-wal"), Path(f"{setup.store}-shm")):
        leftover.unlink(missing_ok=True)
    capsys.readouterr()
    assert main(setup.args("store", "restore", "--from", str(out))) == 0
    said = capsys.readouterr().out.splitlines()
    assert said[0].startswith(f"sqlite:{setup.store}: restored 3 approval record(s), 1 client(s)")
    assert said[1].startswith(
        "the audit trail's mark moved back from row 2 to row 1: 1 audit row(s)"
    )
    assert oct(setup.store.stat().st_mode & 0o777) == "0o600"
    assert honoured(setup.store, setup.keys, [setup.records[0], setup.records[2]]) == [True, True]
    assert honoured(setup.store, setup.keys, [revoked, *later]) == [False, False]
    assert main(setup.args("consents", "verify")) == 0
    verified = capsys.readouterr().out
    assert "unbroken chain from row 1 to row 1" in verified and "fail" not in verified
    assert main(setup.args("audit", "verify")) == 0


def test_a_file_that_is_not_a_consentgate_store_is_refused_and_nothing_changes(
    setup: Setup, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = setup.store.read_bytes()
    text = tmp_path / "notes.txt"
    text.write_text("not a database at all, but long enough to look like one? no." * 20)
    other = tmp_path / "other.sqlite3"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE bookmarks (url TEXT)")
    conn.close()
    for bad, reason in (
        (text, "is not a consentgate store"),
        (other, "is not a consentgate store (a SQLite database without its tables"),
        (tmp_path / "missing.sqlite3", "does not exist or is not a file"),
    ):
        capsys.readouterr()
        assert main(setup.args("store", "restore", "--from", str(bad))) == 1
        err = capsys.readouterr().err
        assert f"--from {bad} {reason}" in err, err
    assert setup.store.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir() if "restoring" in p.name] == []


def test_a_backup_of_a_store_with_other_keys_is_refused_naming_them(
    setup: Setup, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    config = write_config(elsewhere)
    assert main(["keys", "generate", "--config", str(config)]) == 0
    populate(elsewhere, SPECS)
    foreign = tmp_path / "foreign.sqlite3"
    assert main(["store", "backup", "--config", str(config), "--out", str(foreign)]) == 0
    before = setup.store.read_bytes()
    capsys.readouterr()
    assert main(setup.args("store", "restore", "--from", str(foreign))) == 1
    err = capsys.readouterr().err
    assert f"--from {foreign}: 2 of 2 record(s) do not verify with this keys directory" in err
    assert "which this keys directory lacks" in err and "nothing changed" in err
    assert setup.store.read_bytes() == before


def test_a_newer_store_that_still_runs_this_code_is_backed_up_and_one_that_does_not_is_not(
    setup: Setup, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """As the gate decides at start (docs/store.md, "Two versions on one store"): after
    a rollback across an additive migration the older code backs its store up."""
    from consentgate.store.sqlite.sqlite_schema import SCHEMA_VERSION
    from tests.support.later_release import migrate_sqlite_later

    asyncio.run(migrate_sqlite_later(setup.store, level=SCHEMA_VERSION))
    copy = tmp_path / "copy.sqlite3"
    assert main(setup.args("store", "backup", "--out", str(copy))) == 0
    assert f"schema version {SCHEMA_VERSION + 1}" in capsys.readouterr().out
    asyncio.run(migrate_sqlite_later(setup.store, level=SCHEMA_VERSION + 2, extra=2))
    assert main(setup.args("store", "backup", "--out", str(tmp_path / "again.sqlite3"))) == 1
    assert f"schema version {SCHEMA_VERSION + 2}, newer than the" in capsys.readouterr().err


def test_store_backup_refuses_to_write_over_the_store_itself(
    setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    before = setup.store.read_bytes()
    assert main(setup.args("store", "backup", "--out", str(setup.store))) == 1
    assert "is the consent store itself" in capsys.readouterr().err
    assert setup.store.read_bytes() == before


def test_backup_and_restore_on_a_postgres_store_point_to_pg_dump_and_exit_1(
    tmp_path: Path,
) -> None:
    config = write_config(tmp_path)
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "CONSENTGATE_STORE_URL": "postgresql://gate@127.0.0.1:9/cg",
    }
    for args in (
        ("backup", "--out", str(tmp_path / "b")),
        ("restore", "--from", str(tmp_path / "b")),
    ):
        done = subprocess.run(
            [sys.executable, "-m", "consentgate", "store", *args, "--config", str(config)],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
            check=False,
        )
        assert done.returncode == 1, done.stderr
        assert (
            "PostgreSQL database: back it up with pg_dump and restore it with pg_restore"
            in done.stderr
        )
        assert "consents verify" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "b").exists()


@pytest.mark.slow  # a consentgate serve process
async def test_a_restore_is_refused_while_a_running_gate_holds_the_store(tmp_path: Path) -> None:
    async with gate_process(tmp_path, "http://127.0.0.1:9", create_store=True) as gate:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        out = tmp_path / "backup.sqlite3"

        async def cli(*args: str) -> subprocess.CompletedProcess[str]:
            return await asyncio.to_thread(
                subprocess.run,
                [
                    sys.executable,
                    "-m",
                    "consentgate",
                    "store",
                    *args,
                    "--config",
                    str(gate.config_path),
                ],
                capture_output=True,
                text=True,
                timeout=60,
                env=env,
                check=False,
            )

        backup = await cli("backup", "--out", str(out))
        assert backup.returncode == 0, backup.stderr
        store = tmp_path / "store.sqlite3"
        before = store.read_bytes()
        done = await cli("restore", "--from", str(out))
        assert done.returncode == 1
        assert f"the consent store {store} is open in another process" in done.stderr
        assert "stop the gate, then restore; nothing changed" in done.stderr
        assert store.read_bytes() == before
    done = await cli("restore", "--from", str(out))
    assert done.returncode == 0, done.stderr
    # The gate starts on the restored store, and nothing but its absent upstream
    # keeps it from being ready (not the store, its keys, its cookie secret or the
    # audit trail's mark).
    async with (
        gate_process(tmp_path, "http://127.0.0.1:9") as again,
        aiohttp.ClientSession() as session,
        session.get(f"{again.url}/_consentgate/readyz") as response,
    ):
        body = await response.json()
    assert [reason.split(":")[0] for reason in body.get("reasons", [])] in ([], ["upstream"]), body


@pytest.mark.slow  # PostgreSQL
def test_the_documented_pg_dump_and_pg_restore_recipe_gives_a_store_that_verifies(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    postgres_cluster: PostgresCluster,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """docs/store.md, "Backups": the dump of the ``consentgate`` schema, restored into
    an empty database, passes ``consents verify`` and ``audit verify`` and honours
    every approval, the revoked one staying revoked."""
    cluster = postgres_cluster
    first = cluster.dsn(cluster.create_database(owner=GATE_ROLE), user=GATE_ROLE)
    config = write_config(tmp_path)
    monkeypatch.setenv("CONSENTGATE_STORE_URL", first)
    assert main(["keys", "generate", "--config", str(config)]) == 0
    loaded = load_config(config)

    async def fill() -> list[ConsentRecord]:
        keyring = load_keyring(loaded.keys.dir, create=False)
        async with await open_store(loaded.store, keyring) as store:
            return [
                await store.record(
                    f"digest-{n}", "client-1", "https://one.example/cb", {"openid"}, ttl=3600
                )
                for n in range(3)
            ]

    records = asyncio.run(fill())
    assert main(["consents", "revoke", "--id", records[0].id, "--config", str(config)]) == 0
    dump = tmp_path / "consentgate.dump"
    bindir = find_bindir()
    subprocess.run(
        [bindir / "pg_dump", "--format=custom", "--schema=consentgate", f"--file={dump}", first],
        check=True,
        timeout=60,
    )
    second = cluster.dsn(cluster.create_database(owner=GATE_ROLE), user=GATE_ROLE)
    subprocess.run(
        [
            bindir / "pg_restore",
            "--exit-on-error",
            "--single-transaction",
            "--clean",
            "--if-exists",
            "--no-owner",
            f"--dbname={second}",
            dump,
        ],
        check=True,
        timeout=60,
    )
    monkeypatch.setenv("CONSENTGATE_STORE_URL", second)
    capsys.readouterr()
    assert main(["consents", "verify", "--config", str(config)]) == 0
    assert main(["audit", "verify", "--config", str(config)]) == 0
    assert "unbroken chain from row 1 to row 1" in capsys.readouterr().out

    async def answers() -> list[bool]:
        keyring = load_keyring(loaded.keys.dir, create=False)
        store_config = load_config(config).store
        async with await open_store(store_config, keyring, create=False) as store:
            return [
                await store.is_approved(r.subject, r.client_id, r.redirect_uri, r.scopes)
                for r in records
            ]

    assert asyncio.run(answers()) == [False, True, True]
