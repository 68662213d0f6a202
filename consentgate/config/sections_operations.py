"""The sections an operator runs the gate with: ``[store]`` (where records live),
``[keys]`` (signing keys, the cookie secret), ``[audit]`` (how long the audit chain is
kept), ``[log]`` and ``[admin]`` (the operators' listener).

Each key is one field: its type, default, parser, doc and reload behaviour
(:mod:`consentgate.config.keyspec`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from consentgate.config.keyspec import applies, restart, spec
from consentgate.config.parsers import (
    Choice,
    HostPort,
    bounded_int,
    parse_bool,
    parse_database_url,
    parse_duration,
    parse_file_path,
    parse_optional_file_path,
    parse_optional_listen,
    parse_optional_secret,
    parse_str,
)

#: ``[log] format``.
LogFormat = Literal["text", "json"]
#: ``[log] level``: the lowest level logged.
LogLevel = Literal["debug", "info", "warning", "error"]


@dataclass(frozen=True)
class StoreConfig:
    """Where consent records live: a SQLite file (the default) or a PostgreSQL database."""

    path: Path = field(
        default=Path("consentgate.sqlite3"),
        metadata=spec(
            parse_file_path,
            "SQLite file, used when url is empty; relative paths start at the config "
            "file's directory.",
            reload=restart("the store is opened at start"),
        ),
    )
    url: str = field(
        default="",
        metadata=spec(
            parse_database_url,
            'PostgreSQL store shared by several gates, e.g. "postgresql://gate@db:5432/'
            'consentgate?sslmode=verify-full"; empty uses the SQLite file at path. Prefer '
            "url_file or CONSENTGATE_STORE_URL when it holds a password.",
            secret=True,
            reload=restart("the store is opened at start"),
        ),
    )
    password: str = field(
        default="",
        metadata=spec(
            parse_str,
            "Password of the PostgreSQL role when the url has none; prefer password_file.",
            secret=True,
            reload=restart("the store is opened at start"),
        ),
    )
    pool_size: int = field(
        default=10,
        metadata=spec(
            bounded_int(1, 1000),
            "Most PostgreSQL connections one gate process keeps open.",
            reload=restart("the store is opened at start"),
        ),
    )
    statement_timeout: float = field(
        default=5.0,
        metadata=spec(
            parse_duration,
            "Longest one store operation may wait: a PostgreSQL statement runs (then it is "
            "cancelled) or a request waits for a pooled connection; SQLite's busy timeout, "
            "and the wait for its connection. Then the request fails closed with a 503.",
            reload=restart("the store is opened at start"),
        ),
    )
    keep_expired: float = field(
        default=90 * 86400.0,
        metadata=spec(
            parse_duration,
            "How long consent records are kept after they expired or were revoked.",
            reload=restart("the purge task starts with it"),
        ),
    )


@dataclass(frozen=True)
class KeysConfig:
    """Signing keys and the cookie secret."""

    dir: Path = field(
        default=Path("keys"),
        metadata=spec(
            parse_file_path,
            "Directory of signing keys and the cookie secret (0700).",
            reload=restart("keys are loaded from it at start (SIGHUP re-reads this directory)"),
        ),
    )
    cookie_secret: str = field(
        default="",
        metadata=spec(
            parse_optional_secret,
            "Secret for cookie MACs, at least 32 characters; empty uses the generated one in dir. "
            "Prefer cookie_secret_file.",
            secret=True,
            reload=restart("the cookie keys are derived from it at start"),
        ),
    )


@dataclass(frozen=True)
class AuditConfig:
    """The hash-chained audit table in the store."""

    keep: float = field(
        default=400 * 86400.0,
        metadata=spec(
            parse_duration,
            "How long audit rows are kept; older rows are purged with a checkpoint row "
            "so that the rest of the chain still verifies.",
            reload=restart("the purge task takes it at start"),
        ),
    )


@dataclass(frozen=True)
class LogConfig:
    """Logging output."""

    format: LogFormat = field(
        default="text",
        metadata=spec(
            Choice(LogFormat),
            "text or json.",
            reload=applies("the log handler and the access log writer are rebuilt"),
        ),
    )
    level: LogLevel = field(
        default="info",
        metadata=spec(
            Choice(LogLevel), "Lowest level logged.", reload=applies("the log level is set again")
        ),
    )
    access_log: bool = field(
        default=True,
        metadata=spec(
            parse_bool,
            "One line per request on the consentgate.access logger.",
            reload=applies("the access log writer is switched on or off"),
        ),
    )


@dataclass(frozen=True)
class AdminConfig:
    """The operators' listener: ``/metrics`` and the admin API (docs/admin-api.md).
    Never the public port; the API always needs the bearer token of ``token_file``."""

    listen: HostPort | None = field(
        default=None,
        metadata=spec(
            parse_optional_listen,
            'Address of the admin listener (/metrics, /admin/...), "host:port"; empty: off. '
            "Keep it on loopback or a private network: it is never on the public port.",
            reload=restart("the admin listener is bound at start"),
        ),
    )
    token_file: Path | None = field(
        default=None,
        metadata=spec(
            parse_optional_file_path,
            "File holding the admin API's bearer token (at least 32 characters, mode 0600); "
            "required when listen is set. Create one with: "
            "(umask 077; openssl rand -hex 32 > admin.token)",
            reload=restart(
                "the admin token is read from this file at start (SIGHUP "
                "re-reads the same file: rotate the token in place)"
            ),
        ),
    )
    metrics_need_token: bool = field(
        default=False,
        metadata=spec(
            parse_bool,
            "Whether GET /metrics also needs the bearer token (false: a scraper needs none).",
            reload=restart("the admin listener's routes are set up at start"),
        ),
    )
