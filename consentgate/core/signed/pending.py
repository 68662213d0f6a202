"""What a consent page showed, carried sealed by the page until the person answers it.

Why in the page and not in the store: a row kept for every page shown is a budget a
flood of strangers spends for everyone. Cookie-less renders spread over many
addresses filled any global cap, and then every real person asking for a page got a
503. A sealed page costs the gate nothing until it is answered, so there is no
budget to exhaust; the answer writes one single-use mark (see
:meth:`~consentgate.store.facade.ConsentStore.use_page`).

Why the seal can be trusted where a hidden field could not: Cloudflare's early MCP
approval dialogs trusted hidden form fields that nobody had authenticated (fixed in
workers-oauth-provider's demos by keeping the request server-side). This value is
MACed (HMAC-SHA256, RFC 2104) with a key derived for this one purpose from the
cookie secret (:func:`consentgate.core.signed.keyring.derive_key`, ``"pending-seal"``), over a
version byte, the expiry, the page's id, the payload and the browser's subject, and
compared in constant time: changing any byte, moving it to another browser, or
keeping it past its expiry makes it unusable. Its content is not secret: it is the
request the browser itself sent, shown on the page. The form carries it, not a
cookie (cookies must stay few and small), and every render has its own (a reload
must not break the form on screen): docs/references.md, the FastMCP lessons. Any gate
sharing the cookie secret opens it, so instances need no shared pending state;
rotating the Ed25519 signing keys does not touch it.

What is sealed is only what the gate needs to resume: the request's canonical
parameters, from which everything else is parsed again, and the two decisions made
when the page was rendered.

Pure module: no aiohttp import.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import struct
from dataclasses import dataclass
from typing import Final

from consentgate.core.oauth.authorization_requests import Parameters, encode_parameters
from consentgate.core.signed.records import MAX_PENDING_PAYLOAD

FORMAT: Final = 2
#: The first byte of a sealed page: a new layout gets a new version, and an old
#: value is refused rather than misread.
SEAL_VERSION: Final = 1
#: Version, expiry (seconds since the epoch) and the page id's 16 bytes.
_SEAL_HEAD: Final = struct.Struct(">BQ16s")
_MAC_BYTES: Final = 32
#: Longest sealed value accepted, in characters (unpadded base64url of the most a
#: seal can hold): anything longer is refused before it is decoded.
MAX_SEALED_LENGTH: Final = -(-(_SEAL_HEAD.size + MAX_PENDING_PAYLOAD + _MAC_BYTES) * 4 // 3)
_BASE64URL: Final = re.compile(r"[A-Za-z0-9_-]+")
_PENDING_ID: Final = re.compile(r"[0-9a-f]{32}")


class BadPending(ValueError):
    """A stored payload this code did not write (another format, or not JSON)."""


@dataclass(frozen=True, slots=True)
class PendingConsent:
    """The request on a consent page and what the page decided about it."""

    #: The validated parameters, canonically encoded: what is forwarded on Allow.
    query: str
    #: Errors (a Deny) may be redirected to the client: it was seen registering
    #: this redirect URI and the request is not opaque.
    redirectable: bool
    #: The page offered "remember this approval".
    remember_allowed: bool

    @classmethod
    def of(
        cls, parameters: Parameters, *, redirectable: bool, remember_allowed: bool
    ) -> PendingConsent:
        return cls(encode_parameters(parameters), redirectable, remember_allowed)

    def to_json(self) -> str:
        return json.dumps(
            {"v": FORMAT, "q": self.query, "r": self.redirectable, "m": self.remember_allowed},
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str) -> PendingConsent:
        try:
            value = json.loads(text)
        except ValueError:
            raise BadPending("not JSON") from None
        if not isinstance(value, dict) or value.get("v") != FORMAT:
            raise BadPending("unknown pending format")
        query, redirectable, remember = value.get("q"), value.get("r"), value.get("m")
        if not (
            isinstance(query, str) and isinstance(redirectable, bool) and isinstance(remember, bool)
        ):
            raise BadPending("malformed pending payload")
        return cls(query, redirectable, remember)


@dataclass(frozen=True, slots=True)
class OpenedPage:
    """A sealed consent page that verified for this browser and has not expired."""

    id: str
    expires_at: int
    consent: PendingConsent


def _seal_mac(key: bytes, body: bytes, subject: str) -> bytes:
    # The subject is base64url (never a NUL), so body and subject cannot be re-split.
    return hmac.new(key, body + b"\0" + subject.encode("utf-8"), hashlib.sha256).digest()


def seal(key: bytes, pending_id: str, subject: str, expires_at: int, page: PendingConsent) -> str:
    """The page's form value: version, expiry, id and payload, MACed with the subject.

    ``pending_id`` is the 32 lower-case hex digits of
    :meth:`~consentgate.core.signed.cookies.CookieCrypto.new_pending_id`.
    """
    if not _PENDING_ID.fullmatch(pending_id):
        raise ValueError(f"a pending id is 32 lower-case hex digits, got {pending_id!r}")
    payload = page.to_json().encode("utf-8")
    if len(payload) > MAX_PENDING_PAYLOAD:
        raise ValueError(f"the pending payload is larger than {MAX_PENDING_PAYLOAD} bytes")
    body = _SEAL_HEAD.pack(SEAL_VERSION, expires_at, bytes.fromhex(pending_id)) + payload
    sealed = body + _seal_mac(key, body, subject)
    return base64.urlsafe_b64encode(sealed).rstrip(b"=").decode("ascii")


def open_seal(key: bytes, sealed: str, subject: str, now: float) -> OpenedPage:
    """The page sealed in ``sealed`` for ``subject``; :class:`BadPending` when it is not
    one (wrong version, altered, another browser's) or has expired."""
    if len(sealed) > MAX_SEALED_LENGTH or not _BASE64URL.fullmatch(sealed):
        raise BadPending("not a sealed page")
    try:
        raw = base64.urlsafe_b64decode(sealed + "=" * (-len(sealed) % 4))
    except ValueError:
        raise BadPending("not a sealed page") from None
    if len(raw) < _SEAL_HEAD.size + _MAC_BYTES:
        raise BadPending("not a sealed page")
    body, mac = raw[:-_MAC_BYTES], raw[-_MAC_BYTES:]
    version, expires_at, raw_id = _SEAL_HEAD.unpack_from(body)
    if version != SEAL_VERSION:
        raise BadPending("unknown seal version")
    if not hmac.compare_digest(mac, _seal_mac(key, body, subject)):
        raise BadPending("the seal does not verify for this browser")
    if expires_at <= now:
        raise BadPending("expired")
    try:
        text = body[_SEAL_HEAD.size :].decode("utf-8")
    except UnicodeDecodeError:
        raise BadPending("not UTF-8") from None
    return OpenedPage(raw_id.hex(), expires_at, PendingConsent.from_json(text))
