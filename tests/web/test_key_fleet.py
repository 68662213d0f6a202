"""A gate's keys against what its store says: learning a staged key from the keys
directory, never from the store, and what ``readyz`` says when the gate is behind."""

from __future__ import annotations

from pathlib import Path

from consentgate.signing.key_directory import key_file_name, load_keyring, rotate_keys, stage_key
from consentgate.store import ConsentStore
from consentgate.web.key_fleet import KeyLag, key_lag, learn_keys


async def test_a_kid_the_store_names_is_learned_from_the_keys_directory_only(
    tmp_path: Path,
) -> None:
    mine, theirs = tmp_path / "mine", tmp_path / "theirs"
    ring = load_keyring(mine)
    other = load_keyring(theirs)
    async with await ConsentStore.open(tmp_path / "store.sqlite3", ring) as store:
        async with await ConsentStore.open(tmp_path / "store.sqlite3", other) as elsewhere:
            await elsewhere.publish_keys()  # a key this gate's directory never had
            await elsewhere.announce_key("staged", other.active_kid)
        assert await learn_keys(store, mine) == ()
        assert not store.keyring.has_key(other.active_kid)
        lag = await key_lag(store)
        assert lag.problems == []
        assert lag.warnings == [
            f"keys: the store names the staged key {other.active_kid}, which this gate's "
            "keys directory lacks; copy the keys directory to this gate before activating it"
        ]

        staged = stage_key(mine)
        async with await ConsentStore.open(tmp_path / "store.sqlite3", load_keyring(mine)) as cli:
            await cli.publish_keys()
            await cli.announce_key("staged", staged)
        assert await learn_keys(store, mine) == (staged,)
        assert store.keyring.has_key(staged)
        assert store.keyring.active_kid == ring.active_kid  # learning never changes signing


async def test_a_gate_lacking_the_stores_signing_key_is_not_ready_and_one_behind_warns(
    tmp_path: Path,
) -> None:
    ring = load_keyring(tmp_path / "keys")
    async with await ConsentStore.open(tmp_path / "store.sqlite3", ring) as store:
        await store.announce_key("active", "AAAAAAAAAAAAAAAA")
        lag = await key_lag(store)
        assert lag.problems == [
            "keys: the store's signing key AAAAAAAAAAAAAAAA is not in this gate's keys "
            "directory, so records signed with it are refused here; copy the keys "
            "directory to this gate"
        ]
        staged = stage_key(tmp_path / "keys")
        store.reload_keys(load_keyring(tmp_path / "keys"))
        await store.publish_keys()
        await store.announce_key("active", staged)
        lag = await key_lag(store)
        assert (lag.problems, len(lag.warnings)) == ([], 1)
        assert (
            f"signs with {ring.active_kid}, the store's signing key is {staged}" in lag.warnings[0]
        )


async def test_a_retired_key_deleted_from_the_directory_is_no_lag(tmp_path: Path) -> None:
    directory = tmp_path / "keys"
    retired = load_keyring(directory)
    async with await ConsentStore.open(tmp_path / "store.sqlite3", retired) as store:
        await store.publish_keys()
        rotate_keys(directory)
        (directory / key_file_name(retired.active_kid)).unlink()  # revoke its records
        store.reload_keys(load_keyring(directory))
        await store.publish_keys()
        await store.announce_key("active", store.keyring.active_kid)
        assert retired.active_kid in (await store.stored_keys()).keys
        assert await learn_keys(store, directory) == ()
        assert await key_lag(store) == KeyLag()


async def test_a_key_setting_that_is_no_key_id_is_not_echoed(tmp_path: Path) -> None:
    ring = load_keyring(tmp_path / "keys")
    async with await ConsentStore.open(tmp_path / "store.sqlite3", ring) as store:
        await store.announce_key("staged", "<b>edited</b>")
        lag = await key_lag(store)
    assert (lag.problems, lag.warnings) == (
        [],
        ["keys: the store's signing key setting is not a key id"],
    )
