"""Configuration: one TOML file, frozen dataclasses, every problem reported at once.

Conventions follow what operators of oauth2-proxy, Hydra and Keycloak expect:
snake_case keys, unknown keys are errors (a typo must not silently disable a
security rule), environment overrides with one prefix
(``CONSENTGATE_<SECTION>_<KEY>``), secrets readable from files (``<key>_file``),
and a check command that prints every error, each naming the key path and the
bad value.

This module never imports aiohttp: it is shared by the CLI, the app factory and
the library API.
"""

from __future__ import annotations

import contextlib
import difflib
import ipaddress
import math
import os
import re
import tomllib
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

from consentgate.clients.domain_policy import DomainEntry, parse_domain_entries
from consentgate.clients.fetch_addresses import Network, parse_networks
from consentgate.config.dsn import check_database_url

ENV_PREFIX: Final = "CONSENTGATE_"
#: Environment variables with the prefix that are not configuration keys.
ENV_RESERVED: Final = frozenset({"CONSENTGATE_CONFIG"})


class ConfigError(Exception):
    """Every problem found in a configuration, each naming its key path and value."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


Parser = Callable[[Any, "_Context"], Any]


@dataclass(frozen=True)
class _Context:
    """What a field parser may need besides the value: where relative paths start."""

    base_dir: Path


def _spec(parse: Parser, doc: str, *, secret: bool = False, env: bool = True) -> dict[str, Any]:
    return {"parse": parse, "doc": doc, "secret": secret, "env": env}


# --- value parsers ------------------------------------------------------------------
# Each takes the raw TOML value and returns the typed value or raises ValueError with
# a message that completes "<key path>: ...". The loader adds the key path.


def _fmt(value: Any) -> str:
    return repr(value)


def _as_str(value: Any, _: _Context) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {_fmt(value)}")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise ValueError(f"control characters are not allowed, got {_fmt(value)}")
    return value


def _nonempty_str(value: Any, ctx: _Context) -> str:
    text = _as_str(value, ctx)
    if not text.strip():
        raise ValueError(f"must not be empty, got {_fmt(value)}")
    return text


def _as_bool(value: Any, _: _Context) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {_fmt(value)}")
    return value


def _positive_number(value: Any, _: _Context) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"expected a number of seconds, got {_fmt(value)}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"must be a positive number, got {_fmt(value)}")
    return float(value)


def _positive_int(value: Any, _: _Context) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"expected a whole number, got {_fmt(value)}")
    if value <= 0:
        raise ValueError(f"must be a positive whole number, got {_fmt(value)}")
    return value


def _non_negative_int(value: Any, _: _Context) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"expected a whole number, got {_fmt(value)}")
    if value < 0:
        raise ValueError(f"must be 0 or more, got {_fmt(value)}")
    return value


_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*$")
_DURATION_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


def parse_duration(value: Any, ctx: _Context | None = None) -> float:
    """Seconds as a number, or a string with a unit: ``"90s"``, ``"10m"``, ``"12h"``, ``"30d"``."""
    if isinstance(value, str):
        match = _DURATION_RE.match(value)
        if match is None:
            raise ValueError(
                f'expected seconds or a duration like "10m" or "30d", got {_fmt(value)}'
            )
        seconds = float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        if seconds <= 0:
            raise ValueError(f"must be a positive duration, got {_fmt(value)}")
        return seconds
    return _positive_number(value, ctx or _Context(Path.cwd()))


def _choice(*options: str) -> Parser:
    def parse(value: Any, ctx: _Context) -> str:
        text = _as_str(value, ctx)
        if text not in options:
            listed = ", ".join(f'"{o}"' for o in options)
            raise ValueError(f"expected one of {listed}, got {_fmt(value)}")
        return text

    return parse


def _url_path(value: Any, ctx: _Context) -> str:
    """An absolute path as the upstream routes it: starts with '/', no query, no fragment."""
    text = _as_str(value, ctx)
    if not text.startswith("/") or text.startswith("//"):
        raise ValueError(f"expected an absolute path starting with one '/', got {_fmt(value)}")
    if any(c in text for c in "?#%\\ ") or "/./" in text or "/../" in text:
        raise ValueError(
            f"expected a plain path without query, fragment, escapes or dot segments, "
            f"got {_fmt(value)}"
        )
    return text


def _prefix(value: Any, ctx: _Context) -> str:
    text = _url_path(value, ctx)
    if text == "/" or text.endswith("/"):
        raise ValueError(
            f'expected a path such as "/_consentgate" without a trailing slash, got {_fmt(value)}'
        )
    return text


def _path_list(value: Any, ctx: _Context) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ValueError(f"expected a list of paths, got {_fmt(value)}")
    return tuple(_url_path(item, ctx) for item in value)


@dataclass(frozen=True)
class HostPort:
    """A listen address. ``host`` is a name or an IP literal without brackets."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def _listen(value: Any, ctx: _Context) -> HostPort:
    text = _as_str(value, ctx)
    match = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:(\d{1,5})|([^:\[\]\s]+):(\d{1,5})", text)
    if match is None:
        raise ValueError(f'expected "host:port" (IPv6 as "[::1]:8080"), got {_fmt(value)}')
    host = match.group(1) or match.group(3)
    port = int(match.group(2) or match.group(4))
    if not 0 <= port <= 65535:
        raise ValueError(f"port must be between 0 and 65535, got {_fmt(value)}")
    if match.group(1):
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"not an IPv6 address, got {_fmt(value)}") from None
    return HostPort(host, port)


