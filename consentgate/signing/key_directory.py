"""Signing keys for consent records, and the cookie secret, kept in one directory.

Why a key ring and not one key: FastMCP's cookie-only consent signed with a key
that could never change (the upstream client secret), so a leaked key could not
be retired without forgetting every approval (docs/references.md, "Weaknesses none of
the cookie-only designs solve: ... no key rotation"). Here one *active* Ed25519
key signs new records, and any number of *retired* keys keep verifying the
records they signed until an operator deletes them; a deleted key makes its
records absent, which is how a compromised key is revoked wholesale.

Why Ed25519 (RFC 8032) and not an HMAC: the public half can be exported as a
JWKS (RFC 8037 OKP keys, RFC 7517) so anyone can verify an exported consent log
offline without being able to forge one.

The key id is derived from the public key, never chosen: the first 16 characters
(96 bits) of its RFC 7638 JWK thumbprint, base64url. A verifier can recompute it
from the JWKS entry, and a key file whose name does not match its content is
refused at startup.

Layout of ``[keys] dir`` (directory 0700, every file 0600)::

    ed25519-<kid>.pem   PKCS#8 PEM private key, one per key ever generated
    active              the kid that signs new records (replaced atomically)
    cookie.secret       32 random bytes; the gate derives per-purpose keys from it

The cookie secret is separate from the signing keys, and each use gets its own
key derived with HKDF (RFC 5869) under a distinct label, so a MAC computed for
one purpose (a CSRF token) can never be replayed as another (a browser id).
STYLE.md: "Purpose-separated keys (one HKDF label per use)".

Startup refuses private material that group or others can read, and a directory
that group or others can write (an attacker who can add a file could add a key
of their choosing). Every refusal is a :class:`StartupError` whose one-line
message names the file, its mode and the ``chmod`` that fixes it.

Pure module: no aiohttp import.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import os
import re
import secrets
import stat
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from consentgate.core.errors import StartupError

KEY_FILE_PREFIX: Final = "ed25519-"
KEY_FILE_SUFFIX: Final = ".pem"
ACTIVE_FILE: Final = "active"
COOKIE_SECRET_FILE: Final = "cookie.secret"  # noqa: S105 - a file name, not a secret
COOKIE_SECRET_BYTES: Final = 32
#: Length of a key id: 16 base64url characters = 96 bits of the JWK thumbprint.
KID_LENGTH: Final = 16
_KID_RE: Final = re.compile(r"^[A-Za-z0-9_-]{16}$")
_KEY_FILE_RE: Final = re.compile(r"^ed25519-([A-Za-z0-9_-]{16})\.pem$")
_HKDF_INFO_PREFIX: Final = b"consentgate/"
_PURPOSE_RE: Final = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _raw_public(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(public_key: Ed25519PublicKey) -> str:
    """The key id: the first 16 characters of the RFC 7638 JWK thumbprint, base64url.

    RFC 7638 §3.2: the thumbprint hashes the required members of the JWK in
    lexicographic order without whitespace; for an OKP key (RFC 8037 §2) those are
    ``crv``, ``kty`` and ``x``.
    """
    members = {"crv": "Ed25519", "kty": "OKP", "x": _b64url(_raw_public(public_key))}
    canonical = json.dumps(members, sort_keys=True, separators=(",", ":")).encode("ascii")
    return _b64url(hashlib.sha256(canonical).digest())[:KID_LENGTH]


def public_jwk(public_key: Ed25519PublicKey) -> dict[str, str]:
    """An RFC 8037 OKP JWK for an Ed25519 public key, with its kid."""
    return {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": _b64url(_raw_public(public_key)),
        "kid": key_id(public_key),
        "use": "sig",
        "alg": "EdDSA",
    }


def public_keys_from_jwks(jwks: Mapping[str, Any]) -> dict[str, Ed25519PublicKey]:
    """kid -> public key for the Ed25519 keys of a JWKS (what ``consents export`` writes).

    Each key's kid is recomputed from its ``x``; a JWK whose kid does not match is
    skipped, so a verifier never trusts a label the exporter could have mistyped.
    """
    found: dict[str, Ed25519PublicKey] = {}
    for jwk in jwks.get("keys", []):
        if not isinstance(jwk, Mapping) or jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519":
            continue
        x = jwk.get("x")
        if not isinstance(x, str):
            continue
        try:
            raw = base64.urlsafe_b64decode(x + "=" * (-len(x) % 4))
            public_key = Ed25519PublicKey.from_public_bytes(raw)
        except ValueError:
            continue
        kid = key_id(public_key)
        if jwk.get("kid", kid) == kid:
            found[kid] = public_key
    return found


def jwk_text(public_key: Ed25519PublicKey) -> str:
    """The public JWK as compact JSON, the form a store keeps."""
    return json.dumps(public_jwk(public_key), sort_keys=True, separators=(",", ":"))


def public_key_from_jwk_text(text: str, kid: str) -> Ed25519PublicKey | None:
    """The key of a :func:`jwk_text`, or None when it is not JSON, not an Ed25519 JWK,
    or its key does not hash to ``kid`` (an edited row must not lend a name to a key)."""
    try:
        jwk = json.loads(text)
    except ValueError:
        return None
    if not isinstance(jwk, dict):
        return None
    return public_keys_from_jwks({"keys": [jwk]}).get(kid)


class SigningUnavailable(RuntimeError):
    """A verify-only key ring (:meth:`KeyRing.verifying`) was asked to sign."""


def _by_kid(keys: Iterable[Ed25519PublicKey]) -> Mapping[str, Ed25519PublicKey]:
    return MappingProxyType({key_id(key): key for key in keys})


class KeyRing:
    """One active signing key and any number of retired keys that only verify.

    Immutable: rotation builds a new ring (:meth:`rotated`, or :func:`rotate_keys`
    plus :func:`load_keyring` for the key directory) and the store swaps it in
    with ``ConsentStore.reload_keys``.
    """

    __slots__ = ("_active", "_active_kid", "_public")

    def __init__(self, active: Ed25519PrivateKey, retired: Iterable[Ed25519PublicKey] = ()) -> None:
        self._active: Ed25519PrivateKey | None = active
        self._active_kid = key_id(active.public_key())
        self._public = _by_kid([*retired, active.public_key()])

    @classmethod
    def generate(cls) -> KeyRing:
        """A ring with one fresh key, held only in memory (tests, embedded use)."""
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def verifying(cls, public_keys: Iterable[Ed25519PublicKey]) -> KeyRing:
        """A ring that only verifies: the public keys a store keeps,
        so that ``consents verify`` and ``export`` run on a machine without the keys
        directory. :meth:`sign` and :attr:`active_kid` raise :class:`SigningUnavailable`.
        """
        ring = cls.__new__(cls)
        ring._active = None
        ring._active_kid = ""
        ring._public = _by_kid(public_keys)
        return ring

    def __repr__(self) -> str:
        active = self._active_kid if self._active is not None else None
        return f"KeyRing(active={active!r}, kids={list(self.kids)!r})"

    @property
    def can_sign(self) -> bool:
        """False for a :meth:`verifying` ring."""
        return self._active is not None

    @property
    def active_kid(self) -> str:
        """The kid that :meth:`sign` uses; it is part of what gets signed."""
        self._signing_key()
        return self._active_kid

    @property
    def kids(self) -> tuple[str, ...]:
        """Every kid the ring verifies, the active one first (when it has one), then the
        retired ones sorted."""
        retired = sorted(kid for kid in self._public if kid != self._active_kid)
        return (self._active_kid, *retired) if self._active is not None else tuple(retired)

    def _signing_key(self) -> Ed25519PrivateKey:
        if self._active is None:
            raise SigningUnavailable(
                "these keys were read from the store and only verify records; run this "
                "command where the gate's keys directory is"
            )
        return self._active

    def has_key(self, kid: str) -> bool:
        return kid in self._public

    def public_key(self, kid: str) -> Ed25519PublicKey | None:
        return self._public.get(kid)

    def sign(self, data: bytes) -> tuple[str, bytes]:
        """Sign with the active key; returns (kid, 64-byte signature)."""
        return self._active_kid, self._signing_key().sign(data)

    def verify(self, kid: str, data: bytes, signature: bytes) -> bool:
        """True only if ``kid`` is in the ring and its key signed ``data``; unknown kid -> False."""
        public_key = self._public.get(kid)
        if public_key is None:
            return False
        try:
            public_key.verify(signature, data)
        except (InvalidSignature, ValueError, TypeError):
            return False
        return True

    def rotated(self) -> KeyRing:
        """A ring with a new active key; the current keys keep verifying."""
        self._signing_key()
        return KeyRing(Ed25519PrivateKey.generate(), self._public.values())

    def without(self, kid: str) -> KeyRing:
        """A ring that no longer knows ``kid``: its records become absent."""
        remaining = [key for i, key in self._public.items() if i != kid]
        if self._active is None:
            return KeyRing.verifying(remaining)
        if kid == self._active_kid:
            raise ValueError("the active key cannot be removed; rotate first")
        return KeyRing(self._active, remaining)

    def jwks(self) -> dict[str, Any]:
        """The public keys as an RFC 7517 JWK Set of RFC 8037 OKP/Ed25519 keys."""
        return {"keys": [public_jwk(self._public[kid]) for kid in self.kids]}


def derive_key(secret: bytes, purpose: str) -> bytes:
    """A 32-byte key for one purpose: HKDF-SHA256(secret, info=b"consentgate/" + purpose).

    RFC 5869; no salt (the secret is already uniformly random or a long operator
    secret). The gate derives ``"browser-id"``, ``"subject"``, ``"csrf"``,
    ``"binding"``, ``"approvals-csrf"`` and ``"pending-seal"`` keys, so no MAC key
    serves two uses.
    """
    if len(secret) < COOKIE_SECRET_BYTES:
        raise ValueError(f"the secret must be at least {COOKIE_SECRET_BYTES} bytes")
    if not _PURPOSE_RE.match(purpose):
        raise ValueError(f"purpose must be a lower-case label such as 'csrf', got {purpose!r}")
    hkdf = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=None,
        info=_HKDF_INFO_PREFIX + purpose.encode("ascii"),
    )
    return hkdf.derive(secret)


# --- the key directory ---------------------------------------------------------------


def key_file_name(kid: str) -> str:
    return f"{KEY_FILE_PREFIX}{kid}{KEY_FILE_SUFFIX}"


@dataclass(frozen=True)
class KeyInfo:
    """One key of the key directory, as ``consentgate keys list`` shows it."""

    kid: str
    active: bool
    created_at: float
    path: Path


@dataclass(frozen=True)
class GeneratedKeys:
    """What :func:`generate_keys` found or created."""

    directory: Path
    active_kid: str
    created_key: bool
    created_cookie_secret: bool


def _mode(st: os.stat_result) -> str:
    return f"{stat.S_IMODE(st.st_mode):04o}"


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
            f"(mode {_mode(st)}); run: chmod 700 {directory}"
        )


def _check_private_file(path: Path, what: str) -> None:
    try:
        st = path.stat()
    except OSError as exc:
        raise StartupError(f"cannot read the {what} {path}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(st.st_mode):
        raise StartupError(f"the {what} {path} is not a regular file")
    if st.st_mode & 0o077:
        raise StartupError(
            f"the {what} {path} is accessible by group or others (mode {_mode(st)}); "
            f"run: chmod 600 {path}"
        )


def _make_directory(directory: Path) -> None:
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(directory, 0o700)  # mkdir's mode is filtered by the umask
    except OSError as exc:
        raise StartupError(
            f"cannot create the key directory {directory}: {exc.strerror or exc}"
        ) from None


def _fsync_directory(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` with mode 0600: temp file, fsync, os.replace.

    A crash leaves either the old file or the new one, never half a key or an
    ``active`` file naming nothing.
    """
    temp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            os.fchmod(fd, 0o600)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise StartupError(f"cannot write {path}: {exc.strerror or exc}") from None
    _fsync_directory(path.parent)


