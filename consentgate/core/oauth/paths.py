"""Which of the gate's rules a request path falls under, decided once.

A gate that checks one spelling of a path while the upstream routes another is
bypassed: HTTP client libraries remove dot segments, routers decode ``%61`` to
``a``, some decode ``%2F`` to ``/``, collapse ``//``, ignore a trailing slash,
strip ``;params`` or compare case-insensitively. So every path is compared in its
*loosest* reading, the one the most forgiving upstream could route:

1. percent-decode repeatedly (``%252F`` -> ``%2F`` -> ``/``), treat ``\\`` as ``/``;
2. drop ``;params`` from each segment, collapse repeated slashes;
3. remove dot segments (RFC 3986 §5.2.4), lowercase, drop a trailing slash.

If the loose reading of a path is one of the gate's sensitive paths (authorize,
callback, register, a blocked path, the gate's own prefix), then:

* when the *benign* reading (only unreserved characters decoded, RFC 3986 §6.2.2;
  dot segments removed; repeated and trailing slashes and letter case ignored) is
  the same path, the request is handled by that rule and forwarded upstream with
  the configured spelling of the path, never the client's;
* otherwise (an encoded ``/``, ``\\``, ``;``, a double encoding, a NUL...) the path
  is ambiguous and refused with 400, so it is neither checked nor relayed.

A path that begins with two slashes, in any spelling (``//x``, ``/\\x``, ``/%2Fx``,
``/./%2Fx``...), is refused before any of that: RFC 3986 §4.2 makes ``//x/authorize``
a network-path reference whose authority is ``x``, so an upstream that parses its
request target as a URL reference (Node's ``new URL(req.url, base)``, ``urlsplit``,
yarl) routes ``/authorize`` while a collapsing router routes ``/x/authorize``. The
WHATWG URL parser also reads ``\\`` as ``/`` and any run of slashes after an
``http:`` base as the start of a host. No spelling of such a path means one thing
to every parser, so it is refused (fail closed) rather than guessed.

Every other path cannot reach a sensitive route under any reading, and is relayed
byte-exact, percent-encoding preserved.

Pure module: no aiohttp import.
"""

from __future__ import annotations

import enum
import functools
import re
import unicodedata
import urllib.parse
from dataclasses import dataclass
from typing import Final

_PERCENT = re.compile(r"%([0-9A-Fa-f]{2})")
_UNRESERVED: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_MAX_DECODE_ROUNDS: Final = 4
#: Decisions remembered per :class:`PathRules` (a bounded LRU), for raw paths up to
#: this many characters: at most about 2 MB of keys, whatever clients send.
_CACHE_ENTRIES: Final = 4096
_CACHED_PATH_LENGTH: Final = 512


class Route(enum.Enum):
    """The rule a path falls under."""

    RELAY = "relay"
    AUTHORIZE = "authorize"
    CALLBACK = "callback"
    REGISTER = "register"
    BLOCKED = "blocked"
    GATE = "gate"
    AMBIGUOUS = "ambiguous"


@dataclass(frozen=True)
class RoutedPath:
    """The decision for one request path.

    ``forward_path`` is the exact path (without query) to send upstream: the
    client's bytes for ``RELAY``, the configured spelling for the gate's routes.
    """

    route: Route
    forward_path: str


def remove_dot_segments(path: str) -> str:
    """RFC 3986 §5.2.4, for a path that starts with '/'."""
    output: list[str] = []
    segments = path.split("/")[1:]
    for i, segment in enumerate(segments):
        last = i == len(segments) - 1
        if segment == ".":
            if last:
                output.append("")
        elif segment == "..":
            if output:
                output.pop()
            if last:
                output.append("")
        else:
            output.append(segment)
    return "/" + "/".join(output)


def _decode_unreserved(path: str) -> str:
    """Decode only escapes of unreserved characters; uppercase the rest (§6.2.2)."""

    def repl(match: re.Match[str]) -> str:
        char = chr(int(match.group(1), 16))
        return char if char in _UNRESERVED else "%" + match.group(1).upper()

    return _PERCENT.sub(repl, path)


def _decode_all(path: str) -> str:
    """Decode every escape, repeatedly, as the most forgiving router might."""
    for _ in range(_MAX_DECODE_ROUNDS):
        decoded = _PERCENT.sub(lambda m: chr(int(m.group(1), 16)), path)
        if decoded == path:
            break
        path = decoded
    return path


def _squash(path: str) -> str:
    path = re.sub(r"/{2,}", "/", path)
    path = remove_dot_segments(path)
    path = path.lower()
    if len(path) > 1:
        path = path.rstrip("/") or "/"
    return path


#: Overlong UTF-8 encodings of '/' and '.' as ``_decode_all`` leaves them (one
#: character per byte): broken decoders read them as the ASCII character.
_OVERLONG: Final = (
    ("\udcc0\udcaf", "/"),
    ("\udce0\udc80\udcaf", "/"),
    ("\udcc0\udcae", "."),
)