def _optional_listen(value: Any, ctx: _Context) -> HostPort | None:
    """``host:port``, or ``""`` for off."""
    return None if _as_str(value, ctx) == "" else _listen(value, ctx)


def _origin(value: Any, ctx: _Context) -> str:
    """An http(s) origin (scheme, host, optional port) with nothing after it."""
    text = _as_str(value, ctx).rstrip("/")
    parts = urllib.parse.urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(
            f'expected an http(s) origin such as "https://mcp.example.com", got {_fmt(value)}'
        )
    if parts.path or parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError(
            f"expected an origin without path, query or credentials, got {_fmt(value)}"
        )
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise ValueError(f"bad port in {_fmt(value)}") from None
    return f"{parts.scheme}://{parts.netloc.lower()}"


def _cidr_list(
    value: Any, ctx: _Context
) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    if not isinstance(value, list):
        raise ValueError(f'expected a list of CIDRs such as ["10.0.0.0/8"], got {_fmt(value)}')
    networks = []
    for item in value:
        text = _as_str(item, ctx)
        try:
            networks.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            raise ValueError(f"not an IP network (CIDR), got {_fmt(item)}") from None
    return tuple(networks)


def _file_path(value: Any, ctx: _Context) -> Path:
    text = _nonempty_str(value, ctx)
    path = Path(text).expanduser()
    return path if path.is_absolute() else (ctx.base_dir / path)


_CONTROL_OR_SPACE = re.compile(r"[\x00-\x20\x7f]")


def _absolute_uri(text: str) -> str:
    parts = urllib.parse.urlsplit(text)
    if not parts.scheme or _CONTROL_OR_SPACE.search(text) or parts.fragment:
        raise ValueError(f"expected an absolute URI without fragment, got {_fmt(text)}")
    return text


def _uri_list(value: Any, ctx: _Context) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ValueError(f"expected a list of exact redirect URIs, got {_fmt(value)}")
    return tuple(_absolute_uri(_as_str(item, ctx)) for item in value)


def _str_map(value: Any, ctx: _Context) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, dict):
        raise ValueError(f"expected a table of strings, got {_fmt(value)}")
    items = []
    for key, text in value.items():
        if not isinstance(text, str):
            raise ValueError(f"expected a string for {key!r}, got {_fmt(text)}")
        items.append((str(key), _as_str(text, ctx)))
    return tuple(items)


def _optional_file_path(value: Any, ctx: _Context) -> Path | None:
    """A file path, or ``""`` for none."""
    return None if _as_str(value, ctx) == "" else _file_path(value, ctx)


def _optional_secret(value: Any, ctx: _Context) -> str:
    text = _as_str(value, ctx)
    if text and len(text) < 32:
        raise ValueError("must be at least 32 characters (the value is not shown)")
    return text


def _database_url(value: Any, ctx: _Context) -> str:
    """Empty (the SQLite file) or a PostgreSQL URL; errors show it with the password masked."""
    text = _as_str(value, ctx).strip()
    if text:
        check_database_url(text)
    return text


def _bounded_int(low: int, high: int) -> Parser:
    def parse(value: Any, ctx: _Context) -> int:
        number = _positive_int(value, ctx)
        if not low <= number <= high:
            raise ValueError(f"must be between {low} and {high}, got {_fmt(value)}")
        return number

    return parse


def _networks(value: Any, _: _Context) -> tuple[Network, ...]:
    """The fetch allow list, read by the SSRF rules' own parser (``clients.fetch_addresses``)."""
    return parse_networks(value)


def _domains(value: Any, _: _Context) -> tuple[DomainEntry, ...]:
    """Blocked or allowed client hosts, read by ``clients.domain_policy``'s own parser."""
    return parse_domain_entries(value)


