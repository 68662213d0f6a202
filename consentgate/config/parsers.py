"""The value parsers of the configuration keys: strings, numbers, durations, paths,
addresses, origins, networks, URIs, choices.

Each takes the raw TOML (or environment) value and returns the typed value, or raises
``ValueError`` with a message that completes ``"<key path>: ..."`` and quotes the bad
value; the loader (:mod:`consentgate.config.loading`) adds the key path. A secret's
message is cut before its ``", got"`` so that the value is never shown.

The ``[clients]`` fetch allow list and domain entries are read by the client rules'
own parsers (``clients.fetch_addresses.parse_networks``,
``clients.domain_policy.parse_domain_entries``), so each rule is written once: the
one import of this package from a layer above it, allowed by name in the layers
contract (both modules are pure, by their own contract).
"""

from __future__ import annotations

import ipaddress
import math
import re
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, get_args

from consentgate.clients.domain_policy import DomainEntry, parse_domain_entries
from consentgate.clients.fetch_addresses import Network, parse_networks
from consentgate.config.dsn import check_database_url
from consentgate.config.keyspec import ParseContext, Parser

__all__ = [
    "Choice",
    "DomainEntry",
    "HostPort",
    "Network",
    "bounded_int",
    "parse_accent_color",
    "parse_bool",
    "parse_cidr_list",
    "parse_database_url",
    "parse_domains",
    "parse_duration",
    "parse_fetch_networks",
    "parse_file_path",
    "parse_host_name",
    "parse_language",
    "parse_languages",
    "parse_listen",
    "parse_non_negative_int",
    "parse_nonempty_str",
    "parse_optional_file_path",
    "parse_optional_listen",
    "parse_optional_secret",
    "parse_origin",
    "parse_path_list",
    "parse_positive_int",
    "parse_prefix",
    "parse_scope_list",
    "parse_str",
    "parse_str_map",
    "parse_support_url",
    "parse_uri_list",
    "parse_url_path",
]


def _fmt(value: Any) -> str:
    return repr(value)


def parse_str(value: Any, _: ParseContext) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {_fmt(value)}")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise ValueError(f"control characters are not allowed, got {_fmt(value)}")
    return value


def parse_nonempty_str(value: Any, ctx: ParseContext) -> str:
    text = parse_str(value, ctx)
    if not text.strip():
        raise ValueError(f"must not be empty, got {_fmt(value)}")
    return text


def parse_bool(value: Any, _: ParseContext) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {_fmt(value)}")
    return value


def parse_positive_number(value: Any, _: ParseContext) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"expected a number of seconds, got {_fmt(value)}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"must be a positive number, got {_fmt(value)}")
    return float(value)


def parse_positive_int(value: Any, _: ParseContext) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"expected a whole number, got {_fmt(value)}")
    if value <= 0:
        raise ValueError(f"must be a positive whole number, got {_fmt(value)}")
    return value


def parse_non_negative_int(value: Any, _: ParseContext) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"expected a whole number, got {_fmt(value)}")
    if value < 0:
        raise ValueError(f"must be 0 or more, got {_fmt(value)}")
    return value


_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*$")
_DURATION_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


def parse_duration(value: Any, ctx: ParseContext | None = None) -> float:
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
    return parse_positive_number(value, ctx or ParseContext(Path.cwd()))


class Choice:
    """The parser of a field typed ``Literal[...]``: the value must be one of the
    Literal's arguments (``typing.get_args``), so the choices are written once, in the
    type, and mypy checks every comparison with them."""

    def __init__(self, choices: Any) -> None:
        options = get_args(choices)
        if not options or not all(isinstance(option, str) for option in options):
            raise TypeError(f"a choice needs a Literal of strings, got {choices!r}")
        self.options: tuple[str, ...] = options

    def __call__(self, value: Any, ctx: ParseContext) -> str:
        text = parse_str(value, ctx)
        if text not in self.options:
            listed = ", ".join(f'"{o}"' for o in self.options)
            raise ValueError(f"expected one of {listed}, got {_fmt(value)}")
        return text


