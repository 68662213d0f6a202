"""The key directory on disk: signing key files, the active key, the cookie secret.

Layout of ``[keys] dir`` (directory 0700, every file 0600)::

    ed25519-<kid>.pem   PKCS#8 PEM private key, one per key ever generated
    active              the kid that signs new records (replaced atomically)
    staged              the kids added by ``keys add`` and not yet activated (a label:
                        ``keys list`` tells them from retired keys; the gate ignores it)
    cookie.secret       32 random bytes; the gate derives per-purpose keys from it

A key file whose name does not match its content (the kid is the key's RFC 7638
thumbprint, :func:`consentgate.core.signed.keyring.key_id`) is refused at startup.

Startup refuses private material that group or others can read, and a directory
that group or others can write (an attacker who can add a file could add a key
of their choosing). Every refusal is a :class:`StartupError` whose one-line
message names the file, its mode and the ``chmod`` that fixes it. Files are written
and locked by :mod:`consentgate.signing.private_files`.
"""

from __future__ import annotations

import os
import re
import secrets
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from consentgate.core.signed.keyring import COOKIE_SECRET_BYTES, KeyRing, key_id
from consentgate.core.startup_errors import StartupError
from consentgate.signing.private_files import (
    check_private_file,
    directory_lock,
    file_mode,
    write_private_file,
)

KEY_FILE_PREFIX: Final = "ed25519-"
KEY_FILE_SUFFIX: Final = ".pem"
ACTIVE_FILE: Final = "active"
STAGED_FILE: Final = "staged"
COOKIE_SECRET_FILE: Final = "cookie.secret"  # noqa: S105 - a file name, not a secret
_KID_RE: Final = re.compile(r"^[A-Za-z0-9_-]{16}$")
_KEY_FILE_RE: Final = re.compile(r"^ed25519-([A-Za-z0-9_-]{16})\.pem$")


def key_file_name(kid: str) -> str:
    return f"{KEY_FILE_PREFIX}{kid}{KEY_FILE_SUFFIX}"


@dataclass(frozen=True)
class KeyInfo:
    """One key of the key directory, as ``consentgate keys list`` shows it."""

    kid: str
    active: bool
    created_at: float
    path: Path
    #: Added by ``keys add`` and not yet activated: it verifies and has never signed.
    staged: bool = False

    @property
    def status(self) -> Literal["active", "staged", "retired"]:
        """``active``, ``staged`` or ``retired`` (verifies the records it once signed)."""
        return "active" if self.active else "staged" if self.staged else "retired"


@dataclass(frozen=True)
class GeneratedKeys:
    """What :func:`generate_keys` found or created."""

    directory: Path
    active_kid: str
    created_key: bool
    created_cookie_secret: bool


def _check_directory(directory: Path) -> None:
    try:
        st = directory.stat()
    except OSError as exc:
        raise StartupError(
            f"cannot read the key directory {directory}: {exc.strerror or exc}"
        ) from None
    if not stat.S_ISDIR(st.st_mode):
        raise StartupError(f"the key directory {directory} is not a directory")
    if st.st_mode & 0o077:
        # Writable: anyone could add a key of their choosing. Readable or searchable:
        # the names (key ids, the store record) and any file left readable by mistake
        # are open to every local user.
        raise StartupError(
            f"the key directory {directory} is accessible by group or others "
            f"(mode {file_mode(st)}); run: chmod 700 {directory}"
        )


def _make_directory(directory: Path) -> None:
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(directory, 0o700)  # mkdir's mode is filtered by the umask
    except OSError as exc:
        raise StartupError(
            f"cannot create the key directory {directory}: {exc.strerror or exc}"
        ) from None