# --- the configuration ---------------------------------------------------------------


@dataclass(frozen=True)
class ServerConfig:
    """How the gate listens and the origin people and clients see."""

    public_url: str = field(
        metadata=_spec(_origin, "Origin that browsers and clients use; https in production.")
    )
    listen: HostPort = field(
        default=HostPort("127.0.0.1", 8080),
        metadata=_spec(_listen, 'Address to listen on, "host:port" ("[::1]:8080" for IPv6).'),
    )
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = field(
        default=(),
        metadata=_spec(
            _cidr_list, "CIDRs whose X-Forwarded-* and X-Request-Id headers are believed."
        ),
    )
    prefix: str = field(
        default="/_consentgate",
        metadata=_spec(_prefix, "Path under which the gate serves its own pages and probes."),
    )
    max_body_size: int = field(
        default=64 * 1024 * 1024,
        metadata=_spec(_positive_int, "Largest request body relayed, in bytes (413 beyond)."),
    )
    workers: int = field(
        default=1,
        metadata=_spec(
            _bounded_int(1, 64),
            "Processes serving the listen address together (SO_REUSEPORT), under one "
            "supervising parent; 1 serves from the one process.",
        ),
    )
    shutdown_grace: float = field(
        default=10.0,
        metadata=_spec(
            parse_duration,
            "Seconds from SIGTERM/SIGINT to exit: in-flight requests may finish, streams "
            "still open near the end are cut.",
        ),
    )
    header_timeout: float = field(
        default=10.0,
        metadata=_spec(
            parse_duration,
            "Seconds a client has to send a request's headers once it started sending them.",
        ),
    )
    body_timeout: float = field(
        default=30.0,
        metadata=_spec(
            parse_duration,
            "Seconds a request body may pause (no byte arriving) while the gate waits for "
            "it; then 408 and the connection is closed (nginx: client_body_timeout).",
        ),
    )
    idle_timeout: float = field(
        default=30.0,
        metadata=_spec(
            parse_duration,
            "Seconds a connection may wait for its first or next request before it is closed.",
        ),
    )
    max_connections: int = field(
        default=1000,
        metadata=_spec(
            _positive_int,
            "Most client connections open at once; beyond, one still waiting for its "
            "headers is closed.",
        ),
    )