def parse_url_path(value: Any, ctx: ParseContext) -> str:
    """An absolute path as the upstream routes it: starts with '/', no query, no fragment."""
    text = parse_str(value, ctx)
    if not text.startswith("/") or text.startswith("//"):
        raise ValueError(f"expected an absolute path starting with one '/', got {_fmt(value)}")
    if any(c in text for c in "?#%\\ ") or "/./" in text or "/../" in text:
        raise ValueError(
            f"expected a plain path without query, fragment, escapes or dot segments, "
            f"got {_fmt(value)}"
        )
    return text


def parse_prefix(value: Any, ctx: ParseContext) -> str:
    text = parse_url_path(value, ctx)
    if text == "/" or text.endswith("/"):
        raise ValueError(
            f'expected a path such as "/_consentgate" without a trailing slash, got {_fmt(value)}'
        )
    return text


def parse_path_list(value: Any, ctx: ParseContext) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ValueError(f"expected a list of paths, got {_fmt(value)}")
    return tuple(parse_url_path(item, ctx) for item in value)


@dataclass(frozen=True)
class HostPort:
    """A listen address. ``host`` is a name or an IP literal without brackets."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_listen(value: Any, ctx: ParseContext) -> HostPort:
    text = parse_str(value, ctx)
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


def parse_optional_listen(value: Any, ctx: ParseContext) -> HostPort | None:
    """``host:port``, or ``""`` for off."""
    return None if parse_str(value, ctx) == "" else parse_listen(value, ctx)


def parse_origin(value: Any, ctx: ParseContext) -> str:
    """An http(s) origin (scheme, host, optional port) with nothing after it."""
    text = parse_str(value, ctx).rstrip("/")
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


def parse_cidr_list(
    value: Any, ctx: ParseContext
) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    if not isinstance(value, list):
        raise ValueError(f'expected a list of CIDRs such as ["10.0.0.0/8"], got {_fmt(value)}')
    networks = []
    for item in value:
        text = parse_str(item, ctx)
        try:
            networks.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            raise ValueError(f"not an IP network (CIDR), got {_fmt(item)}") from None
    return tuple(networks)


def parse_file_path(value: Any, ctx: ParseContext) -> Path:
    text = parse_nonempty_str(value, ctx)
    path = Path(text).expanduser()
    return path if path.is_absolute() else (ctx.base_dir / path)


_CONTROL_OR_SPACE = re.compile(r"[\x00-\x20\x7f]")


def _absolute_uri(text: str) -> str:
    parts = urllib.parse.urlsplit(text)
    if not parts.scheme or _CONTROL_OR_SPACE.search(text) or parts.fragment:
        raise ValueError(f"expected an absolute URI without fragment, got {_fmt(text)}")
    return text


def parse_uri_list(value: Any, ctx: ParseContext) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ValueError(f"expected a list of exact redirect URIs, got {_fmt(value)}")
    return tuple(_absolute_uri(parse_str(item, ctx)) for item in value)


def parse_str_map(value: Any, ctx: ParseContext) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, dict):
        raise ValueError(f"expected a table of strings, got {_fmt(value)}")
    items = []
    for key, text in value.items():
        if not isinstance(text, str):
            raise ValueError(f"expected a string for {key!r}, got {_fmt(text)}")
        items.append((str(key), parse_str(text, ctx)))
    return tuple(items)


#: A DNS name in ASCII (punycode for internationalised names), as a browser shows it.
_HOST_NAME: Final = re.compile(
    r"(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*"
)
#: RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ).
_SCOPE_TOKEN: Final = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]{1,200}")


def parse_host_name(value: Any, ctx: ParseContext) -> str:
    """A host name such as ``accounts.google.com`` (lower case ASCII), or ``""``."""
    text = parse_str(value, ctx).strip().lower().rstrip(".")
    if text and not _HOST_NAME.fullmatch(text):
        raise ValueError(
            f"expected a host name such as accounts.google.com (no scheme, port or path), "
            f"got {_fmt(value)}"
        )
    return text


def parse_scope_list(value: Any, ctx: ParseContext) -> tuple[str, ...]:
    """A list of OAuth scope tokens (RFC 6749 §3.3), each once."""
    if not isinstance(value, list):
        raise ValueError(f"expected a list of scope strings, got {_fmt(value)}")
    scopes: list[str] = []
    for item in value:
        if not isinstance(item, str) or not _SCOPE_TOKEN.fullmatch(item):
            raise ValueError(
                f"expected scope tokens without spaces or quotes (RFC 6749 §3.3), got {_fmt(item)}"
            )
        if item not in scopes:
            scopes.append(item)
    return tuple(scopes)


def parse_optional_file_path(value: Any, ctx: ParseContext) -> Path | None:
    """A file path, or ``""`` for none."""
    return None if parse_str(value, ctx) == "" else parse_file_path(value, ctx)


def parse_optional_secret(value: Any, ctx: ParseContext) -> str:
    text = parse_str(value, ctx)
    if text and len(text) < 32:
        raise ValueError("must be at least 32 characters (the value is not shown)")
    return text


def parse_database_url(value: Any, ctx: ParseContext) -> str:
    """Empty (the SQLite file) or a PostgreSQL URL; errors show it with the password masked."""
    text = parse_str(value, ctx).strip()
    if text:
        check_database_url(text)
    return text


def bounded_int(low: int, high: int) -> Parser:
    def parse(value: Any, ctx: ParseContext) -> int:
        number = parse_positive_int(value, ctx)
        if not low <= number <= high:
            raise ValueError(f"must be between {low} and {high}, got {_fmt(value)}")
        return number

    return parse


def parse_fetch_networks(value: Any, _: ParseContext) -> tuple[Network, ...]:
    """The fetch allow list, read by the SSRF rules' own parser (``clients.fetch_addresses``)."""
    return parse_networks(value)


