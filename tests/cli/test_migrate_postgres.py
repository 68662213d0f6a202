"""``consentgate migrate`` and ``serve`` on a PostgreSQL store named by the environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from consentgate.store.postgres.postgres_schema import SCHEMA_VERSION
from tests.support.gateproc import free_port, write_config
from tests.support.pgcluster import GATE_ROLE, PostgresCluster, postgres_cluster

pytestmark = pytest.mark.slow  # PostgreSQL and consentgate processes

__all__ = ["postgres_cluster"]

REPO = Path(__file__).resolve().parents[2]


def run(config: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "CONSENTGATE_STORE_URL": url}
    return subprocess.run(
        [sys.executable, "-m", "consentgate", *args, "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


def test_migrate_creates_the_postgres_schema_once_naming_the_server_not_the_password(
    tmp_path: Path, postgres_cluster: PostgresCluster
) -> None:
    database = postgres_cluster.create_database(owner=GATE_ROLE)
    url = postgres_cluster.dsn(database, user=GATE_ROLE).replace(
        f"{GATE_ROLE}@", f"{GATE_ROLE}:not-needed-but-secret@"
    )
    config = write_config(tmp_path, "http://127.0.0.1:9", free_port())
    first = run(config, url, "migrate")
    second = run(config, url, "migrate")
    shown = f"postgresql://{GATE_ROLE}:***@127.0.0.1:{postgres_cluster.port}/{database}"
    assert first.returncode == 0, first.stderr
    assert first.stdout == f"{shown}: migrated from schema version 0 to {SCHEMA_VERSION}\n"
    assert second.stdout == f"{shown}: schema version {SCHEMA_VERSION}, up to date\n"
    assert "not-needed-but-secret" not in first.stdout + first.stderr + second.stderr


def test_an_unreachable_postgres_is_one_line_naming_host_and_port(tmp_path: Path) -> None:
    port = free_port()
    config = write_config(tmp_path, "http://127.0.0.1:9", free_port())
    done = run(config, f"postgresql://gate:hunter2@127.0.0.1:{port}/cg", "migrate")
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert f"127.0.0.1:{port}/cg" in lines[0]
    assert "hunter2" not in done.stderr
