"""URLs from untrusted input: split without crashing, and read hosts as a browser will.

Two problems (docs/references.md, "Untrusted URLs and hosts"):

* ``urllib.parse.urlsplit`` raises ``ValueError`` on inputs such as
  ``https://[::1/cb`` or a netloc with a full-width slash (U+FF0F). Every parse of
  untrusted text goes through :func:`split_url`, which turns that into
  :class:`BadURL`, so a crafted URL gets the 400 page, not a 500 and a traceback.
* The consent page's one unfakeable fact is the host that receives the result
  (MCP authorization 2025-11-25: show the redirect URI hostname clearly). It must be
  the host the browser will really contact, not the letters it is spelled with:
  ``g\\u043e\\u043egle.com`` with Cyrillic o's is ``xn--ggle-55da.com``,
  ``claude.ai。evil.com`` (ideographic full stop) is ``claude.ai.evil.com``,
  ``%65vil.com`` is ``evil.com``, ``0x7f.1`` is ``127.0.0.1``. :func:`browser_host`
  follows the WHATWG URL Standard's host parser (percent-decoding, UTS #46
  processing with the browser's flags, the IPv4 number forms, IPv6 serialisation)
  and answers the ASCII form, as browsers show a confusable host.

Pure module: no aiohttp import.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import unicodedata
import urllib.parse
from typing import Final

import idna

#: WHATWG "forbidden domain code points": none of them survives in a host.
_FORBIDDEN_DOMAIN: Final = frozenset("\x00\t\n\r #/:<>?@[\\]^|%\x7f") | frozenset(
    chr(c) for c in range(0x20)
)
_PERCENT: Final = re.compile(rb"%([0-9A-Fa-f]{2})")
_IPV4_PART: Final = re.compile(r"^(0[xX][0-9A-Fa-f]*|[0-9]+)$")


class BadURL(ValueError):
    """Text that is not a URL a browser could use; the message says why."""


def split_url(text: str) -> urllib.parse.SplitResult:
    """``urlsplit`` that raises only :class:`BadURL` (never a bare ValueError)."""
    try:
        parts = urllib.parse.urlsplit(text)
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError as exc:
        raise BadURL(f"not a well-formed URL ({exc})") from None
    return parts


def query_pairs(query: str) -> list[tuple[str, str]]:
    """``urllib.parse.parse_qsl(query, keep_blank_values=True)``, in a fifth of its time
    on an upstream's hand-off to its IdP (RFC 6749 §4.1.1: a dozen parameters, two of
    them percent-encoded URLs), which the gate reads on every relayed sign-in.

    The same pairs: split at ``&`` only, empty pieces skipped, a piece without ``=``
    has an empty value, ``+`` is a space, percent-escapes decoded as UTF-8 with
    invalid sequences replaced (U+FFFD). An ASCII text is decoded by
    ``unquote_to_bytes`` directly, which is what ``unquote`` does to each ASCII run."""
    pairs: list[tuple[str, str]] = []
    for piece in query.split("&"):
        if piece:
            name, _, value = piece.partition("=")
            pairs.append((_form_decoded(name), _form_decoded(value)))
    return pairs


#: The hand-off parameters whose values are the same on every sign-in through one
#: upstream (its callback, the resource, its own client_id, the IdP scopes): their
#: decoded values are remembered (:func:`handoff_pairs`). Nothing else is: the
#: ``state`` and the PKCE challenge are the flow's own, new each time.
_CONSTANT_HANDOFF_NAMES: Final = frozenset({"client_id", "redirect_uri", "resource", "scope"})
#: Longest value of those kept; a longer one is decoded each time.
_LONGEST_REMEMBERED_VALUE: Final = 512


def handoff_pairs(query: str) -> list[tuple[str, str]]:
    """:func:`query_pairs` of an upstream's hand-off to its IdP (RFC 6749 §4.1.1), read
    on every relayed sign-in: the same pairs, with the percent-decoded values of
    :data:`_CONSTANT_HANDOFF_NAMES` taken from a bounded LRU (two percent-encoded URLs
    cost over 2 µs to decode each time). The flow's own values (``state``) are decoded
    afresh and never kept."""
    pairs: list[tuple[str, str]] = []
    for piece in query.split("&"):
        if piece:
            name, _, value = piece.partition("=")
            name = _form_decoded(name)
            if (
                name in _CONSTANT_HANDOFF_NAMES
                and "%" in value
                and len(value) <= _LONGEST_REMEMBERED_VALUE
            ):
                pairs.append((name, _remembered_value(value)))
            else:
                pairs.append((name, _form_decoded(value)))
    return pairs


def remembered_handoff_values() -> list[str]:
    """The encoded texts :func:`handoff_pairs` holds decoded (for the tests)."""
    return list(_remembered_texts)


def _remembered_value(text: str) -> str:
    decoded = _remembered_texts.get(text)
    if decoded is None:
        decoded = _form_decoded(text)
        if len(_remembered_texts) >= _REMEMBERED_VALUES:
            del _remembered_texts[next(iter(_remembered_texts))]
        _remembered_texts[text] = decoded
    return decoded


#: Decoded hand-off values kept at most; the oldest kept goes first.
_REMEMBERED_VALUES: Final = 64
_remembered_texts: dict[str, str] = {}


def _form_decoded(text: str) -> str:
    if "+" in text:
        text = text.replace("+", " ")
    if "%" not in text:
        return text
    if text.isascii():
        return urllib.parse.unquote_to_bytes(text).decode("utf-8", "replace")
    return urllib.parse.unquote(text)


def split_authority(netloc: str) -> tuple[str, str, str]:
    """``(userinfo, host, port)`` of an authority, as spelled (nothing decoded)."""
    userinfo, at, hostport = netloc.rpartition("@")
    if not at:
        userinfo = ""
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise BadURL("an IPv6 address is not closed with ']'")
        host, rest = hostport[: end + 1], hostport[end + 1 :]
        if rest and not rest.startswith(":"):
            raise BadURL("text follows the IPv6 address")
        return userinfo, host, rest[1:]
    host, colon, port = hostport.rpartition(":")
    if not colon:
        return userinfo, hostport, ""
    return userinfo, host, port


def _percent_decode(text: str) -> str:
    raw = _PERCENT.sub(lambda m: bytes([int(m.group(1), 16)]), text.encode("utf-8"))
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadURL("the host is not valid UTF-8 once percent-decoded") from None


def _ipv6(text: str) -> str:
    """The WHATWG serialisation of an IPv6 literal (``[...]``): lowercase, the longest
    run of two or more zero pieces compressed, no dotted IPv4 tail."""
    inner = text[1:-1]
    if "%" in inner:
        raise BadURL("an IPv6 zone identifier is not allowed in a URL")
    try:
        address = ipaddress.IPv6Address(inner)
    except ValueError:
        raise BadURL("not a valid IPv6 address") from None
    packed = address.packed
    pieces = [packed[i] << 8 | packed[i + 1] for i in range(0, 16, 2)]
    best_start, best_len, start = -1, 1, -1
    for index, piece in enumerate([*pieces, 1]):
        if piece == 0 and start < 0:
            start = index
        elif piece != 0 and start >= 0:
            if index - start > best_len:
                best_start, best_len = start, index - start
            start = -1
    if best_start < 0:
        return "[" + ":".join(f"{p:x}" for p in pieces) + "]"
    head = ":".join(f"{p:x}" for p in pieces[:best_start])
    tail = ":".join(f"{p:x}" for p in pieces[best_start + best_len :])
    return f"[{head}::{tail}]"


def _ends_in_a_number(domain: str) -> bool:
    labels = domain.split(".")
    if labels[-1] == "" and len(labels) > 1:
        labels.pop()
    last = labels[-1]
    if last.isascii() and last.isdigit():
        return True
    return bool(re.fullmatch(r"0[xX][0-9A-Fa-f]*", last))


def _ipv4(domain: str) -> str:
    """The WHATWG IPv4 parser: 1 to 4 parts, each decimal, octal (leading 0) or hex."""
    parts = domain.split(".")
    if parts[-1] == "" and len(parts) > 1:
        parts.pop()
    if len(parts) > 4 or any(not _IPV4_PART.match(part) for part in parts):
        raise BadURL("the host looks like an IPv4 address but is not one")
    numbers: list[int] = []
    for part in parts:
        if part[:2].lower() == "0x":
            numbers.append(int(part[2:] or "0", 16))
        elif len(part) > 1 and part.startswith("0"):
            if not set(part) <= set("01234567"):
                raise BadURL("the host looks like an IPv4 address but is not one")
            numbers.append(int(part, 8))
        else:
            numbers.append(int(part))
    if any(n > 255 for n in numbers[:-1]) or numbers[-1] >= 256 ** (5 - len(numbers)):
        raise BadURL("the host is an IPv4 address out of range")
    value = numbers[-1]
    for index, number in enumerate(numbers[:-1]):
        value += number * 256 ** (3 - index)
    return str(ipaddress.IPv4Address(value))


def _is_bidi_domain(labels: list[str]) -> bool:
    return any(unicodedata.bidirectional(c) in ("R", "AL", "AN") for label in labels for c in label)


def _check_label(label: str, *, bidi_domain: bool) -> None:
    """UTS #46 validity of a (Unicode) label: NFC, joiners in context, the Bidi rule."""
    if unicodedata.normalize("NFC", label) != label:
        raise BadURL("the host has a label that is not normalised")
    try:
        misplaced = any(
            char in "\u200c\u200d" and not idna.valid_contextj(label, index)
            for index, char in enumerate(label)
        )
    except ValueError:  # idna.IDNAError is one: a joiner it cannot place is misplaced
        misplaced = True
    if misplaced:
        raise BadURL("the host has an invisible joiner out of place")
    if bidi_domain and label:
        try:
            idna.check_bidi(label, check_ltr=True)
        except ValueError as exc:
            raise BadURL(f"the host mixes writing directions ({exc})") from None