def parse_domains(value: Any, _: ParseContext) -> tuple[DomainEntry, ...]:
    """Blocked or allowed client hosts, read by ``clients.domain_policy``'s own parser."""
    return parse_domain_entries(value)


#: ``#rgb`` or ``#rrggbb`` and nothing else: the value is written into a CSS file, so a
#: looser grammar (names, functions, ``;``) would let a configuration value write CSS.
_ACCENT_COLOR = re.compile(r"#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})")


def parse_accent_color(value: Any, ctx: ParseContext) -> str:
    """``""`` (the shipped colours) or a hex colour, ``#rgb`` or ``#rrggbb``."""
    text = parse_str(value, ctx)
    if text and _ACCENT_COLOR.fullmatch(text) is None:
        raise ValueError(f'expected a hex colour such as "#1d4ed8" or "#15c", got {_fmt(value)}')
    return text.lower()


_MAILBOX = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9.-]+")


def parse_support_url(value: Any, ctx: ParseContext) -> str:
    """``""``, an ``https://`` URL with a host, or ``mailto:`` one address: a link people
    follow from an error page, so no other scheme (``javascript:``, ``http:``)."""
    text = parse_str(value, ctx).strip()
    if not text:
        return ""
    bad = ValueError(f'expected an https:// URL or "mailto:" and one address, got {_fmt(value)}')
    if _CONTROL_OR_SPACE.search(text):
        raise bad
    if text.lower().startswith("mailto:"):
        if _MAILBOX.fullmatch(text[len("mailto:") :]) is None:
            raise bad
        return text
    parts = urllib.parse.urlsplit(text)
    if parts.scheme.lower() != "https" or not parts.hostname or parts.username is not None:
        raise bad
    return text


#: The languages whose catalogs ship in ``consentgate/locales`` (a test compares the
#: two), as BCP 47 primary subtags; ``[ui] languages`` chooses among them.
SHIPPED_LANGUAGES: Final = ("en", "de", "fr", "es", "ja", "ar")


def parse_language(value: Any, ctx: ParseContext) -> str:
    """One shipped language, by its BCP 47 tag (``"de"``; case does not matter)."""
    text = parse_str(value, ctx).strip().lower()
    if text not in SHIPPED_LANGUAGES:
        listed = ", ".join(f'"{code}"' for code in SHIPPED_LANGUAGES)
        raise ValueError(f"expected one of the shipped languages {listed}, got {_fmt(value)}")
    return text


def parse_languages(value: Any, ctx: ParseContext) -> tuple[str, ...]:
    """A non-empty list of shipped languages, each once, in the operator's order."""
    if not isinstance(value, list) or not value:
        raise ValueError(f"expected a non-empty list of language tags, got {_fmt(value)}")
    chosen: list[str] = []
    for item in value:
        language = parse_language(item, ctx)
        if language not in chosen:
            chosen.append(language)
    return tuple(chosen)
