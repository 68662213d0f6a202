"""``consentgate audit list --request-id ID``: the audit rows of the request whose id
a page showed the person, on both backends; an unknown id lists nothing, a malformed
one is refused naming the option."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from consentgate.cli import main
from consentgate.config.loading import load_config
from consentgate.signing.key_directory import load_keyring
from consentgate.store.opening import open_store
from tests.cli.test_store_cli import write_config
from tests.store.test_audit_table import approved_event
from tests.support.pgcluster import GATE_ROLE, PostgresCluster, postgres_cluster

__all__ = ["postgres_cluster"]  # the session fixture, used here by name


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.slow)])
def config(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A configuration whose store (SQLite, then PostgreSQL) holds the audit rows of
    three requests, one of them with two rows."""
    path = write_config(tmp_path)
    if request.param == "postgres":
        cluster: PostgresCluster = request.getfixturevalue("postgres_cluster")
        url = cluster.dsn(cluster.create_database(owner=GATE_ROLE), user=GATE_ROLE)
        monkeypatch.setenv("CONSENTGATE_STORE_URL", url)
    assert main(["keys", "generate", "--config", str(path)]) == 0
    loaded = load_config(path)

    async def fill() -> None:
        keyring = load_keyring(loaded.keys.dir, create=False)
        async with await open_store(loaded.store, keyring) as store:
            for n in range(3):
                store.audit.emit(approved_event(n, subject=f"digest-{n}"))
            store.audit.emit(approved_event(1, subject="digest-1-again"))
            await store.flush_audit()

    asyncio.run(fill())
    return path


def test_audit_list_by_request_id_prints_only_that_requests_rows(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert main(["audit", "list", "--request-id", "req-1", "--json", "--config", str(config)]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(row["seq"], row["request_id"], row["subject"]) for row in rows] == [
        (2, "req-1", "digest-1"),
        (4, "req-1", "digest-1-again"),
    ]
    assert main(["audit", "list", "--request-id", "req-1", "--config", str(config)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert len(table) == 3 and all("\tapproved\t" in line for line in table[1:])


def test_an_unknown_request_id_lists_nothing_and_is_not_an_error(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    args = ["audit", "list", "--request-id", "0123456789abcdef", "--config", str(config)]
    assert main([*args, "--json"]) == 0
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("bad", ["", "req 1", "a" * 129, "req/1", "ré"])
def test_a_malformed_request_id_is_refused_naming_the_option(
    config: Path, capsys: pytest.CaptureFixture[str], bad: str
) -> None:
    capsys.readouterr()
    assert main(["audit", "list", "--request-id", bad, "--config", str(config)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "--request-id: expected 1 to 128 letters, digits" in captured.err
