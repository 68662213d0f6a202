"""The gate's cookies: names, attributes, and the MACs that make them unforgeable.

MCP security best practices (2025-11-25) and FastMCP's advisories shape them:

* ``__Host-`` prefix, ``Secure``, ``Path=/`` when the public origin is https, so no
  sibling subdomain can set or shadow them (``__Host-`` cookies without
  ``Path=/`` are dropped by browsers, Cloudflare's demos learned);
* ``HttpOnly``; ``SameSite=Lax`` for the browser id and the flow binding (they
  must arrive on the top-level navigation back from the IdP), ``Strict`` for the
  per-render CSRF cookie (it is only ever needed by the gate's own form);
* one purpose-separated key per use, derived with HKDF from the cookie secret
  (``browser-id``, ``subject``, ``csrf``, ``binding``, ``approvals-csrf``, and
  ``pending-seal`` for the consent page's sealed request), so a value minted for
  one purpose never verifies for another;
* bounded: one browser id, at most N pending-consent and N flow cookies, each a
  few dozen bytes (docs/references.md, the FastMCP lessons: cookies that grew per approval broke
  proxies' header limits).

Pure module: no aiohttp import.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

from consentgate.core.signed.pending import OpenedPage, PendingConsent, open_seal, seal

BROWSER_ID_BYTES: Final = 18
BROWSER_COOKIE_MAX_AGE: Final = 400 * 86400  # the longest lifetime browsers keep


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def same_token(given: str, expected: str) -> bool:
    """Constant-time equality of a token from a request and the expected one.

    ``hmac.compare_digest`` raises TypeError for a ``str`` with non-ASCII characters,
    and a cookie or form field may hold any; compared as UTF-8 bytes, a crafted
    value is simply unequal instead of a 500.
    """
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), expected.encode("utf-8"))


def _mac(key: bytes, *parts: str) -> bytes:
    message = "\x1f".join(parts).encode()
    mac = _keyed(key).copy()  # the key's HMAC state, prepared once: 2.2 -> 1.4 µs a MAC
    mac.update(message)
    return mac.digest()


@functools.lru_cache(maxsize=64)
def _keyed(key: bytes) -> hmac.HMAC:
    """An HMAC-SHA256 with ``key`` and no message yet; only ever copied, never updated."""
    return hmac.new(key, digestmod=hashlib.sha256)


@dataclass(frozen=True)
class CookieNames:
    """Cookie names for one deployment: ``__Host-cg_*`` on https, ``cg_*`` on http."""

    secure: bool

    @property
    def prefix(self) -> str:
        return "__Host-cg_" if self.secure else "cg_"

    @property
    def browser(self) -> str:
        return f"{self.prefix}bid"

    def pending(self, pending_id: str) -> str:
        return f"{self.prefix}p_{pending_id}"

    @property
    def pending_prefix(self) -> str:
        return f"{self.prefix}p_"

    def binding(self, tag: str) -> str:
        return f"{self.prefix}b_{tag}"

    @property
    def binding_prefix(self) -> str:
        return f"{self.prefix}b_"

    @property
    def session(self) -> str:
        """The gate's sign-in session ([identity]; :mod:`consentgate.core.identity.person`)."""
        return f"{self.prefix}sess"


@dataclass(frozen=True)
class Binding:
    """What the flow-binding cookie for one upstream ``state`` holds."""

    key: str  # the server-side row key, a MAC of the state
    cookie_name: str
    cookie_value: str


