"""A store written by the previous release migrates, keeps every decision and verifies;
a store from a newer release is refused and left as it was.

The fixture (tests/store/data/release-0.1.0) was written by consentgate 0.1.0's own
code (commit 62b697e, SQLite schema 2) with tools/make_upgrade_fixture.py: live,
revoked and expired approvals and two registered clients, listed in expected.json.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from consentgate import load_keyring
from consentgate.core.schema_versions import SQLITE_SCHEMA
from consentgate.core.startup_errors import StartupError
from consentgate.store import ConsentStore

RELEASE = Path(__file__).parent / "data" / "release-0.1.0"


def expected() -> dict[str, Any]:
    data = json.loads((RELEASE / "expected.json").read_text())
    assert isinstance(data, dict)
    return data


def copy_release(tmp_path: Path) -> tuple[Path, Path]:
    """The release's store and keys, private as the gate requires (git keeps no modes)."""
    target = tmp_path / "release"
    shutil.copytree(RELEASE, target)
    target.chmod(0o700)
    keys = target / "keys"
    keys.chmod(0o700)
    for item in keys.iterdir():
        item.chmod(0o600)
    store = target / "consentgate.sqlite3"
    store.chmod(0o600)
    return store, keys


def user_version(path: Path) -> int:
    connection = sqlite3.connect(path)
    try:
        (version,) = connection.execute("PRAGMA user_version").fetchone()
        return int(version)
    finally:
        connection.close()


async def test_a_store_of_the_previous_release_migrates_keeps_every_decision_and_verifies(
    tmp_path: Path,
) -> None:
    store_path, keys = copy_release(tmp_path)
    wrote = expected()
    assert user_version(store_path) == wrote["schema"] == 2

    store = await ConsentStore.open(store_path, load_keyring(keys, create=False))
    try:
        for grant in wrote["live"]:
            assert await store.is_approved(
                grant["subject"],
                grant["client_id"],
                grant["redirect_uri"],
                grant["scopes"],
                grant["resource"],
            ), grant
            record = await store.get(grant["id"])
            assert record is not None and record.revoked_at is None
        for grant in wrote["revoked"] + wrote["expired"]:
            assert not await store.is_approved(
                grant["subject"],
                grant["client_id"],
                grant["redirect_uri"],
                grant["scopes"],
                grant["resource"],
            ), grant
        (revoked,) = wrote["revoked"]
        record = await store.get(revoked["id"])
        assert record is not None and record.revoked_at is not None  # still revoked, signed
        for client in wrote["clients"]:
            known = await store.get_client(client["client_id"])
            assert known is not None, client
            assert known.registered_at == client["registered_at"]  # the first registration
            assert client["uri"] in known.redirect_uris
        report = await store.verify_all()
        assert report.ok, report.failures
        assert report.checked == len(wrote["live"]) + 2 + len(wrote["clients"])
        chain = await store.verify_audit()
        assert chain.ok, chain.problem
        assert store.tamper_events == 0
    finally:
        await store.close()
    assert user_version(store_path) == SQLITE_SCHEMA


async def test_a_store_a_newer_release_wrote_is_refused_and_left_as_it_was(
    tmp_path: Path,
) -> None:
    store_path, keys = copy_release(tmp_path)
    store = await ConsentStore.open(store_path, load_keyring(keys, create=False))
    await store.close()
    connection = sqlite3.connect(store_path)
    connection.execute(f"PRAGMA user_version = {SQLITE_SCHEMA + 1}")
    connection.close()
    before = hashlib.sha256(store_path.read_bytes()).hexdigest()

    with pytest.raises(StartupError, match="newer than the") as refused:
        await ConsentStore.open(store_path, load_keyring(keys, create=False))
    assert str(store_path) in str(refused.value)
    assert "Traceback" not in str(refused.value)
    assert hashlib.sha256(store_path.read_bytes()).hexdigest() == before
    assert user_version(store_path) == SQLITE_SCHEMA + 1
