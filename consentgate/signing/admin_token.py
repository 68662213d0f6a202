"""The admin API's bearer token, read from ``[admin] token_file`` at start
(docs/admin-api.md), checked like the other secrets of the keys directory."""

from __future__ import annotations

from pathlib import Path
from typing import Final

from consentgate.core.startup_errors import StartupError
from consentgate.signing.private_files import check_private_file

#: The shortest admin API bearer token accepted (as the cookie secret: 32 characters).
ADMIN_TOKEN_MIN_LENGTH: Final = 32


def load_admin_token(path: Path) -> bytes:
    """The admin API's bearer token from ``[admin] token_file``, checked like the other
    secrets the gate reads at start: a regular file that group and others cannot
    access (mode 0600), at least :data:`ADMIN_TOKEN_MIN_LENGTH` characters after the
    surrounding whitespace (a trailing newline) is removed, printable ASCII only (so
    it fits an ``Authorization`` header). Every refusal is one :class:`StartupError`
    naming the key and the file, never the token."""
    check_private_file(path, "admin token file (admin.token_file)")
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
