"""Database URLs: which store a ``[store] url`` names, and how to show one safely.

A URL may carry a password (``postgresql://gate:secret@db:5432/consent``). It is
never logged nor put in an error message as given: :func:`mask_password` replaces
the password with ``***`` wherever a URL is shown. Query parameters pass through
untouched (``sslmode``, ``sslrootcert`` ... are the driver's business).
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass
from typing import Final

POSTGRES_SCHEMES: Final = frozenset({"postgresql", "postgres"})


def mask_password(url: str) -> str:
    """``url`` with any password replaced by ``***``; unparseable text is hidden whole."""
    try:
        parts = urllib.parse.urlsplit(url)
        password = parts.password
        hostinfo = parts.netloc.rpartition("@")
    except ValueError:
        return "<unparseable URL>"
    if password is None:
        return url
    user = hostinfo[0].partition(":")[0]
    netloc = f"{user}:***@{hostinfo[2]}"
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


@dataclass(frozen=True, slots=True)
class DatabaseURL:
    """A PostgreSQL URL, checked: host, port and database name are known for messages."""

    url: str
    host: str
    port: int
    database: str

    @property
    def shown(self) -> str:
        """The URL as it may appear in a log line or an error message."""
        return mask_password(self.url)

    @property
    def where(self) -> str:
        """``host:port/database``, for one-line errors."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}/{self.database}"


def parse_database_url(url: str) -> DatabaseURL:
    """Check a ``[store] url``; ValueError names the problem and shows the URL masked
    (no ", got" in the messages: the config loader cuts secret values off there)."""
    shown = mask_password(url)
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port or 5432
    except ValueError:
        raise ValueError(f"{shown!r} is not a URL, or has a bad port") from None
    if parts.scheme not in POSTGRES_SCHEMES:
        raise ValueError(
            f"{shown!r} is not a PostgreSQL URL; expected one such as "
            '"postgresql://gate@db.internal:5432/consentgate", or leave url empty to use '
            "the SQLite file at path"
        )
    database = urllib.parse.unquote(parts.path.lstrip("/"))
    host = parts.hostname or ""
    if not host:
        raise ValueError(f"{shown!r} names no host")
    if not database or "/" in database:
        raise ValueError(f"{shown!r} names no database (…:5432/dbname)")
    if parts.fragment:
        raise ValueError(f"{shown!r} has a #fragment; a database URL has none")
    return DatabaseURL(url, host, port, database)
