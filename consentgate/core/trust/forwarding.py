"""Header rules for relaying a request upstream and a response back.

* Hop-by-hop headers (RFC 9110 §7.6.1) belong to one connection and are never
  forwarded, nor is any header named in ``Connection``. ``Transfer-Encoding`` is
  never forwarded: each side frames its own message.
* ``X-Forwarded-*``, ``Forwarded`` and ``X-Real-IP`` from a peer that is not a
  trusted proxy are replaced, not appended to: a client must not be able to
  choose the address the upstream believes (RFC 9700 §4.13, a reverse proxy
  sanitises the security-relevant headers it receives).
* The gate's own cookies never reach the upstream.
* Repeated headers (several ``Set-Cookie``) stay separate: headers are copied as
  multidicts, never through a dict.

Pure module: multidict only, no aiohttp import.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable
from typing import Final

from multidict import CIMultiDict, CIMultiDictProxy, MultiMapping

from consentgate.core.memo import remembered

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

HOP_BY_HOP: Final = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
#: Request headers the gate sets itself, dropped from untrusted peers.
FORWARDING_HEADERS: Final = frozenset(
    {
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-host",
        "x-forwarded-port",
        "x-forwarded-prefix",
        "x-real-ip",
        "forwarded",
    }
)
#: Headers some frameworks honour to route a request to another path or method than
#: its request line says: a harmless-looking path could then reach the upstream's
#: authorization endpoint unchecked. Never forwarded, whoever sent them (a front
#: proxy passes a client's copy through unchanged).
ROUTING_OVERRIDE_HEADERS: Final = frozenset(
    {
        "x-original-url",
        "x-rewrite-url",
        "x-http-method-override",
        "x-http-method",
        "x-method-override",
    }
)
#: Other headers that name the client, its scheme or the host, which some upstreams
#: believe: only a trusted proxy may send them.
CLIENT_IDENTITY_HEADERS: Final = frozenset(
    {
        "x-forwarded-scheme",
        "x-forwarded-ssl",
        "x-forwarded-server",
        "x-host",
        "true-client-ip",
        "x-client-ip",
        "cf-connecting-ip",
        "x-cluster-client-ip",
        "fastly-client-ip",
        "x-original-host",
    }
)
#: Request headers never forwarded, whoever sent them (the gate sets its own).
_ALWAYS_DROPPED: Final = HOP_BY_HOP | ROUTING_OVERRIDE_HEADERS | {"host", "expect", "x-request-id"}
_DROPPED_FROM_UNTRUSTED: Final = _ALWAYS_DROPPED | FORWARDING_HEADERS | CLIENT_IDENTITY_HEADERS
#: Longest text :func:`parse_ip` remembers (an IPv6 address with zone and
#: brackets fits); longer texts are parsed every time, so the cache stays small.
_CACHED_IP_TEXT: Final = 64


def connection_tokens(headers: MultiMapping[str]) -> frozenset[str]:
    """Header names listed in ``Connection`` (they are hop-by-hop for this hop)."""
    return frozenset(
        token.strip().lower()
        for value in headers.getall("Connection", ())
        for token in value.split(",")
        if token.strip()
    )


def parse_ip(text: str | None) -> IPAddress | None:
    """An IP address, with IPv4-mapped IPv6 addresses reduced to IPv4.

    Answers for short texts are remembered (a bounded LRU): the same few peer
    addresses come back on every request, and ``ipaddress`` parsing is slow.
    """
    if not text:
        return None
    return _parse_ip(text)


@remembered(_CACHED_IP_TEXT)
def _parse_ip(text: str) -> IPAddress | None:
    try:
        address = ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


@functools.lru_cache(maxsize=1024)
def _ip_text(address: IPAddress) -> str:
    """``str(address)``, remembered (addresses are immutable)."""
    return str(address)


@functools.lru_cache(maxsize=1024)
def address_group(client: str) -> str:
    """The network a per-address limit counts ``client`` in: an IPv4 address on its
    own, an IPv6 address by its /64 (one subscriber's prefix: a host can pick any of
    its 2**64 addresses at will). Text that is not an address counts as itself."""
    address = parse_ip(client)
    if address is None:
        return client[:64]
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return _ip_text(address)


def is_trusted(peer: IPAddress | None, trusted: Iterable[IPNetwork]) -> bool:
    """Whether ``peer`` lies in one of the trusted proxy networks."""
    if peer is None or not trusted:
        return False  # with none configured (the common case), no generator per call
    return any(peer.version == net.version and peer in net for net in trusted)


def client_address(
    peer: IPAddress | None, forwarded_for: str | None, trusted: tuple[IPNetwork, ...]
) -> str:
    """The client's address: walk X-Forwarded-For right to left past trusted proxies."""
    if peer is None:
        return "-"
    if not is_trusted(peer, trusted) or not forwarded_for:
        return _ip_text(peer)
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    for hop in reversed(hops):
        address = parse_ip(hop)
        if address is None:
            return hop[:64]
        if not is_trusted(address, trusted):
            return str(address)
    return hops[0][:64] if hops else str(peer)