@dataclass(frozen=True)
class UpstreamConfig:
    """The single-client OAuth proxy the gate stands in front of."""

    url: str = field(metadata=_spec(_origin, "Origin of the upstream OAuth proxy."))
    authorize_path: str = field(
        default="/authorize", metadata=_spec(_url_path, "The upstream's authorization endpoint.")
    )
    register_path: str = field(
        default="/register",
        metadata=_spec(_url_path, "The upstream's dynamic registration endpoint."),
    )
    callback_path: str = field(
        default="/auth/callback",
        metadata=_spec(_url_path, "Where the third-party IdP returns to the upstream proxy."),
    )
    connect_timeout: float = field(
        default=5.0,
        metadata=_spec(
            parse_duration,
            "Seconds to open a connection upstream (504 after, as nginx answers its "
            "connect timeout).",
        ),
    )
    read_timeout: float = field(
        default=60.0,
        metadata=_spec(
            parse_duration,
            "Seconds to wait for the response headers once the request was sent (504 after); "
            "response bodies and event streams have no total timeout.",
        ),
    )
    keepalive_timeout: float = field(
        default=4.0,
        metadata=_spec(
            parse_duration,
            "Seconds an idle pooled upstream connection is kept; keep it below the upstream's "
            "own idle timeout (uvicorn: 5 s) so a POST never lands on a closing connection.",
        ),
    )
    max_connections: int = field(
        default=256,
        metadata=_spec(
            _positive_int,
            "Most connections open to the upstream at once; further requests wait for one "
            "(their read_timeout bounds the wait).",
        ),
    )
    max_connections_per_address: int = field(
        default=0,
        metadata=_spec(
            _non_negative_int,
            "Most upstream connections the requests of one client address (IPv6: its "
            "/64) use at once; beyond, 503 with Retry-After. 0: a quarter of "
            "max_connections.",
        ),
    )
    host_header: str = field(
        default="upstream",
        metadata=_spec(
            _choice("upstream", "preserve"),
            '"upstream" sends the upstream\'s own host; "preserve" passes the client\'s Host.',
        ),
    )
    blocked_paths: tuple[str, ...] = field(
        default=(),
        metadata=_spec(
            _path_list, "Upstream paths (and everything below them) never relayed: 404."
        ),
    )
    direct_paths: tuple[str, ...] = field(
        default=(),
        metadata=_spec(
            _path_list,
            "Data-plane paths (and everything below them) that `consentgate nginx-config` "
            "sends from nginx straight to the upstream; the gate never sees them.",
        ),
    )
    issuer: str = field(
        default="",
        metadata=_spec(
            _as_str,
            "Issuer for RFC 9207 iss on error redirects, exactly as the upstream's "
            "metadata advertises it (a start and readyz refuse another value); "
            "empty reads it from the upstream's metadata.",
        ),
    )

    @property
    def address_share(self) -> int:
        """The upstream connections one client address may use at once:
        ``max_connections_per_address``, or a quarter of ``max_connections`` (at least
        one) when it is 0, so that one address never holds the whole pool."""
        return self.max_connections_per_address or max(self.max_connections // 4, 1)


@dataclass(frozen=True)
class StoreConfig:
    """Where consent records live: a SQLite file (the default) or a PostgreSQL database."""

    path: Path = field(
        default=Path("consentgate.sqlite3"),
        metadata=_spec(
            _file_path,
            "SQLite file, used when url is empty; relative paths start at the config "
            "file's directory.",
        ),
    )
    url: str = field(
        default="",
        metadata=_spec(
            _database_url,
            'PostgreSQL store shared by several gates, e.g. "postgresql://gate@db:5432/'
            'consentgate?sslmode=verify-full"; empty uses the SQLite file at path. Prefer '
            "url_file or CONSENTGATE_STORE_URL when it holds a password.",
            secret=True,
        ),
    )
    password: str = field(
        default="",
        metadata=_spec(
            _as_str,
            "Password of the PostgreSQL role when the url has none; prefer password_file.",
            secret=True,
        ),
    )
    pool_size: int = field(
        default=10,
        metadata=_spec(
            _bounded_int(1, 1000), "Most PostgreSQL connections one gate process keeps open."
        ),
    )
    statement_timeout: float = field(
        default=5.0,
        metadata=_spec(
            parse_duration,
            "Longest one store operation may wait: a PostgreSQL statement runs (then it is "
            "cancelled) or a request waits for a pooled connection; SQLite's busy timeout, "
            "and the wait for its connection. Then the request fails closed with a 503.",
        ),
    )
    keep_expired: float = field(
        default=90 * 86400.0,
        metadata=_spec(
            parse_duration,
            "How long consent records are kept after they expired or were revoked.",
        ),
    )


@dataclass(frozen=True)
class KeysConfig:
    """Signing keys and the cookie secret."""

    dir: Path = field(
        default=Path("keys"),
        metadata=_spec(_file_path, "Directory of signing keys and the cookie secret (0700)."),
    )
    cookie_secret: str = field(
        default="",
        metadata=_spec(
            _optional_secret,
            "Secret for cookie MACs, at least 32 characters; empty uses the generated one in dir. "
            "Prefer cookie_secret_file.",
            secret=True,
        ),
    )


@dataclass(frozen=True)
class ConsentConfig:
    """When and how the gate asks."""

    mode: str = field(
        default="remember",
        metadata=_spec(
            _choice("remember", "always"),
            '"remember" lets a person approve a client once; "always" asks on every authorization.',
        ),
    )
    service_name: str = field(
        default="this service", metadata=_spec(_nonempty_str, "Name shown on the consent page.")
    )
    remember_for: float = field(
        default=30 * 86400.0,
        metadata=_spec(parse_duration, "How long a remembered approval lasts."),
    )
    pending_ttl: float = field(
        default=600.0, metadata=_spec(parse_duration, "How long a consent page stays answerable.")
    )
    binding_ttl: float = field(
        default=600.0,
        metadata=_spec(
            parse_duration, "How long an approved sign-in may take to come back from the IdP."
        ),
    )
    max_pending_per_browser: int = field(
        default=5,
        metadata=_spec(
            _positive_int,
            "Consent pages one browser may have open at once (the oldest page's cookie is "
            "dropped beyond, so it can no longer be answered).",
        ),
    )
    max_flows_per_browser: int = field(
        default=5, metadata=_spec(_positive_int, "Sign-ins one browser may have in flight at once.")
    )
    max_pending_per_address: int = field(
        default=50,
        metadata=_spec(
            _positive_int,
            "Ignored: consent pages carry their request sealed in the page, so the store "
            "keeps nothing per address to bound. Accepted so existing files still load.",
        ),
    )
    max_pending: int = field(
        default=10_000,
        metadata=_spec(
            _positive_int,
            "Ignored: consent pages carry their request sealed in the page, so there is no "
            "store budget for them to fill. Accepted so existing files still load.",
        ),
    )
    preapproved_redirect_uris: tuple[str, ...] = field(
        default=(),
        metadata=_spec(
            _uri_list, "Exact redirect URIs of first-party clients that never need consent."
        ),
    )
    allow_request_uri: bool = field(
        default=False,
        metadata=_spec(
            _as_bool, "Accept request_uri (PAR); such requests are always asked, never remembered."
        ),
    )
    allow_request_object: bool = field(
        default=False,
        metadata=_spec(
            _as_bool, "Accept request (JAR); such requests are always asked, never remembered."
        ),
    )
    show_logos: bool = field(
        default=False,
        metadata=_spec(
            _as_bool, "Load clients' self-declared logo_uri images on the consent page."
        ),
    )
    scope_descriptions: tuple[tuple[str, str], ...] = field(
        default=(),
        metadata=_spec(
            _str_map, "Table of scope = description shown on the consent page.", env=False
        ),
    )


@dataclass(frozen=True)
class AuditConfig:
    """The hash-chained audit table in the store."""

    keep: float = field(
        default=400 * 86400.0,
        metadata=_spec(
            parse_duration,
            "How long audit rows are kept; older rows are purged with a checkpoint row "
            "so that the rest of the chain still verifies.",
        ),
    )


@dataclass(frozen=True)
class LogConfig:
    """Logging output."""

    format: str = field(default="text", metadata=_spec(_choice("text", "json"), "text or json."))
    level: str = field(
        default="info",
        metadata=_spec(_choice("debug", "info", "warning", "error"), "Lowest level logged."),
    )
    access_log: bool = field(
        default=True,
        metadata=_spec(_as_bool, "One line per request on the consentgate.access logger."),
    )


@dataclass(frozen=True)
class AdminConfig:
    """The operators' listener: ``/metrics`` and the admin API (docs/admin-api.md).
    Never the public port; the API always needs the bearer token of ``token_file``."""

    listen: HostPort | None = field(
        default=None,
        metadata=_spec(
            _optional_listen,
            'Address of the admin listener (/metrics, /admin/...), "host:port"; empty: off. '
            "Keep it on loopback or a private network: it is never on the public port.",
        ),
    )
    token_file: Path | None = field(
        default=None,
        metadata=_spec(
            _optional_file_path,
            "File holding the admin API's bearer token (at least 32 characters, mode 0600); "
            "required when listen is set. Create one with: "
            "(umask 077; openssl rand -hex 32 > admin.token)",
        ),
    )
    metrics_need_token: bool = field(
        default=False,
        metadata=_spec(
            _as_bool,
            "Whether GET /metrics also needs the bearer token (false: a scraper needs none).",
        ),
    )


@dataclass(frozen=True)
class ClientsConfig:
    """Clients named by a URL (Client ID Metadata Documents, MCP 2025-11-25): whether and
    how the gate fetches their documents (docs/clients.md; the SSRF rules in
    docs/references.md)."""

    fetch_documents: bool = field(
        default=True,
        metadata=_spec(
            _as_bool,
            "Fetch the metadata document of a client whose client_id is an https URL; "
            "false refuses such clients.",
        ),
    )
    fetch_allow_networks: tuple[Network, ...] = field(
        default=(),
        metadata=_spec(
            _networks,
            'Networks a document fetch may reach besides public addresses, e.g. ["10.20.0.0/16"]; '
            "empty: public addresses only (no loopback, private or link-local address).",
        ),
    )
    fetch_ca_file: Path | None = field(
        default=None,
        metadata=_spec(
            _optional_file_path,
            "PEM file of CA certificates trusted for document hosts besides the system's; "
            "empty: the system's only.",
        ),
    )
    fetch_timeout: float = field(
        default=5.0,
        metadata=_spec(
            parse_duration,
            "Longest one document fetch may take, from name lookup to the last byte.",
        ),
    )
    fetch_min_ttl: float = field(
        default=60.0,
        metadata=_spec(
            parse_duration,
            "Shortest time a fetched document is kept, whatever its Cache-Control says "
            "(no-store, no-cache, max-age=0 included).",
        ),
    )
    fetch_max_ttl: float = field(
        default=86400.0,
        metadata=_spec(
            parse_duration,
            "Longest time a document is used before it is fetched (revalidated) again.",
        ),
    )
    fetch_default_ttl: float = field(
        default=3600.0,
        metadata=_spec(parse_duration, "How long a document without max-age or s-maxage is kept."),
    )
    fetch_failure_ttl: float = field(
        default=30.0,
        metadata=_spec(
            parse_duration,
            "How long a failed fetch is remembered: the same client_id is not fetched "
            "again before.",
        ),
    )
    fetch_cache_size: int = field(
        default=1000,
        metadata=_spec(
            _bounded_int(1, 1_000_000),
            "Most documents kept in memory (least recently used ones go first).",
        ),
    )
    fetch_per_host_per_minute: int = field(
        default=30,
        metadata=_spec(
            _bounded_int(1, 100_000),
            "Most fetches to one document host in any minute; beyond, a client_id on that "
            "host not already cached is refused for now.",
        ),
    )
    fetch_max_concurrent: int = field(
        default=16,
        metadata=_spec(
            _bounded_int(1, 10_000),
            "Most document fetches running at once; beyond, a new one is refused at once "
            "(the gate is busy).",
        ),
    )
    blocked_domains: tuple[DomainEntry, ...] = field(
        default=(),
        metadata=_spec(
            _domains,
            'Client hosts never fetched or accepted: "example.com" and its subdomains, '
            '"=example.com" that host only.',
        ),
    )
    allowed_domains: tuple[DomainEntry, ...] = field(
        default=(),
        metadata=_spec(
            _domains,
            "When not empty, the only client hosts fetched and accepted (same forms as "
            "blocked_domains, which wins).",
        ),
    )


@dataclass(frozen=True)
class Config:
    """The whole configuration. Build it with :func:`load_config` or :func:`config_from_mapping`."""

    server: ServerConfig
    upstream: UpstreamConfig
    store: StoreConfig = field(default_factory=StoreConfig)
    keys: KeysConfig = field(default_factory=KeysConfig)
    consent: ConsentConfig = field(default_factory=ConsentConfig)
    log: LogConfig = field(default_factory=LogConfig)
    audit: AuditConfig = field(default_factory=AuditConfig)
    admin: AdminConfig = field(default_factory=AdminConfig)
    clients: ClientsConfig = field(default_factory=ClientsConfig)

    @property
    def secure_cookies(self) -> bool:
        """``__Host-`` names and the Secure flag need an https origin."""
        return self.server.public_url.startswith("https://")


SECTIONS: Final[dict[str, type[Any]]] = {
    "server": ServerConfig,
    "upstream": UpstreamConfig,
    "store": StoreConfig,
    "keys": KeysConfig,
    "consent": ConsentConfig,
    "log": LogConfig,
    "audit": AuditConfig,
    "admin": AdminConfig,
    "clients": ClientsConfig,
}


#: Keys still accepted, so that files written for an earlier version keep loading
#: (an unknown key is an error), that no longer change anything: key -> why.
#: ``check-config`` warns once for each one a file or the environment sets.
IGNORED_KEYS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "consent.max_pending_per_address": (
            "consent pages carry their request sealed in the page and the store keeps "
            "nothing for them, so there is no per-address share to bound"
        ),
        "consent.max_pending": (
            "consent pages carry their request sealed in the page and the store keeps "
            "nothing for them, so there is no total to bound and no page is refused"
        ),
    }
)


