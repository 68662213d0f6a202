"""Which client_ids are URLs, and whether a URL is one a client may be named by.

The MCP authorization specification (2025-11-25, "Client ID Metadata Documents",
after draft-ietf-oauth-client-id-metadata-document §3) says a URL client_id uses the
``https`` scheme, has a path, and has no fragment, no user name or password and no
``.`` or ``..`` path segments; it may have a port and (discouraged) a query. The
authorization server compares it with the document's ``client_id`` as a plain
string (RFC 3986 §6.2.1), so the exact text is the client's identity.

Choices beyond the letter of those rules, each failing closed:

* The scheme must be written ``https://``, in lowercase. A browser or an HTTP client
  would happily fetch ``HTTPS://app.example.com/c``, but the identity is the exact
  string and the document must repeat it byte for byte; a second spelling of the
  same document's address is a second identity the document cannot consistently
  claim. A client controls both texts, so nothing real is refused.
* The URL is printable ASCII (RFC 3986 URIs are; an IRI is not a URI): what is
  fetched is then exactly what is compared, with no percent-encoding step between.
  A space, a control character or a backslash (which browsers read as ``/``) is
  refused by name.
* The host must be written as a browser reads it (:func:`urls.is_plainly_spelled`):
  ``%61pp.example.com``, ``0x7f.1`` or ``[0::1]`` are refused, so the host the consent
  page shows, the host the domain policy matches and the host the fetcher connects
  to are one and the same. Letter case and a trailing dot are allowed (the document
  must still repeat the URL exactly).
* ``%2e`` counts as a dot in a path segment, as the WHATWG URL Standard reads it,
  so ``/%2e%2e/`` is a dot segment too.
* A port is digits without a leading zero, from 1 to 65535; ``host:`` with no port
  is refused rather than read as 443.
* The length is capped at the store's client_id cap (``records.MAX_CLIENT_ID_LENGTH``):
  a longer client_id could never be recorded.

:func:`is_url_client_id` is the cheap test on the hot path: every client_id that
claims an ``http``/``https`` scheme, in any case, is taken for a URL client_id and
then parsed strictly, so ``HTTPS://...`` or ``http://...`` is refused with a reason
rather than looked up as an opaque DCR client_id that happens to look like a URL.

Pure module: no I/O.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Final

from consentgate.clients.client_errors import ClientRuleError
from consentgate.core.memo import remembered
from consentgate.core.signed.records import MAX_CLIENT_ID_LENGTH
from consentgate.core.trust.urls import (
    BadURL,
    browser_host,
    is_plainly_spelled,
    split_authority,
    split_url,
)

MAX_URL_CLIENT_ID_LENGTH: Final = MAX_CLIENT_ID_LENGTH
SCHEME_PREFIX: Final = "https://"
DEFAULT_PORT: Final = 443
_PORT: Final = re.compile(r"[1-9][0-9]{0,4}")
_DOT_SEGMENTS: Final = frozenset({".", ".."})


class BadClientIdURL(ClientRuleError):
    """A client_id that claims to be a URL but is not one a client may be named by."""


@dataclass(frozen=True)
class ClientIdURL:
    """A valid URL client_id: the exact text, and where it points.

    ``host`` is the host a browser (and the fetcher) contacts, in ASCII, lowercase
    (:func:`urls.browser_host`): bracketed for IPv6, as the consent page shows it.
    """

    url: str
    host: str
    port: int

    @property
    def address(self) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
        """The IP address when the host is an IP literal (no DNS: the fetcher checks
        it with the address policy directly), else None."""
        try:
            return ipaddress.ip_address(self.host.strip("[]"))
        except ValueError:
            return None


def is_url_client_id(client_id: str) -> bool:
    """Whether ``client_id`` claims an ``http:`` or ``https:`` scheme (any case).

    Cheap (it runs on every authorization request); the claim is checked by
    :func:`parse_client_id_url`. An opaque DCR client_id never starts that way.
    """
    return client_id[:6].lower().startswith(("https:", "http:"))


def _refuse(problem: str) -> BadClientIdURL:
    return BadClientIdURL(f"The client_id URL {problem}.")


def _check_characters(text: str) -> None:
    for char in text:
        if char == " ":
            raise _refuse("contains a space")
        if char == "\\":
            raise _refuse("contains a backslash")
        if char < " " or char == "\x7f":
            raise _refuse("contains a control character")
        if char > "\x7f":
            raise _refuse("contains a character that is not printable ASCII")


def _check_scheme(text: str) -> None:
    if text.startswith(SCHEME_PREFIX):
        return
    if text[: len(SCHEME_PREFIX)].lower() == SCHEME_PREFIX:
        raise _refuse("must begin with https:// in lowercase (the exact text is its identity)")
    if text[:7].lower() == "http://":
        raise _refuse("must use the https scheme")
    raise _refuse("must begin with https://")


def _check_port(authority: str, port: str) -> int:
    if authority.endswith(":"):
        raise _refuse("has a colon but no port")
    if not port:
        return DEFAULT_PORT
    if not _PORT.fullmatch(port) or int(port) > 65535:
        raise _refuse("has a port that is not a number from 1 to 65535 without leading zeros")
    return int(port)


def _check_path(path: str) -> None:
    if path in ("", "/"):
        raise _refuse("must have a path (not just /)")
    for segment in path.split("/")[1:]:
        if segment.lower().replace("%2e", ".") in _DOT_SEGMENTS:
            raise _refuse("must not contain a dot segment (. or ..) in its path")


@remembered(MAX_URL_CLIENT_ID_LENGTH)
def parse_client_id_url(text: str) -> ClientIdURL:
    """Validate a URL client_id; raises :class:`BadClientIdURL` naming the broken rule.

    Remembered (``core.memo``: a bounded LRU, refusals not kept): every authorization
    request of a URL client parses its client_id, and the host's IDNA reading is most
    of the cost of a remembered sign-in."""
    if len(text) > MAX_URL_CLIENT_ID_LENGTH:
        raise _refuse(f"is longer than {MAX_URL_CLIENT_ID_LENGTH} characters")
    _check_characters(text)
    _check_scheme(text)
    if "#" in text:
        raise _refuse("must not contain a fragment")
    rest = text[len(SCHEME_PREFIX) :]
    end = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=len(rest))
    authority, path = rest[:end], rest[end:].partition("?")[0]
    if "@" in authority:
        raise _refuse("must not contain userinfo (a user name or password)")
    try:
        _, spelled, port_text = split_authority(authority)
        port = _check_port(authority, port_text)
        host = browser_host(spelled)
    except BadURL as exc:
        raise _refuse(f"has a host that cannot be used: {exc}") from None
    if not is_plainly_spelled(spelled, host):
        raise _refuse(f"has a host written differently from how browsers read it ({host})")
    _check_path(path)
    try:  # the standard library must split it the same way, or it is ambiguous
        parts = split_url(text)
    except BadURL as exc:
        raise _refuse(f"is {exc}") from None
    if parts.netloc != authority or parts.path != path:
        raise _refuse("is split differently by different URL parsers")
    return ClientIdURL(url=text, host=host, port=port)