def _domain_to_ascii(domain: str) -> str:
    """UTS #46 ToASCII with the URL Standard's flags (non-transitional, no STD3 rules,
    no hyphen checks, CheckBidi and CheckJoiners on): mapped, normalised, each
    ``xn--`` label checked, each non-ASCII label punycoded."""
    try:
        mapped = idna.uts46_remap(domain, std3_rules=False, transitional=False)
    except ValueError:  # idna.IDNAError and UnicodeError are ValueErrors
        raise BadURL("the host has characters no browser accepts") from None
    unicode_labels = []
    for label in mapped.split("."):
        if label.lower().startswith("xn--") and not label.isascii():
            raise BadURL("the host has an xn-- label with non-ASCII characters")
        if label.isascii() and label.lower().startswith("xn--"):
            try:
                decoded = label[4:].encode("ascii").decode("punycode")
            except (UnicodeError, IndexError):
                raise BadURL("the host has an xn-- label that is not punycode") from None
            if not decoded or decoded.isascii():
                raise BadURL("the host has an xn-- label that is not punycode")
            try:
                remapped = idna.uts46_remap(decoded, std3_rules=False, transitional=False)
            except ValueError:
                raise BadURL(
                    "the host has an xn-- label with characters no browser accepts"
                ) from None
            if remapped != decoded:
                raise BadURL("the host has an xn-- label that is not in its normal form")
            unicode_labels.append(decoded)
        else:
            unicode_labels.append(label)
    bidi = _is_bidi_domain(unicode_labels)
    labels = []
    for label in unicode_labels:
        _check_label(label, bidi_domain=bidi)
        if label.isascii():
            labels.append(label.lower())
            continue
        try:
            labels.append("xn--" + label.encode("punycode").decode("ascii"))
        except UnicodeError:
            raise BadURL("the host has a label that cannot be encoded") from None
    return ".".join(labels)