def write_private_file(path: Path, data: bytes) -> None:
    """Write a file of the keys directory: 0600, atomically, fsynced (StartupError on
    failure). For the few files kept beside the keys, such as the store record."""
    _write_atomically(path, data)


@contextlib.contextmanager
def _directory_lock(directory: Path) -> Iterator[None]:
    """An exclusive flock on the directory itself while keys are created or rotated.

    Two processes starting for the first time at once (the gate and a CLI command)
    must not each create a different first key. Best effort: where the file
    system has no flock the lock is skipped.
    """
    try:
        import fcntl  # noqa: PLC0415 - POSIX only

        fd = os.open(directory, os.O_RDONLY)
    except (ImportError, OSError):
        yield
        return
    try:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _read_private_key(path: Path) -> Ed25519PrivateKey:
    _check_private_file(path, "private key file")
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
    _write_atomically(directory / key_file_name(kid), pem)
    return kid


def _set_active(directory: Path, kid: str) -> None:
    _write_atomically(directory / ACTIVE_FILE, f"{kid}\n".encode("ascii"))


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
    with _directory_lock(path):
        ring, _ = _load_locked(path, create=create)
    return ring


def generate_keys(directory: str | os.PathLike[str]) -> GeneratedKeys:
    """``consentgate keys generate``: create whatever is missing, keep what exists.

    Idempotent, so a deployment script may run it on every start.
    """
    path = Path(directory)
    _prepare_directory(path, create=True)
    secret_file = path / COOKIE_SECRET_FILE
    with _directory_lock(path):
        ring, created_key = _load_locked(path, create=True)
        created_secret = not secret_file.exists()
        if created_secret:
            _write_atomically(secret_file, secrets.token_bytes(COOKIE_SECRET_BYTES))
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
    with _directory_lock(path):
        _load_locked(path, create=False)  # refuse to rotate a broken directory
        kid = _new_key_file(path)
        _set_active(path, kid)
    return kid


