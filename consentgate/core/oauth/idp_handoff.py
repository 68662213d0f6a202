"""What the upstream's hand-off to its identity provider says: the IdP's host and the
third-party scopes it asks for.

The gate relays the upstream's answer to every approved authorization request; for a
single-client OAuth proxy that answer is a redirect to the IdP's own authorization
endpoint (RFC 6749 §4.1.1), carrying the ``scope`` the proxy asks the IdP for. The
consent page uses it to say where the person signs in next and which third-party
scopes that sign-in requests (MCP security best practices: the consent UI MUST
display the specific third-party API scopes being requested; docs/references.md).

Only the upstream's answer is read, never the client's request, and only a Location
that reads as an authorization request to another site: it names a ``redirect_uri``
(the caller has checked it is the gate's callback, ``upstream_endpoints.
callback_mismatch``), one ``state`` and a ``response_type``, carries no ``error``,
and is not on the origin of the client's own redirect URI (an upstream sending an
error back to the client would otherwise teach the gate the client's host). What is
learned is kept per upstream, in memory (:class:`IdpMemory`); ``[consent] idp_host``
and ``[consent] upstream_scopes`` state it instead (docs/consent-decisions.md).

Pure module: no aiohttp import, no I/O.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from consentgate.core.memo import remembered
from consentgate.core.trust.bidi import has_bidi_controls
from consentgate.core.trust.urls import (
    BadURL,
    browser_host,
    query_pairs,
    split_authority,
    split_url,
)

#: At most this many scopes are kept from one hand-off, each at most this long: the
#: page lists them, and an upstream is not a reason to render a megabyte.
MAX_SCOPES: Final = 32
MAX_SCOPE_LENGTH: Final = 200
#: The longest redirect URI or scope value whose reading is remembered (core/memo.py).
MAX_ORIGIN_TEXT: Final = 512
#: The upstreams remembered at once (one in practice; a reload may change it).
MAX_UPSTREAMS: Final = 8
#: RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ).
_SCOPE_TOKEN: Final = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")


@dataclass(frozen=True)
class IdpHandoff:
    """The IdP's host as the browser reads it, and the scopes the upstream asks it for."""

    host: str
    scopes: tuple[str, ...]


@remembered(MAX_ORIGIN_TEXT)
def _origin(url: str) -> str | None:
    """``scheme://host:port`` as the browser reads it, or None (not a web URL).
    Remembered: it is asked of the client's redirect URI on every relayed sign-in."""
    try:
        return _origin_of(split_url(url))
    except BadURL:
        return None


def _origin_of(parts: urllib.parse.SplitResult) -> str | None:
    """:func:`_origin` of a URL already split."""
    try:
        _, spelled, port = split_authority(parts.netloc)
        return f"{parts.scheme.lower()}://{browser_host(spelled)}:{port}"
    except BadURL:
        return None


@remembered(MAX_ORIGIN_TEXT)
def scope_tokens(value: str) -> tuple[str, ...]:
    """The scope tokens of a ``scope`` value (RFC 6749 §3.3), in order, without
    repeats; anything that is not a scope token is dropped, and so is the rest past
    :data:`MAX_SCOPES`. Remembered: an upstream asks its IdP for the same scopes on
    every sign-in."""
    tokens: list[str] = []
    for token in value.split(" "):
        if (
            token
            and len(token) <= MAX_SCOPE_LENGTH
            and _SCOPE_TOKEN.fullmatch(token)
            and token not in tokens
        ):
            tokens.append(token)
    return tuple(tokens[:MAX_SCOPES])


def read_handoff(location: str, *, client_redirect_uri: str) -> IdpHandoff | None:
    """What an absolute ``location`` the upstream answered with says about its IdP, or
    None when it does not read as an authorization request to another site (module
    docstring): then nothing is learned."""
    try:
        parts = split_url(location)
        pairs = query_pairs(parts.query)
    except (BadURL, ValueError):
        return None
    return read_split_handoff(location, parts, pairs, client_redirect_uri=client_redirect_uri)


def read_split_handoff(
    location: str,
    parts: urllib.parse.SplitResult,
    pairs: Sequence[tuple[str, str]],
    *,
    client_redirect_uri: str,
) -> IdpHandoff | None:
    """:func:`read_handoff` of a ``location`` the caller has split already (``parts``,
    its ``split_url``) and whose query it has parsed (``pairs``, its ``parse_qsl``
    with blank values kept): the gate's hot path reads the same Location for its
    flow binding, and parses it once."""
    if has_bidi_controls(location):
        return None
    try:
        if parts.scheme.lower() not in ("http", "https"):
            return None
        host = browser_host(split_authority(parts.netloc)[1])
    except (BadURL, ValueError):
        return None
    names = [name for name, _ in pairs]
    if (
        not host
        or names.count("state") != 1
        or "response_type" not in names
        or "redirect_uri" not in names
        or "error" in names
    ):
        return None
    if client_redirect_uri and _origin(client_redirect_uri) == _origin_of(parts):
        return None
    scope = " ".join(value for name, value in pairs if name == "scope")
    return IdpHandoff(host, scope_tokens(scope))


def handoff_key(
    parts: urllib.parse.SplitResult,
    pairs: Sequence[tuple[str, str]],
    client_redirect_uri: str,
) -> tuple[str, ...]:
    """Everything :func:`read_split_handoff`'s answer depends on, except whether the
    Location reads as a hand-off at all: the scheme and authority (the IdP's host,
    its origin), the client's redirect URI (compared with that origin) and the
    ``scope`` values. Two hand-offs with the same key read as the same
    :class:`IdpHandoff`, or one of them as nothing (its ``state``, its bidi controls,
    an ``error``): :meth:`IdpMemory.learn_from` reads only a key it has not learned."""
    return (
        parts.scheme,
        parts.netloc,
        client_redirect_uri,
        *(value for name, value in pairs if name == "scope"),
    )


class IdpMemory:
    """The last hand-off seen per upstream URL, in this process's memory.

    The latest wins: an upstream whose IdP or scopes change is shown as it is now.
    Bounded by :data:`MAX_UPSTREAMS` (the oldest entry goes first)."""

    __slots__ = ("_keys", "_seen")

    def __init__(self) -> None:
        self._seen: dict[str, IdpHandoff] = {}
        #: The :func:`handoff_key` of what is known of each upstream, when it was
        #: learned through :meth:`learn_from`.
        self._keys: dict[str, tuple[str, ...]] = {}

    def learn(self, upstream: str, handoff: IdpHandoff) -> None:
        self._keys.pop(upstream, None)
        self._seen.pop(upstream, None)
        self._seen[upstream] = handoff
        while len(self._seen) > MAX_UPSTREAMS:
            oldest = next(iter(self._seen))
            del self._seen[oldest]
            self._keys.pop(oldest, None)

    def learn_from(
        self, upstream: str, key: tuple[str, ...], read: Callable[[], IdpHandoff | None]
    ) -> None:
        """:meth:`learn` what ``read`` answers, unless it is None, or unless ``key``
        is the key of what is known of ``upstream`` already: then the answer could only
        be what is known, or nothing, and what is known stays (the latest still)."""
        if upstream in self._seen and self._keys.get(upstream) == key:
            self._seen[upstream] = self._seen.pop(upstream)
            return
        learned = read()
        if learned is not None:
            self.learn(upstream, learned)
            self._keys[upstream] = key

    def known(self, upstream: str) -> IdpHandoff | None:
        return self._seen.get(upstream)
