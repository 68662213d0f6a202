"""Database URLs: which store a ``[store] url`` names, and how to show one safely.

Pure (no driver, no I/O): the configuration, the CLI and the PostgreSQL backend all
use it. A URL may carry a password, in its userinfo
(``postgresql://gate:secret@db:5432/consent``) or in a ``password=`` query parameter
(libpq accepts both, and so does asyncpg). It is never logged nor put in an error
message as given: every message names the server as ``host:port/dbname``
(:func:`describe`), and a URL that must be quoted whole goes through
:func:`mask_password` first (a libpq keyword string, ``host=x password=secret``, is
masked too). Query parameters pass through untouched (``sslmode``, ``sslrootcert``
... are the driver's business).
"""

from __future__ import annotations

import re
import urllib.parse
from typing import Final
from urllib.parse import parse_qsl, unquote

POSTGRES_SCHEMES: Final = frozenset({"postgresql", "postgres"})
MASK: Final = "***"
DEFAULT_PORT: Final = 5432

_SCHEME = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<rest>.*)$", re.DOTALL)
_QUERY_PASSWORD = re.compile(r"(?i)([?&]password=)[^&#]*")
_KEYWORD_PASSWORD = re.compile(r"""(?i)(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)""")


def mask_password(url: str) -> str:
    """``url`` with every password in it replaced by ``***`` (the rest kept as written).

    >>> mask_password("postgresql://gate:s3cret@db.example:5432/consents?sslmode=require")
    'postgresql://gate:***@db.example:5432/consents?sslmode=require'
    """
    match = _SCHEME.match(url)
    if match is None:  # a libpq keyword/value string, or not a URL at all
        return _KEYWORD_PASSWORD.sub(lambda m: m.group(1) + MASK, url)
    scheme, rest = match.group("scheme"), match.group("rest")
    end = len(rest)
    for stop in "/?#":
        found = rest.find(stop)
        if found != -1:
            end = min(end, found)
    authority, tail = rest[:end], rest[end:]
    at = authority.rfind("@")
    if at != -1:
        userinfo, hosts = authority[:at], authority[at + 1 :]
        if ":" in userinfo:
            userinfo = userinfo.split(":", 1)[0] + ":" + MASK
        authority = f"{userinfo}@{hosts}"
    return scheme + authority + _QUERY_PASSWORD.sub(lambda m: m.group(1) + MASK, tail)


def describe(url: str) -> str:
    """Where ``url`` points, as ``host:port/dbname`` (several hosts kept as written, a
    socket directory as its path); never the user or the password."""
    match = _SCHEME.match(url)
    if match is None:
        return "(a PostgreSQL server given by keywords)"
    rest = match.group("rest")
    rest, _, query = rest.partition("?")
    query = query.partition("#")[0]
    authority, _, path = rest.partition("/")
    hosts = authority.rpartition("@")[2]
    params = dict(parse_qsl(query, keep_blank_values=True))
    host_param = params.get("host", "")
    if not hosts and host_param:
        hosts = host_param
    if not hosts:
        hosts = "localhost"
    port = params.get("port", "")
    if "," not in hosts and not _has_port(hosts):
        hosts = f"{hosts}:{port or DEFAULT_PORT}"
    database = unquote(path.partition("#")[0]) or params.get("dbname", "")
    return f"{unquote(hosts)}/{database or '(default database)'}"


def password_of(url: str) -> str | None:
    """The password written in ``url`` (userinfo or ``password=``), or None; for
    scrubbing it from a driver's error text."""
    match = _SCHEME.match(url)
    if match is None:
        found = _KEYWORD_PASSWORD.search(url)
        return found.group(2).strip("'") if found else None
    rest = match.group("rest")
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    userinfo = authority.rpartition("@")[0]
    if ":" in userinfo:
        return unquote(userinfo.split(":", 1)[1])
    query = rest.partition("?")[2].partition("#")[0]
    return dict(parse_qsl(query, keep_blank_values=True)).get("password")


def _has_port(host: str) -> bool:
    if host.startswith("["):  # [::1] or [::1]:5432
        return "]:" in host
    return ":" in host and not host.startswith("/")


def check_database_url(url: str) -> None:
    """Check a ``[store] url``; ValueError names the problem and shows the URL masked
    (no ", got" in the messages: the config loader cuts secret values off there)."""
    shown = mask_password(url)
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - raises on a bad port
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