def list_keys(directory: str | os.PathLike[str]) -> list[KeyInfo]:
    """``consentgate keys list``: every key, the active one first, then oldest first."""
    path = Path(directory)
    _prepare_directory(path, create=False)
    ring, _ = _load_locked(path, create=False)
    infos = []
    for kid in ring.kids:
        file = path / key_file_name(kid)
        infos.append(KeyInfo(kid, kid == ring.active_kid, file.stat().st_mtime, file))
    return [infos[0], *sorted(infos[1:], key=lambda info: (info.created_at, info.kid))]


def secret_fingerprint(secret: bytes) -> str:
    """A public name for a cookie secret: 16 hex digits of HMAC-SHA256(secret, a fixed
    label). Two gates with the same secret have the same fingerprint; it reveals
    nothing of the secret (it is a MAC under it) and is safe to log and store."""
    return hmac.new(
        secret, b"consentgate/cookie-secret-fingerprint/v1", hashlib.sha256
    ).hexdigest()[:16]


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
        with _directory_lock(path):
            if not file.exists():
                _write_atomically(file, secrets.token_bytes(COOKIE_SECRET_BYTES))
    _check_private_file(file, "cookie secret")
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


#: The shortest admin API bearer token accepted (as the cookie secret: 32 characters).
ADMIN_TOKEN_MIN_LENGTH: Final = 32


