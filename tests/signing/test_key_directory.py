"""The key directory on disk: key files, the active key, permissions, locks, the cookie secret."""

from __future__ import annotations

import os
import re
import stat
import threading
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from consentgate.core.signed.keyring import (
    key_id,
)
from consentgate.core.startup_errors import StartupError
from consentgate.signing.key_directory import (
    ACTIVE_FILE,
    COOKIE_SECRET_FILE,
    activate_key,
    generate_keys,
    key_file_name,
    list_keys,
    load_cookie_secret,
    load_keyring,
    rotate_keys,
    stage_key,
)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_first_load_creates_a_private_directory_with_one_active_key(tmp_path: Path) -> None:
    directory = tmp_path / "keys"
    ring = load_keyring(directory)
    assert mode(directory) == 0o700
    key_file = directory / key_file_name(ring.active_kid)
    assert mode(key_file) == 0o600
    assert mode(directory / ACTIVE_FILE) == 0o600
    assert (directory / ACTIVE_FILE).read_text() == f"{ring.active_kid}\n"
    assert key_file.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert ring.kids == (ring.active_kid,)


def test_loading_again_returns_the_same_key(tmp_path: Path) -> None:
    first = load_keyring(tmp_path / "keys")
    second = load_keyring(tmp_path / "keys")
    kid, signature = first.sign(b"data")
    assert second.active_kid == first.active_kid
    assert second.verify(kid, b"data", signature)


def test_no_temporary_files_are_left_behind(tmp_path: Path) -> None:
    directory = tmp_path / "keys"
    generate_keys(directory)
    rotate_keys(directory)
    names = sorted(os.listdir(directory))
    assert len(names) == 4  # two keys, active, cookie.secret
    assert not [name for name in names if name.startswith(".")]


def test_a_missing_directory_is_refused_when_creation_is_off(tmp_path: Path) -> None:
    with pytest.raises(StartupError, match=r"does not exist; create it with: consentgate keys"):
        load_keyring(tmp_path / "keys", create=False)


def test_an_empty_directory_is_refused_when_creation_is_off(tmp_path: Path) -> None:
    directory = tmp_path / "keys"
    directory.mkdir(mode=0o700)
    with pytest.raises(StartupError, match="has no keys"):
        load_keyring(directory, create=False)