class CookieCrypto:
    """MACs for the gate's cookies and tokens, from purpose-derived keys.

    ``derive`` maps a purpose name to a 32-byte key (HKDF over the cookie secret).
    """

    def __init__(self, derive: Callable[[str], bytes], names: CookieNames) -> None:
        self.names = names
        self._browser_key = derive("browser-id")
        self._subject_key = derive("subject")
        self._csrf_key = derive("csrf")
        self._binding_key = derive("binding")
        self._approvals_key = derive("approvals-csrf")
        self._seal_key = derive("pending-seal")
        #: The MAC key of the sign-in session's value ([identity]).
        self.session_key = derive("identity-session")
        # A browser sends the same cookie on every request: its verified reading and
        # its subject are remembered (bounded LRUs; pure functions of the value and
        # this instance's keys, a forged value is remembered as None).
        self.read_browser_cookie = functools.lru_cache(maxsize=4096)(  # type: ignore[method-assign]
            self._read_browser_cookie
        )
        self.subject_of = functools.lru_cache(maxsize=4096)(self._subject_of)  # type: ignore[method-assign]

    # -- browser identity --------------------------------------------------------

    def new_browser_cookie(self) -> tuple[str, str]:
        """A fresh browser id and the cookie value that carries it."""
        browser_id = _b64(secrets.token_bytes(BROWSER_ID_BYTES))
        tag = _b64(_mac(self._browser_key, browser_id)[:16])
        return browser_id, f"{browser_id}.{tag}"

    def read_browser_cookie(self, value: str | None) -> str | None:
        """The browser id in a cookie value, or None when absent or forged."""
        return self._read_browser_cookie(value)  # replaced by a remembering one in __init__

    def _read_browser_cookie(self, value: str | None) -> str | None:
        if not value or value.count(".") != 1 or len(value) > 128:
            return None
        browser_id, tag = value.split(".")
        expected = _b64(_mac(self._browser_key, browser_id)[:16])
        return browser_id if same_token(tag, expected) else None

    def subject_of(self, browser_id: str) -> str:
        """The store's subject for a browser: a keyed digest, so the database never
        holds a value that works as a cookie."""
        return self._subject_of(browser_id)  # replaced by a remembering one in __init__

    def _subject_of(self, browser_id: str) -> str:
        return _b64(_mac(self._subject_key, browser_id))

    # -- consent page CSRF ---------------------------------------------------------

    @staticmethod
    def new_pending_id(now: float) -> str:
        """Time-ordered (hex milliseconds first) so the oldest pending cookie sorts first."""
        return f"{int(now * 1000):012x}{secrets.token_hex(10)}"

    def csrf_token(self, pending_id: str, subject: str) -> str:
        """The token of one rendered form, bound to its pending request and browser."""
        return _b64(_mac(self._csrf_key, pending_id, subject)[:20])

    def seal_pending(
        self, pending_id: str, subject: str, expires_at: int, page: PendingConsent
    ) -> str:
        """The consent form's sealed request (:func:`consentgate.core.signed.pending.seal`)."""
        return seal(self._seal_key, pending_id, subject, expires_at, page)

    def open_pending(self, sealed: str, subject: str, now: float) -> OpenedPage:
        """The page sealed for ``subject``, unexpired; else
        :class:`~consentgate.core.signed.pending.BadPending`."""
        return open_seal(self._seal_key, sealed, subject, now)

    # -- self-service approvals page CSRF ------------------------------------------

    def approvals_token(self, subject: str) -> str:
        """The CSRF token of the approvals page's forms: a MAC of the browser's subject.

        The subject comes from the HttpOnly browser cookie, which another site can
        neither read nor set (``__Host-`` on https), so another site cannot compute
        the token (OWASP's HMAC-based synchronizer token). It depends on nothing else,
        so every render of the page carries the same token and a reload never breaks
        a form still on screen (docs/references.md, the FastMCP lessons).
        """
        return _b64(_mac(self._approvals_key, "approvals", subject)[:20])

    # -- upstream flow binding -------------------------------------------------------

    def binding_for(self, state: str, subject: str, issued_at: int) -> Binding:
        """The cookie that lets this browser, and only it, complete the flow of ``state``.

        The proof covers the state (through ``key``), the browser's subject and the
        time of issue, so the cookie is useless in another browser and its age
        cannot be rewound; nothing is stored until the callback uses it.
        """
        digest = _mac(self._binding_key, "state", state)
        key = _b64(digest)
        proof = _b64(_mac(self._binding_key, "proof", key, subject, str(issued_at))[:18])
        return Binding(key, self.names.binding(digest[:9].hex()), f"{issued_at}.{proof}")

    def check_binding(
        self, state: str, subject: str, cookies: Mapping[str, str]
    ) -> tuple[str, int] | None:
        """``(key, issued_at)`` when this browser holds the binding cookie for ``state``."""
        digest = _mac(self._binding_key, "state", state)
        key = _b64(digest)
        value = cookies.get(self.names.binding(digest[:9].hex()))
        if not value or value.count(".") != 1:
            return None
        issued, proof = value.split(".")
        if not issued.isdigit() or len(issued) > 12:
            return None
        expected = _b64(_mac(self._binding_key, "proof", key, subject, issued)[:18])
        return (key, int(issued)) if same_token(proof, expected) else None

    def binding_cookie_name(self, state: str) -> str:
        return self.names.binding(_mac(self._binding_key, "state", state)[:9].hex())


def set_cookie_header(
    name: str, value: str, *, max_age: int, same_site: str = "Lax", secure: bool
) -> str:
    """A ``Set-Cookie`` value with the gate's attributes (always ``Path=/``, HttpOnly)."""
    parts = [f"{name}={value}", "Path=/", f"Max-Age={max(max_age, 0)}", "HttpOnly"]
    parts.append(f"SameSite={same_site}")
    if secure:
        parts.append("Secure")
    return "; ".join(parts)