def load_admin_token(path: Path) -> bytes:
    """The admin API's bearer token from ``[admin] token_file``, checked like the other
    secrets the gate reads at start: a regular file that group and others cannot
    access (mode 0600), at least :data:`ADMIN_TOKEN_MIN_LENGTH` characters after the
    surrounding whitespace (a trailing newline) is removed, printable ASCII only (so
    it fits an ``Authorization`` header). Every refusal is one :class:`StartupError`
    naming the key and the file, never the token."""
    _check_private_file(path, "admin token file (admin.token_file)")
    try:
        text = path.read_bytes().strip()
    except OSError as exc:
        raise StartupError(f"admin.token_file: cannot read {path}: {exc.strerror or exc}") from None
    if len(text) < ADMIN_TOKEN_MIN_LENGTH:
        raise StartupError(
            f"admin.token_file: the token in {path} has {len(text)} characters, fewer than "
            f"{ADMIN_TOKEN_MIN_LENGTH}; create one with: (umask 077; openssl rand -hex 32 > {path})"
        )
    if any(byte < 0x21 or byte > 0x7E for byte in text):
        raise StartupError(
            f"admin.token_file: the token in {path} holds spaces, control or non-ASCII "
            "characters; use printable ASCII (such as openssl rand -hex 32)"
        )
    return text