#: Hosts read by :func:`browser_host` kept with their answer: the same few hosts (the
#: IdP's, the clients') come back on every relayed authorization, and the IDNA
#: mapping is most of the cost of reading one. Longer spellings than a DNS name can
#: be (RFC 1035 §2.3.4: 255 octets) are read each time, so the memory stays bounded.
HOST_MEMORY: Final = 256
_MEMORABLE_HOST: Final = 255


def browser_host(spelled: str) -> str:
    """The host a browser contacts for the host part ``spelled`` of an http(s) URL.

    Raises :class:`BadURL` where a browser would refuse the URL. The answer is
    ASCII: punycode for internationalised labels, dotted quads for IPv4 (whatever
    number form was written), bracketed canonical IPv6. A pure function: answers
    are remembered (:data:`HOST_MEMORY`), refusals are not.
    """
    if len(spelled) > _MEMORABLE_HOST:
        return _read_host(spelled)
    return _remembered_host(spelled)


def _read_host(spelled: str) -> str:
    """:func:`browser_host`, read afresh."""
    if not spelled:
        raise BadURL("the URL has no host")
    if spelled.startswith("["):
        if not spelled.endswith("]"):
            raise BadURL("an IPv6 address is not closed with ']'")
        return _ipv6(spelled)
    domain = _percent_decode(spelled)
    ascii_domain = _domain_to_ascii(domain)
    if not ascii_domain or set(ascii_domain) & _FORBIDDEN_DOMAIN:
        raise BadURL("the host has characters no browser accepts")
    if _ends_in_a_number(ascii_domain):
        return _ipv4(ascii_domain)
    return ascii_domain


#: The LRU memory of :func:`browser_host` (an exception is never stored).
_remembered_host = functools.lru_cache(maxsize=HOST_MEMORY)(_read_host)


def is_plainly_spelled(spelled: str, host: str) -> bool:
    """Whether the host was written as the browser reads it (ASCII, no escapes): case
    and a trailing dot aside, what the person reads is then the host itself."""
    return (
        spelled.isascii() and "%" not in spelled and spelled.lower().rstrip(".") == host.rstrip(".")
    )