def test_a_group_readable_private_key_is_refused_with_the_chmod_that_fixes_it(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "keys"
    ring = load_keyring(directory)
    key_file = directory / key_file_name(ring.active_kid)
    key_file.chmod(0o640)
    with pytest.raises(StartupError) as caught:
        load_keyring(directory)
    message = str(caught.value)
    assert str(key_file) in message
    assert "mode 0640" in message
    assert f"chmod 600 {key_file}" in message
    assert "\n" not in message


def test_a_world_readable_retired_key_is_refused(tmp_path: Path) -> None:
    directory = tmp_path / "keys"
    old = load_keyring(directory)
    rotate_keys(directory)
    (directory / key_file_name(old.active_kid)).chmod(0o604)
    with pytest.raises(StartupError, match="mode 0604"):
        load_keyring(directory)


@pytest.mark.parametrize("mode", [0o770, 0o755, 0o701])
def test_a_key_directory_open_to_group_or_others_is_refused(tmp_path: Path, mode: int) -> None:
    """Writable: anyone could add a key; readable or searchable: every local user sees
    the key ids and any file left readable by mistake."""
    directory = tmp_path / "keys"
    load_keyring(directory)
    directory.chmod(mode)
    expected = (
        rf"accessible by group or others \(mode {mode:04o}\); "
        rf"run: chmod 700 {re.escape(str(directory))}"
    )
    with pytest.raises(StartupError, match=expected):
        load_keyring(directory)


def test_a_corrupt_key_file_is_refused_naming_the_file(tmp_path: Path) -> None:
    directory = tmp_path / "keys"
    ring = load_keyring(directory)
    key_file = directory / key_file_name(ring.active_kid)
    key_file.write_bytes(b"-----BEGIN PRIVATE KEY-----\nnot base64\n")
    with pytest.raises(StartupError, match=f"{key_file} is not an unencrypted PEM private key"):
        load_keyring(directory)


def test_a_key_file_of_another_algorithm_is_refused(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key

    directory = tmp_path / "keys"
    ring = load_keyring(directory)
    key_file = directory / key_file_name(ring.active_kid)
    key_file.write_bytes(
        generate_private_key(SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(StartupError, match="does not hold an Ed25519 key"):
        load_keyring(directory)


def test_a_key_file_named_for_another_key_is_refused(tmp_path: Path) -> None:
    directory = tmp_path / "keys"
    ring = load_keyring(directory)
    other = Ed25519PrivateKey.generate()
    wrong_name = directory / key_file_name("AAAAAAAAAAAAAAAA")
    from cryptography.hazmat.primitives import serialization

    wrong_name.write_bytes(
        other.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    wrong_name.chmod(0o600)
    with pytest.raises(StartupError, match=f"holds key {key_id(other.public_key())}"):
        load_keyring(directory)
    assert ring.active_kid != "AAAAAAAAAAAAAAAA"


def test_an_active_file_naming_a_missing_key_is_refused(tmp_path: Path) -> None:
    directory = tmp_path / "keys"
    ring = load_keyring(directory)
    (directory / key_file_name(ring.active_kid)).unlink()
    (directory / "ed25519-placeholder.txt").write_text("ignored")
    with pytest.raises(StartupError, match=f"names key {ring.active_kid}, but .* does not exist"):
        load_keyring(directory)


def test_keys_without_an_active_file_are_refused_listing_the_key_ids(tmp_path: Path) -> None:
    directory = tmp_path / "keys"
    ring = load_keyring(directory)
    (directory / ACTIVE_FILE).unlink()
    with pytest.raises(StartupError, match=f"no active file .* {ring.active_kid}"):
        load_keyring(directory)


def test_rotation_on_disk_keeps_the_old_key_for_verifying(tmp_path: Path) -> None:
    directory = tmp_path / "keys"
    old = load_keyring(directory)
    kid, signature = old.sign(b"data")
    new_kid = rotate_keys(directory)
    ring = load_keyring(directory)
    assert ring.active_kid == new_kid != old.active_kid
    assert ring.verify(kid, b"data", signature)
    assert mode(directory / key_file_name(new_kid)) == 0o600


def test_a_deleted_key_file_makes_its_signatures_unverifiable(tmp_path: Path) -> None:
    directory = tmp_path / "keys"
    old = load_keyring(directory)
    kid, signature = old.sign(b"data")
    rotate_keys(directory)
    (directory / key_file_name(kid)).unlink()
    assert not load_keyring(directory).verify(kid, b"data", signature)


def test_a_staged_key_verifies_but_does_not_sign_until_it_is_activated(tmp_path: Path) -> None:
    directory = tmp_path / "keys"
    first = load_keyring(directory).active_kid
    staged = stage_key(directory)
    ring = load_keyring(directory)
    assert (ring.active_kid, ring.has_key(staged)) == (first, True)
    assert mode(directory / key_file_name(staged)) == 0o600
    assert activate_key(directory, staged) == first
    assert load_keyring(directory).active_kid == staged
    assert load_keyring(directory).has_key(first)


def test_activating_a_key_the_directory_lacks_is_refused_and_changes_nothing(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "keys"
    first = load_keyring(directory).active_kid
    with pytest.raises(StartupError, match=r"has no key 'AAAAAAAAAAAAAAAA'.*keys list"):
        activate_key(directory, "AAAAAAAAAAAAAAAA")
    assert load_keyring(directory).active_kid == first


def test_rotating_a_missing_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StartupError, match="does not exist"):
        rotate_keys(tmp_path / "keys")


def test_list_keys_shows_the_active_key_first(tmp_path: Path) -> None:
    directory = tmp_path / "keys"
    first = load_keyring(directory).active_kid
    second = rotate_keys(directory)
    third = rotate_keys(directory)
    keys = list_keys(directory)
    assert keys[0].kid == third
    assert {key.kid for key in keys} == {first, second, third}
    assert [key.active for key in keys] == [True, False, False]
    assert all(key.path.parent == directory for key in keys)


def test_generate_keys_creates_what_is_missing_and_keeps_what_exists(tmp_path: Path) -> None:
    directory = tmp_path / "keys"
    first = generate_keys(directory)
    assert first.created_key
    assert first.created_cookie_secret
    again = generate_keys(directory)
    assert not again.created_key
    assert not again.created_cookie_secret
    assert again.active_kid == first.active_kid


def test_two_first_starts_at_once_agree_on_one_key(tmp_path: Path) -> None:
    directory = tmp_path / "keys"
    directory.mkdir(mode=0o700)
    barrier = threading.Barrier(8)
    kids: list[str] = []

    def start() -> None:
        barrier.wait()
        kids.append(load_keyring(directory).active_kid)

    threads = [threading.Thread(target=start) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(kids)) == 1
    assert len(list(directory.glob("ed25519-*.pem"))) == 1


def test_the_cookie_secret_is_generated_once_with_mode_0600(tmp_path: Path) -> None:
    directory = tmp_path / "keys"
    secret = load_cookie_secret(directory)
    assert len(secret) == 32
    assert mode(directory / COOKIE_SECRET_FILE) == 0o600
    assert mode(directory) == 0o700
    assert load_cookie_secret(directory) == secret


def test_a_configured_cookie_secret_wins_and_the_file_is_not_touched(tmp_path: Path) -> None:
    directory = tmp_path / "keys"
    configured = "x" * 40
    assert load_cookie_secret(directory, configured) == configured.encode()
    assert not directory.exists()


def test_a_readable_cookie_secret_is_refused(tmp_path: Path) -> None:
    directory = tmp_path / "keys"
    load_cookie_secret(directory)
    (directory / COOKIE_SECRET_FILE).chmod(0o644)
    with pytest.raises(StartupError, match=r"cookie secret .* \(mode 0644\); run: chmod 600"):
        load_cookie_secret(directory)


def test_a_short_cookie_secret_file_is_refused(tmp_path: Path) -> None:
    directory = tmp_path / "keys"
    load_cookie_secret(directory)
    (directory / COOKIE_SECRET_FILE).write_bytes(b"short")
    with pytest.raises(StartupError, match="holds 5 bytes"):
        load_cookie_secret(directory)


def test_a_missing_cookie_secret_is_refused_when_creation_is_off(tmp_path: Path) -> None:
    directory = tmp_path / "keys"
    load_keyring(directory)
    with pytest.raises(StartupError, match=r"cookie secret .* does not exist"):
        load_cookie_secret(directory, create=False)