def ignored_settings(data: Mapping[str, Any], environ: Mapping[str, str]) -> list[str]:
    """A warning for each key of :data:`IGNORED_KEYS` that the parsed file ``data`` or
    an environment variable sets, naming the key, the value and why it is ignored."""
    warnings: list[str] = []
    for path, why in IGNORED_KEYS.items():
        section, key = path.split(".")
        table = data.get(section)
        variable = f"{ENV_PREFIX}{section.upper()}_{key.upper()}"
        if isinstance(table, Mapping) and key in table:
            warnings.append(f"{path}: ignored (set to {table[key]!r}): {why}")
        if variable in environ:
            warnings.append(f"{variable}: ignored (set to {environ[variable]!r}): {why}")
    return warnings


def documented_keys() -> list[tuple[str, str, str]]:
    """(section, key, doc) for every configuration key, in declaration order."""
    return [
        (section, f.name, f.metadata["doc"])
        for section, cls in SECTIONS.items()
        for f in fields(cls)
    ]


# --- loading -------------------------------------------------------------------------


def _env_value(raw: str, example: Any) -> Any:
    """Turn an environment string into the TOML type the key expects."""
    if isinstance(example, str) or example is None:
        return raw
    if isinstance(example, tuple | list) and not raw.lstrip().startswith("["):
        return [item.strip() for item in raw.split(",") if item.strip()]
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw  # the field parser reports it, naming the variable