def _read_private_key(path: Path) -> Ed25519PrivateKey:
    check_private_file(path, "private key file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise StartupError(
            f"cannot read the private key file {path}: {exc.strerror or exc}"
        ) from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise StartupError(
            f"the private key file {path} is not an unencrypted PEM private key (corrupt?)"
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise StartupError(f"the private key file {path} does not hold an Ed25519 key")
    return key


def _read_key_files(directory: Path) -> dict[str, Ed25519PrivateKey]:
    keys: dict[str, Ed25519PrivateKey] = {}
    try:
        names = sorted(os.listdir(directory))
    except OSError as exc:
        raise StartupError(
            f"cannot list the key directory {directory}: {exc.strerror or exc}"
        ) from None
    for name in names:
        if not (name.startswith(KEY_FILE_PREFIX) and name.endswith(KEY_FILE_SUFFIX)):
            continue
        path = directory / name
        match = _KEY_FILE_RE.match(name)
        if match is None:
            raise StartupError(f"the key file name {path} is not ed25519-<16-character key id>.pem")
        key = _read_private_key(path)
        kid = key_id(key.public_key())
        if kid != match.group(1):
            raise StartupError(
                f"the private key file {path} holds key {kid}, not {match.group(1)}; "
                f"rename it to {key_file_name(kid)}"
            )
        keys[kid] = key
    return keys


def _read_active(path: Path, known: Iterable[str]) -> str:
    try:
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not a key id"
        raise StartupError(f"cannot read the active key file {path}: {detail}") from None
    if not _KID_RE.match(text):
        raise StartupError(f"the active key file {path} does not hold a key id (got {text[:40]!r})")
    if text not in set(known):
        raise StartupError(
            f"the active key file {path} names key {text}, but "
            f"{path.parent / key_file_name(text)} does not exist"
        )
    return text


def _new_key_file(directory: Path) -> str:
    key = Ed25519PrivateKey.generate()
    kid = key_id(key.public_key())
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    write_private_file(directory / key_file_name(kid), pem)
    return kid


def _set_active(directory: Path, kid: str) -> None:
    write_private_file(directory / ACTIVE_FILE, f"{kid}\n".encode("ascii"))
    staged = _read_staged(directory)
    if kid in staged:
        _set_staged(directory, staged - {kid})


def _read_staged(directory: Path) -> set[str]:
    """The kids of the ``staged`` file; a label only, so an unreadable one is empty."""
    try:
        text = (directory / STAGED_FILE).read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError):
        return set()
    return {line.strip() for line in text.splitlines() if _KID_RE.match(line.strip())}


def _set_staged(directory: Path, kids: set[str]) -> None:
    if kids:
        text = "".join(f"{kid}\n" for kid in sorted(kids))
        write_private_file(directory / STAGED_FILE, text.encode("ascii"))
    else:
        (directory / STAGED_FILE).unlink(missing_ok=True)


def _load_locked(directory: Path, *, create: bool) -> tuple[KeyRing, bool]:
    keys = _read_key_files(directory)
    active_path = directory / ACTIVE_FILE
    created = False
    if not active_path.exists():
        if keys:
            raise StartupError(
                f"the key directory {directory} has keys but no {ACTIVE_FILE} file naming the "
                f"signing key; write one of these key ids into {active_path}: {', '.join(keys)}"
            )
        if not create:
            raise StartupError(
                f"the key directory {directory} has no keys; create one with: "
                "consentgate keys generate"
            )
        kid = _new_key_file(directory)
        _set_active(directory, kid)
        keys = _read_key_files(directory)
        created = True
    active_kid = _read_active(active_path, keys)
    retired = [key.public_key() for kid, key in keys.items() if kid != active_kid]
    return KeyRing(keys[active_kid], retired), created


def _prepare_directory(directory: Path, *, create: bool) -> None:
    if not directory.exists():
        if not create:
            raise StartupError(
                f"the key directory {directory} does not exist; create it with: "
                "consentgate keys generate"
            )
        _make_directory(directory)
    _check_directory(directory)


def load_keyring(directory: str | os.PathLike[str], *, create: bool = True) -> KeyRing:
    """Read the key directory; with ``create`` make it and a first key when absent.

    Raises :class:`StartupError` (one line, naming the file) for a missing
    directory or active key, a file others can read, a directory others can
    write, or a key file that is not a readable Ed25519 PEM.
    """
    path = Path(directory)
    _prepare_directory(path, create=create)
    with directory_lock(path):
        ring, _ = _load_locked(path, create=create)
    return ring


def generate_keys(directory: str | os.PathLike[str]) -> GeneratedKeys:
    """``consentgate keys generate``: create whatever is missing, keep what exists.

    Idempotent, so a deployment script may run it on every start.
    """
    path = Path(directory)
    _prepare_directory(path, create=True)
    secret_file = path / COOKIE_SECRET_FILE
    with directory_lock(path):
        ring, created_key = _load_locked(path, create=True)
        created_secret = not secret_file.exists()
        if created_secret:
            write_private_file(secret_file, secrets.token_bytes(COOKIE_SECRET_BYTES))
    load_cookie_secret(path, "", create=False)  # the same mode and length checks as startup
    return GeneratedKeys(path, ring.active_kid, created_key, created_secret)