def _decode_all_utf8(path: str) -> str:
    """Every escape decoded as UTF-8, repeatedly; bytes that are not UTF-8 (such as an
    overlong slash) stay as surrogate escapes, so they can be recognised."""
    for _ in range(_MAX_DECODE_ROUNDS):
        decoded = urllib.parse.unquote(path, encoding="utf-8", errors="surrogateescape")
        if decoded == path:
            break
        path = decoded
    return path


def _loose_segment(segment: str) -> str:
    """A segment as lenient routers match it: ``;params`` dropped, trailing dots and
    spaces trimmed (Windows, IIS), a ``.suffix`` ignored (Spring's suffix matching,
    ``/authorize.json``)."""
    segment = segment.split(";", 1)[0]
    if segment in ("", ".", ".."):
        return segment
    segment = segment.rstrip(". \t")
    dot = segment.find(".", 1)
    return segment[:dot] if dot > 0 else segment


def _decoded(path: str) -> str:
    """Every escape decoded (as UTF-8, repeatedly), overlong slashes and dots as ASCII,
    compatibility characters folded (NFKC) and ``\\`` read as ``/``."""
    path = _decode_all_utf8(path)
    for overlong, plain in _OVERLONG:
        path = path.replace(overlong, plain)
    return unicodedata.normalize("NFKC", path).replace("\\", "/")


#: What the WHATWG URL parser removes from anywhere in its input before parsing.
_URL_IGNORED: Final = re.compile(r"[\t\n\r]")


def names_an_authority(path: str) -> bool:
    """Whether some URL parser reads ``path`` as ``//host/...`` (RFC 3986 §4.2): two
    slashes at its start, in any spelling, before or after dot segments are removed."""
    # Nothing to decode in plain ASCII (NFKC keeps ASCII as it is): the usual path.
    plain = path.isascii() and "%" not in path and "\\" not in path
    decoded = _URL_IGNORED.sub("", path if plain else _decoded(path))
    if decoded.startswith("//"):
        return True
    return "/." in decoded and remove_dot_segments(decoded).startswith("//")


def loose_form(path: str) -> str:
    """The loosest reading of ``path`` any upstream router might apply.

    Besides decoding, a decoded ``?`` or ``#`` ends the path (a hop that decodes
    and re-splits reads ``/authorize%3Fx`` as ``/authorize``), full-width and other
    compatibility characters are folded (NFKC: U+FF0F is ``/``), and overlong
    UTF-8 slashes count as slashes.
    """
    path = re.split(r"[?#]", _decoded(path), maxsplit=1)[0] or "/"
    segments = path.split("/")
    path = "/".join(_loose_segment(segment) for segment in segments)
    return _squash(path)


def benign_form(path: str) -> str:
    """The reading that only undoes spelling differences RFC 3986 calls equivalent,
    plus slashes, dot segments and case that common routers ignore."""
    return _squash(_decode_unreserved(path))


class PathRules:
    """Classifies request paths for one configuration.

    ``exact`` maps a configured path to its route; ``subtree`` maps a path
    prefix whose whole subtree belongs to a route (blocked paths, the gate's prefix).
    """

    def __init__(self, exact: dict[str, Route], subtree: dict[str, Route]) -> None:
        self._exact = {_squash(path): (route, path) for path, route in exact.items()}
        self._subtree = [(_squash(path), route, path) for path, route in subtree.items()]
        # The decision depends only on the raw path and the (immutable) rules, and
        # RoutedPath is frozen, so a remembered decision is the decision.
        self._cached = functools.lru_cache(maxsize=_CACHE_ENTRIES)(self._classify)

    def _match(self, loose: str) -> tuple[Route, str] | None:
        hit = self._exact.get(loose)
        if hit is not None:
            return hit
        for base, route, configured in self._subtree:
            if loose == base or loose.startswith(base + "/") or base == "/":
                return route, configured
        return None

    def classify(self, raw_path: str) -> RoutedPath:
        """Decide the rule for a raw request path (the bytes before '?')."""
        if len(raw_path) <= _CACHED_PATH_LENGTH:
            return self._cached(raw_path)
        return self._classify(raw_path)

    def _classify(self, raw_path: str) -> RoutedPath:
        if not raw_path.startswith("/") or "#" in raw_path or names_an_authority(raw_path):
            return RoutedPath(Route.AMBIGUOUS, raw_path)
        loose_hit = self._match(loose_form(raw_path))
        if loose_hit is None:
            if any(ord(c) < 0x20 or ord(c) == 0x7F for c in _decode_all(raw_path)):
                return RoutedPath(Route.AMBIGUOUS, raw_path)
            return RoutedPath(Route.RELAY, raw_path)
        route, configured = loose_hit
        if route in (Route.BLOCKED, Route.GATE):
            # Never relayed, whatever the spelling.
            return RoutedPath(route, raw_path)
        if self._match(benign_form(raw_path)) != loose_hit or ";" in raw_path:
            return RoutedPath(Route.AMBIGUOUS, raw_path)
        return RoutedPath(route, configured)
