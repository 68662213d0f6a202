"""A missing store where one existed is a startup error, and starting over is explicit:
``consentgate serve`` refuses, ``consentgate store init`` (or
``serve --create-store``) creates the empty store.

The gate runs as the real ``consentgate serve`` process, its store a real file (or a
real PostgreSQL database)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from consentgate.store.birth import RECORD_NAME, evidence, read_record, remember_store
from tests.support.gateproc import free_port, gate_process, write_config
from tests.support.pgcluster import GATE_ROLE, PostgresCluster, postgres_cluster

__all__ = ["postgres_cluster"]

REPO = Path(__file__).resolve().parents[2]


def consentgate(
    *args: str, url: str | None = None, seconds: float = 30
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    if url is not None:
        env["CONSENTGATE_STORE_URL"] = url
    return subprocess.run(
        [sys.executable, "-m", "consentgate", *args],
        capture_output=True,
        text=True,
        timeout=seconds,
        env=env,
        check=False,
    )


async def first_start(tmp_path: Path) -> Path:
    """Run the gate once, as its first deployment does; returns the store file."""
    async with gate_process(tmp_path, "http://127.0.0.1:9"):
        pass
    store = tmp_path / "store.sqlite3"
    assert store.exists()
    return store


async def test_the_first_start_records_its_store_in_the_keys_directory(tmp_path: Path) -> None:
    store = await first_start(tmp_path)
    record = read_record(tmp_path / "keys")
    assert record is not None
    assert record.store == f"sqlite:{store}"
    assert (tmp_path / "keys" / RECORD_NAME).stat().st_mode & 0o777 == 0o600


@pytest.mark.slow  # consentgate serve processes
async def test_a_deleted_store_stops_the_next_start_and_store_init_starts_over(
    tmp_path: Path,
) -> None:
    store = await first_start(tmp_path)
    store.unlink()  # a clean stop leaves no -wal: only the keys directory remembers
    config = tmp_path / "gate.toml"

    refused = consentgate("serve", "--config", str(config))
    assert refused.returncode == 1
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1, refused.stderr
    assert f"the consent store sqlite:{store} is missing, but one existed" in lines[0]
    assert "the keys directory records a store created with these keys" in lines[0]
    assert "consentgate store init" in lines[0]
    assert not store.exists()  # nothing was created in its place

    migrate = consentgate("migrate", "--config", str(config))
    assert migrate.returncode == 1 and "is missing, but one existed" in migrate.stderr
    assert not store.exists()

    init = consentgate("store", "init", "--config", str(config))
    assert init.returncode == 0, init.stderr
    assert init.stdout == f"sqlite:{store}: created an empty consent store\n"
    async with gate_process(tmp_path, "http://127.0.0.1:9"):
        pass  # serves again, from the empty store

    again = consentgate("store", "init", "--config", str(config))
    assert again.returncode == 1
    assert "exists; nothing changed" in again.stderr


@pytest.mark.slow  # consentgate serve processes
async def test_serve_create_store_starts_over_when_asked(tmp_path: Path) -> None:
    store = await first_start(tmp_path)
    store.unlink()
    async with gate_process(tmp_path, "http://127.0.0.1:9", create_store=True):
        pass
    assert store.exists()


def test_a_wal_left_beside_a_missing_store_is_evidence_and_is_set_aside(tmp_path: Path) -> None:
    """A crash, or a deletion under a running gate, leaves SQLite's -wal behind; a new
    database must not start with another database's log in front of it."""
    config = write_config(tmp_path, "http://127.0.0.1:9", free_port())
    store = tmp_path / "store.sqlite3"
    with contextlib.closing(sqlite3.connect(store, isolation_level=None)) as db:
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("CREATE TABLE kept (x)")
        db.execute("INSERT INTO kept VALUES (1)")
        wal = store.with_name(store.name + "-wal")
        assert wal.exists()
        store.unlink()  # deleted while open: the -wal stays
        refused = consentgate("serve", "--config", str(config))
    assert refused.returncode == 1
    assert f"{wal} is left beside it" in refused.stderr
    assert not store.exists()

    init = consentgate("store", "init", "--config", str(config))
    assert init.returncode == 0, init.stderr
    assert "created an empty consent store; set aside " in init.stdout
    orphaned = [path.name for path in tmp_path.iterdir() if ".orphaned-" in path.name]
    assert orphaned and all(name.startswith("store.sqlite3-") for name in orphaned)
    with contextlib.closing(sqlite3.connect(store)) as fresh:
        tables = {row[0] for row in fresh.execute("SELECT name FROM sqlite_master")}
    assert "kept" not in tables and "consents" in tables  # the new store, not the old log