def rotate_keys(directory: str | os.PathLike[str]) -> str:
    """``consentgate keys rotate``: a new active key; the previous ones keep verifying.

    Returns the new kid. A running gate signs with the new key once it reloads
    its key ring (``ConsentStore.reload_keys``) or restarts; until then it keeps
    signing with the previous key, which stays valid.
    """
    path = Path(directory)
    _prepare_directory(path, create=False)
    with directory_lock(path):
        _load_locked(path, create=False)  # refuse to rotate a broken directory
        kid = _new_key_file(path)
        _set_active(path, kid)
    return kid


def stage_key(directory: str | os.PathLike[str]) -> str:
    """``consentgate keys add``: a new key that verifies but does not sign yet.

    The first step of a fleet's rotation: every gate learns the key (its keys
    directory, once the store publishes its kid) before any gate signs with it, so no
    gate ever meets a record signed with a key it lacks. Returns the new kid;
    :func:`activate_key` makes it the signing key.
    """
    path = Path(directory)
    _prepare_directory(path, create=False)
    with directory_lock(path):
        _load_locked(path, create=False)  # refuse to add to a broken directory
        kid = _new_key_file(path)
        _set_staged(path, _read_staged(path) | {kid})
        return kid


def activate_key(directory: str | os.PathLike[str], kid: str) -> str:
    """``consentgate keys activate KID``: make a key of the directory the signing key.

    Returns the previously active kid. A running gate signs with it once it reloads
    (SIGHUP) or restarts; until then it keeps signing with the previous key, which
    every gate still verifies.
    """
    path = Path(directory)
    _prepare_directory(path, create=False)
    with directory_lock(path):
        ring, _ = _load_locked(path, create=False)
        if not ring.has_key(kid):
            raise StartupError(
                f"the key directory {path} has no key {kid!r} ({path / key_file_name(kid)}); "
                "see: consentgate keys list"
            )
        previous = ring.active_kid
        _set_active(path, kid)
    return previous


def list_keys(directory: str | os.PathLike[str]) -> list[KeyInfo]:
    """``consentgate keys list``: every key, the active one first, then oldest first."""
    path = Path(directory)
    _prepare_directory(path, create=False)
    ring, _ = _load_locked(path, create=False)
    staged = _read_staged(path)
    infos = []
    for kid in ring.kids:
        file = path / key_file_name(kid)
        active = kid == ring.active_kid
        infos.append(KeyInfo(kid, active, file.stat().st_mtime, file, kid in staged))
    return [infos[0], *sorted(infos[1:], key=lambda info: (info.created_at, info.kid))]


def load_cookie_secret(
    directory: str | os.PathLike[str], override: str = "", *, create: bool = True
) -> bytes:
    """The secret the gate derives its cookie MAC keys from (:func:`derive_key`).

    ``override`` is ``config.keys.cookie_secret``: when non-empty it wins and the
    file is not touched (several gate replicas can share one configured secret).
    Otherwise ``cookie.secret`` in the key directory is read, or created with 32
    random bytes when absent and ``create`` is true.
    """
    if override:
        if len(override) < COOKIE_SECRET_BYTES:
            raise StartupError(
                f"keys.cookie_secret must be at least {COOKIE_SECRET_BYTES} characters"
            )
        return override.encode("utf-8")
    path = Path(directory)
    _prepare_directory(path, create=create)
    file = path / COOKIE_SECRET_FILE
    if not file.exists():
        if not create:
            raise StartupError(
                f"the cookie secret {file} does not exist; "
                "create it with: consentgate keys generate"
            )
        with directory_lock(path):
            if not file.exists():
                write_private_file(file, secrets.token_bytes(COOKIE_SECRET_BYTES))
    check_private_file(file, "cookie secret")
    try:
        secret = file.read_bytes()
    except OSError as exc:
        raise StartupError(f"cannot read the cookie secret {file}: {exc.strerror or exc}") from None
    if len(secret) < COOKIE_SECRET_BYTES:
        raise StartupError(
            f"the cookie secret {file} holds {len(secret)} bytes, fewer than "
            f"{COOKIE_SECRET_BYTES}; delete it to generate a new one (signs everyone out)"
        )
    return secret