def _did_you_mean(name: str, known: Iterable[str]) -> str:
    """``; did you mean `listen`?`` for a near miss (a typo, another case), else ``""``."""
    candidates = {candidate.lower(): candidate for candidate in known}
    close = difflib.get_close_matches(name.lower(), candidates, n=1, cutoff=0.6)
    return f"; did you mean `{candidates[close[0]]}`?" if close else ""


def _env_overrides(
    environ: Mapping[str, str], problems: list[str]
) -> dict[str, dict[str, tuple[str, str]]]:
    """Map CONSENTGATE_<SECTION>_<KEY> variables to {section: {key: (variable, value)}}."""
    found: dict[str, dict[str, tuple[str, str]]] = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or name in ENV_RESERVED:
            continue
        rest = name[len(ENV_PREFIX) :].lower()
        section, _, key = rest.partition("_")
        cls = SECTIONS.get(section)
        names = {f.name: f for f in fields(cls)} if cls else {}
        base = key[: -len("_file")] if key.endswith("_file") else key
        target = names.get(key) or (names.get(base) if base != key else None)
        if cls is None or target is None or not target.metadata["env"]:
            problems.append(f"{name}: not a configuration key (got {value!r})")
            continue
        if key != target.name and not target.metadata["secret"]:
            problems.append(f"{name}: only secrets can be read from a file")
            continue
        found.setdefault(section, {})[key] = (name, value)
    return found


