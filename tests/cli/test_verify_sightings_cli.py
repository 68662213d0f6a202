"""``consentgate consents verify`` checks the signed first sightings of clients named by
a URL, on both backends: a row edited in the database to make a look-alike seem older
is named, by kind and client_id, and the command exits 1 (the consent page would only
catch it when it reads that row)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest

from consentgate.cli import main
from consentgate.config.loading import load_config
from consentgate.signing.key_directory import load_keyring
from consentgate.store.opening import open_store
from tests.cli.test_store_cli import write_config
from tests.support.pgcluster import GATE_ROLE, PostgresCluster, postgres_cluster

__all__ = ["postgres_cluster"]  # the session fixture, used here by name

URL_CLIENT = "https://notes.example/oauth/client.json"
BACKDATE = "UPDATE {table} SET first_seen_at = first_seen_at - 86400 WHERE client_id = {mark}"


@dataclass(frozen=True)
class Gate:
    config: Path
    #: Moves the stored first sighting of a client back a day, behind the gate's back.
    backdate: Callable[[str], None]

    def args(self, *words: str) -> list[str]:
        return [*words, "--config", str(self.config)]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.slow)])
def gate(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Gate:
    """A configuration whose store (SQLite, then PostgreSQL) has seen two URL clients."""
    path = write_config(tmp_path)
    backdate: Callable[[str], None]
    if request.param == "postgres":
        cluster: PostgresCluster = request.getfixturevalue("postgres_cluster")
        dbname = cluster.create_database(owner=GATE_ROLE)
        monkeypatch.setenv("CONSENTGATE_STORE_URL", cluster.dsn(dbname, user=GATE_ROLE))

        async def edit(client_id: str) -> None:
            conn = await asyncpg.connect(cluster.dsn(dbname))  # the superuser, not the gate
            try:
                sql = BACKDATE.format(table="consentgate.client_sightings", mark="$1")
                await conn.execute(sql, client_id)
            finally:
                await conn.close()

        def backdate(client_id: str) -> None:
            asyncio.run(edit(client_id))

    else:

        def backdate(client_id: str) -> None:
            with sqlite3.connect(tmp_path / "store.sqlite3") as conn:
                conn.execute(BACKDATE.format(table="client_sightings", mark="?"), (client_id,))
            conn.close()

    assert main(["keys", "generate", "--config", str(path)]) == 0
    loaded = load_config(path)

    async def see() -> None:
        keyring = load_keyring(loaded.keys.dir, create=False)
        async with await open_store(loaded.store, keyring) as store:
            for client_id in (URL_CLIENT, URL_CLIENT + "?v=2"):
                await store.sightings.first_seen(client_id)

    asyncio.run(see())
    return Gate(path, backdate)


def test_verify_counts_the_first_sightings_of_url_clients(
    gate: Gate, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert main(gate.args("consents", "verify")) == 0
    assert capsys.readouterr().out == (
        "audit trail: empty\nall verify: 0 consent record(s) (as consents list counts them: "
        "revoked and expired included), 0 client registration(s) and 2 client sighting(s)\n"
    )


def test_verify_names_a_sighting_moved_back_a_day_and_exits_1(
    gate: Gate, capsys: pytest.CaptureFixture[str]
) -> None:
    gate.backdate(URL_CLIENT)
    capsys.readouterr()
    assert main(gate.args("consents", "verify")) == 1
    captured = capsys.readouterr()
    assert captured.out.splitlines()[0] == (
        f"sighting {URL_CLIENT}: signature does not match the fields (edited or forged)"
    )
    assert captured.err == "consentgate: error: 1 of 2 client sighting(s) failed verification\n"