def test_a_fresh_deployment_creates_its_store_without_asking(tmp_path: Path) -> None:
    assert evidence(tmp_path / "store.sqlite3", tmp_path / "keys") == []


def test_the_record_is_written_once_and_an_unreadable_one_still_counts(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.mkdir(mode=0o700)
    remember_store(keys, "sqlite:/a", now=1_800_000_000)
    remember_store(keys, "sqlite:/b", now=1_800_000_100)  # kept: the first store
    record = read_record(keys)
    assert record is not None and (record.store, record.created_at) == ("sqlite:/a", 1800000000)
    (keys / RECORD_NAME).write_text("not json")
    assert evidence(None, keys)  # garbled, yet it says a store existed


def test_a_keys_directory_that_cannot_be_written_is_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    missing = tmp_path / "no-such-directory"
    with caplog.at_level(logging.WARNING, logger="consentgate"):
        remember_store(missing, "sqlite:/a", now=1_800_000_000)
    assert [r.getMessage() for r in caplog.records] == [
        "cannot record the consent store in the keys directory; a store deleted later "
        "would be re-created empty at the next start without an error"
    ]


@pytest.mark.slow  # starts the PostgreSQL cluster
def test_an_empty_postgres_database_where_a_store_existed_is_refused(
    tmp_path: Path, postgres_cluster: PostgresCluster
) -> None:
    """A failover to an empty database, or a wrong database name: the gate does not
    quietly start over in it."""
    database = postgres_cluster.create_database(owner=GATE_ROLE)
    url = postgres_cluster.dsn(database, user=GATE_ROLE)
    config = write_config(tmp_path, "http://127.0.0.1:9", free_port())
    keys = tmp_path / "keys"
    keys.mkdir(mode=0o700)
    (keys / RECORD_NAME).write_text(
        json.dumps({"store": "postgresql://gate@db.internal/consentgate", "created_at": 1})
    )
    refused = consentgate("migrate", "--config", str(config), url=url)
    assert refused.returncode == 1
    assert "is missing, but one existed" in refused.stderr
    assert "postgresql://gate@db.internal/consentgate" in refused.stderr
    init = consentgate("store", "init", "--config", str(config), url=url)
    assert init.returncode == 0, init.stderr
    assert "created an empty consent store (schema version" in init.stdout
    record = read_record(keys)
    assert record is not None and str(postgres_cluster.port) in record.store
    again = consentgate("store", "init", "--config", str(config), url=url)
    assert again.returncode == 1 and "already has a consent store" in again.stderr


@pytest.mark.slow  # consentgate serve processes
async def test_serve_refuses_a_store_file_others_can_read(tmp_path: Path) -> None:
    """Issue 15: the store holds who approved what; 0644 is a startup error naming the fix."""
    store = await first_start(tmp_path)
    store.chmod(0o644)
    refused = consentgate("serve", "--config", str(tmp_path / "gate.toml"))
    assert refused.returncode == 1
    assert refused.stderr.strip() == (
        f"consentgate: error: the consent store {store} is accessible by group or others "
        f"(mode 0644); run: chmod 600 {store}"
    )
    store.chmod(0o600)
    async with gate_process(tmp_path, "http://127.0.0.1:9"):
        pass