def strip_cookies(header: str, is_own: Iterable[str]) -> str:
    """Remove the gate's cookies from a Cookie header, keeping the rest byte-exact."""
    prefixes = tuple(is_own)
    kept = [
        part
        for part in header.split(";")
        if part.strip() and not part.strip().split("=", 1)[0].startswith(prefixes)
    ]
    return ";".join(kept).strip()


def upstream_request_headers(
    headers: CIMultiDictProxy[str] | CIMultiDict[str],
    *,
    peer: IPAddress | None,
    trusted: tuple[IPNetwork, ...],
    scheme: str,
    host: str,
    public_host: str,
    request_id: str,
    own_cookie_prefixes: tuple[str, ...],
    preserve_host: bool,
) -> CIMultiDict[str]:
    """The headers to send upstream for a client request."""
    peer_trusted = is_trusted(peer, trusted)
    drop = _ALWAYS_DROPPED if peer_trusted else _DROPPED_FROM_UNTRUSTED
    if "Connection" in headers:
        drop = drop | connection_tokens(headers)
    # Built as a list and turned into a multidict once. Every header set after the
    # loop is absent from it (dropped or skipped there), so appending it is what
    # assigning it would do.
    kept: list[tuple[str, str]] = []
    for name, value in headers.items():
        lower = name.lower()
        if lower in drop:
            continue
        if lower == "x-forwarded-for":
            continue  # rebuilt below
        if lower == "cookie":
            cookies = strip_cookies(value, own_cookie_prefixes)
            if cookies:
                kept.append((name, cookies))
            continue
        kept.append((name, value))
    peer_text = _ip_text(peer) if peer is not None else ""
    prior = ", ".join(headers.getall("X-Forwarded-For", ())) if peer_trusted else ""
    if peer_text:
        kept.append(("X-Forwarded-For", f"{prior}, {peer_text}" if prior else peer_text))
    # A trusted proxy's own value is kept unless its Connection header named it (then
    # it was dropped above as hop-by-hop, and the gate's value takes its place).
    if not (peer_trusted and "X-Forwarded-Proto" in headers and "x-forwarded-proto" not in drop):
        kept.append(("X-Forwarded-Proto", scheme))
    if not (peer_trusted and "X-Forwarded-Host" in headers and "x-forwarded-host" not in drop):
        # The public URL's host, never the client's own Host header: an upstream that
        # builds absolute URLs from it would otherwise emit attacker-chosen hosts.
        kept.append(("X-Forwarded-Host", public_host))
    kept.append(("X-Request-Id", request_id))
    if preserve_host:
        kept.append(("Host", host))
    return CIMultiDict(kept)


def downstream_response_headers(
    headers: CIMultiDictProxy[str] | CIMultiDict[str],
    *,
    upstream_origin: str,
    public_origin: str,
) -> CIMultiDict[str]:
    """The headers to send back to the client for an upstream response.

    A ``Location`` that names the upstream's own origin (a trailing-slash redirect
    built from the Host header, say) is rewritten to the public origin, so the
    browser never leaves the gate for the unguarded upstream.
    """
    drop = HOP_BY_HOP | connection_tokens(headers) if "Connection" in headers else HOP_BY_HOP
    kept: list[tuple[str, str]] = []
    for name, value in headers.items():
        lower = name.lower()
        if lower in drop:
            continue
        if lower == "location":
            kept.append((name, rewrite_location(value, upstream_origin, public_origin)))
        else:
            kept.append((name, value))
    return CIMultiDict(kept)


_DEFAULT_PORTS: Final = {"http": "80", "https": "443"}


@functools.lru_cache(maxsize=64)
def origin_spellings(origin: str) -> tuple[str, ...]:
    """``origin`` as a Location may name it: with and without its scheme's default port,
    which are the same origin (RFC 3986 §6.2.3). The upstream builds its redirects from
    the ``Host`` the pool sends (no default port) while ``upstream.url`` may spell it."""
    scheme, sep, authority = origin.partition("://")
    default = _DEFAULT_PORTS.get(scheme.lower())
    if not sep or default is None:
        return (origin,)
    host_end = authority.rfind("]") + 1  # past an IPv6 literal's bracket, else 0
    if authority.endswith(":" + default) and ":" in authority[host_end:]:
        return (origin, origin[: -len(default) - 1])
    if ":" not in authority[host_end:]:
        return (origin, f"{origin}:{default}")
    return (origin,)


def rewrite_location(location: str, upstream_origin: str, public_origin: str) -> str:
    """Replace the upstream origin at the start of a Location with the public one,
    however its default port is spelled; a Location naming the upstream must never
    send the browser around the gate."""
    lowered = location.lower()
    for spelling in origin_spellings(upstream_origin):
        if lowered.startswith(spelling.lower()):
            rest = location[len(spelling) :]
            if rest == "" or rest[0] in "/?#":
                return public_origin + rest
    return location