def _read_secret_file(path_text: str, where: str, ctx: _Context, problems: list[str]) -> str | None:
    path = Path(path_text).expanduser()
    if not path.is_absolute():
        path = ctx.base_dir / path
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        problems.append(f"{where}: cannot read {str(path)!r}: {exc.strerror or exc}")
        return None


def config_from_mapping(
    data: Mapping[str, Any],
    *,
    base_dir: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Validate a parsed TOML document (plus environment overrides) into a :class:`Config`.

    Raises :class:`ConfigError` listing every problem.
    """
    ctx = _Context(base_dir or Path.cwd())
    problems: list[str] = []
    env = _env_overrides(environ if environ is not None else os.environ, problems)
    for section in data:
        if section not in SECTIONS:
            problems.append(
                f"{section}: unknown section{_did_you_mean(section, SECTIONS)} "
                f"(got {data[section]!r:.60})"
            )
    built: dict[str, Any] = {}
    for section, cls in SECTIONS.items():
        table = data.get(section, {})
        if not isinstance(table, dict):
            problems.append(f"{section}: expected a table, got {table!r}")
            table = {}
        known = {f.name: f for f in fields(cls)}
        secret_files = {f"{name}_file" for name, f in known.items() if f.metadata["secret"]}
        for key in table:
            if key not in known and key not in secret_files:
                hint = _did_you_mean(key, [*known, *secret_files])
                problems.append(f"{section}.{key}: unknown key{hint} (got {table[key]!r:.60})")
        values: dict[str, Any] = {}
        for name, spec in known.items():
            where = f"{section}.{name}"
            raw: Any = table.get(name, MISSING)
            file_key = f"{name}_file"
            if spec.metadata["secret"] and file_key in table:
                if raw is not MISSING:
                    problems.append(f"{where}: set either {name} or {file_key}, not both")
                    continue
                file_value = table[file_key]
                if not isinstance(file_value, str):
                    problems.append(f"{section}.{file_key}: expected a path, got {file_value!r}")
                    continue
                raw = _read_secret_file(file_value, f"{section}.{file_key}", ctx, problems)
                if raw is None:
                    continue
            env_hit = env.get(section, {})
            if file_key in env_hit:
                variable, path_text = env_hit[file_key]
                raw = _read_secret_file(path_text, variable, ctx, problems)
                where = variable
                if raw is None:
                    continue
            elif name in env_hit:
                variable, text = env_hit[name]
                example = spec.default if spec.default is not MISSING else ""
                raw = _env_value(text, example)
                where = variable
            if raw is MISSING:
                if spec.default is MISSING and spec.default_factory is MISSING:
                    problems.append(f"{where}: required, not set")
                elif isinstance(spec.default, Path) and not spec.default.is_absolute():
                    values[name] = ctx.base_dir / spec.default  # relative to the file, too
                continue
            try:
                values[name] = spec.metadata["parse"](raw, ctx)
            except ValueError as exc:
                shown = str(exc) if not spec.metadata["secret"] else str(exc).split(", got")[0]
                problems.append(f"{where}: {shown}")
        with contextlib.suppress(TypeError):  # a required key is missing; already reported
            built[section] = cls(**values)
    if not problems:
        _cross_checks(built, problems)
    if problems:
        raise ConfigError(problems)
    return Config(**built)


def check_config(config: Config) -> list[str]:
    """The checks across keys (paths that must not overlap, ...) of an already built
    :class:`Config`: a reload runs them on the file's new values merged with the ones
    that wait for a restart (:mod:`consentgate.config.reload_rules`)."""
    problems: list[str] = []
    _cross_checks({section: getattr(config, section) for section in SECTIONS}, problems)
    return problems


def _cross_checks(built: dict[str, Any], problems: list[str]) -> None:
    server: ServerConfig = built["server"]
    upstream: UpstreamConfig = built["upstream"]
    gate_paths = {
        "upstream.authorize_path": upstream.authorize_path,
        "upstream.register_path": upstream.register_path,
        "upstream.callback_path": upstream.callback_path,
    }
    for key, path in gate_paths.items():
        if path == server.prefix or path.startswith(server.prefix + "/"):
            problems.append(f"{key}: {path!r} lies under server.prefix {server.prefix!r}")
    seen: dict[str, str] = {}
    for key, path in gate_paths.items():
        if path.rstrip("/").lower() in seen:
            problems.append(f"{key}: {path!r} is the same path as {seen[path.rstrip('/').lower()]}")
        seen[path.rstrip("/").lower()] = key
    for blocked in upstream.blocked_paths:
        for key, path in gate_paths.items():
            if path.lower() == blocked.lower() or path.lower().startswith(
                blocked.lower().rstrip("/") + "/"
            ):
                problems.append(f"upstream.blocked_paths: {blocked!r} would block {key} {path!r}")
    for direct in upstream.direct_paths:
        if direct == "/":
            problems.append(
                "upstream.direct_paths: '/' would send everything around the gate; "
                'name the data-plane prefixes, such as "/mcp"'
            )
            continue
        below = direct.lower().rstrip("/") + "/"
        for key, path in {**gate_paths, "server.prefix": server.prefix}.items():
            lowered = path.lower()
            if (
                lowered == direct.lower()
                or lowered.startswith(below)
                or direct.lower().startswith(lowered.rstrip("/") + "/")
            ):
                problems.append(
                    f"upstream.direct_paths: {direct!r} would send {key} {path!r} around the gate"
                )
    admin: AdminConfig | None = built.get("admin")
    if admin is not None and admin.listen is not None:
        if str(admin.listen) == str(server.listen):
            problems.append(f"admin.listen: {str(admin.listen)!r} is the public listener")
        if admin.token_file is None:
            problems.append(
                f"admin.token_file: required when admin.listen is set (listen is "
                f"{str(admin.listen)!r}): the admin API answers only a bearer token"
            )
        if server.workers > 1 and admin.listen.port == 0:
            problems.append(
                f"admin.listen: {server.workers} workers share one fixed admin port; "
                f"{str(admin.listen)!r} asks for any free port"
            )
    clients: ClientsConfig | None = built.get("clients")
    if clients is not None:
        _check_lifetimes(clients, problems)
    if server.workers > 1 and server.listen.port == 0:
        problems.append(
            f"server.workers: {server.workers} workers share one fixed port; "
            f"server.listen {str(server.listen)!r} asks for any free port"
        )
    if upstream.max_connections_per_address > upstream.max_connections:
        problems.append(
            f"upstream.max_connections_per_address: {upstream.max_connections_per_address} "
            f"is more than upstream.max_connections ({upstream.max_connections})"
        )
    if server.public_url == upstream.url:
        problems.append(
            f"upstream.url: {upstream.url!r} is the gate's own public_url; "
            "it must be the proxy behind it"
        )


def _check_lifetimes(clients: ClientsConfig, problems: list[str]) -> None:
    """A document's lifetime is clamped to [fetch_min_ttl, fetch_max_ttl]; a default
    outside it could never apply."""
    if clients.fetch_min_ttl > clients.fetch_default_ttl:
        problems.append(
            f"clients.fetch_min_ttl: {clients.fetch_min_ttl:g} s is longer than "
            f"clients.fetch_default_ttl {clients.fetch_default_ttl:g} s"
        )
    if clients.fetch_max_ttl < clients.fetch_default_ttl:
        problems.append(
            f"clients.fetch_max_ttl: {clients.fetch_max_ttl:g} s is shorter than "
            f"clients.fetch_default_ttl {clients.fetch_default_ttl:g} s"
        )


def load_config(path: str | os.PathLike[str], environ: Mapping[str, str] | None = None) -> Config:
    """Read and validate a TOML configuration file."""
    file_path = Path(path)
    try:
        text = file_path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            [f"{file_path}: cannot read the configuration: {exc.strerror or exc}"]
        ) from None
    except UnicodeDecodeError:
        raise ConfigError([f"{file_path}: the configuration is not UTF-8 text"]) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{file_path}: not valid TOML: {exc}"]) from None
    return config_from_mapping(data, base_dir=file_path.resolve().parent, environ=environ)
