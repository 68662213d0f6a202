"""The gate's sign-in session in one browser: who is signed in, and its cookie.

The cookie (``__Host-cg_sess`` on https: Secure, HttpOnly, SameSite=Lax, Path=/; MCP
security best practices' cookie rules, docs/references.md) holds a MACed value bound
to the person and to this browser's identity cookie
(:func:`consentgate.core.identity.person.seal_session`), so copied into another
browser it names nobody. It grants nothing upstream: it only says whose approvals the
gate looks up. A browser sends the same value on every request: its verified
reading is remembered (a bounded LRU of a pure function, as the browser cookie's in
``CookieCrypto``), and only the expiry is compared per request, so a remembered
authorization costs what it cost without a sign-in.
"""

from __future__ import annotations

import functools
from typing import Final

from aiohttp import web

from consentgate.core.identity.person import Person, open_session, read_session, seal_session
from consentgate.core.signed.cookies import set_cookie_header
from consentgate.web.appkeys import CLOCK, COOKIE_CRYPTO, SETTINGS
from consentgate.web.consent_flow.browser import Browser


def current_person(request: web.Request, browser: Browser) -> Person | None:
    """The person signed in in this browser, or None (identity off, no session, a
    forged, expired or another browser's session)."""
    if not request[SETTINGS].config.identity.enabled or browser.subject is None:
        return None
    crypto = request.app[COOKIE_CRYPTO]
    value = request.cookies.get(crypto.names.session)
    if value is None:
        return None
    now = request.app[CLOCK]()
    return open_session(crypto.session_key, value, browser.subject, now, _read_session)


_read_session = functools.lru_cache(maxsize=4096)(read_session)


def page_owner(browser_subject: str, person: Person | None) -> str:
    """Whom a consent page is sealed for (its seal and its CSRF token,
    :mod:`consentgate.core.signed.pending`): the browser, and with ``[identity]`` the
    person it says is signed in, so a page shown to one person cannot be answered
    after another signed in in the same browser."""
    return browser_subject if person is None else f"{browser_subject} {person.subject}"


def session_cookie(request: web.Request, browser_subject: str, person: Person) -> str:
    """The ``Set-Cookie`` that signs ``person`` in in this browser."""
    config = request[SETTINGS].config
    crypto = request.app[COOKIE_CRYPTO]
    lifetime = int(config.identity.session_lifetime)
    expires_at = int(request.app[CLOCK]()) + lifetime
    value = seal_session(crypto.session_key, browser_subject, person, expires_at)
    return set_cookie_header(
        crypto.names.session, value, max_age=lifetime, secure=config.secure_cookies
    )


#: The session cookie's value after a sign-out: names nobody (``read_session`` reads
#: no person from it), and tells the next sign-in to ask the provider to authenticate
#: again (:func:`signed_out_here`).
SIGNED_OUT: Final = "signed-out"


def signed_out_cookie(request: web.Request) -> str:
    """The ``Set-Cookie`` that ends the session in this browser.

    Only the gate's session ends; the provider's own stays. So the cookie is not
    deleted but set to :data:`SIGNED_OUT` for a session's lifetime: the next sign-in
    in this browser sends ``prompt=login`` (OIDC Core §3.1.2.1), and the next person
    at a shared browser is not signed in as the previous one."""
    config = request[SETTINGS].config
    return set_cookie_header(
        request.app[COOKIE_CRYPTO].names.session,
        SIGNED_OUT,
        max_age=int(config.identity.session_lifetime),
        secure=config.secure_cookies,
    )


def signed_out_here(request: web.Request) -> bool:
    """Whether the last session in this browser ended with a sign-out."""
    return request.cookies.get(request.app[COOKIE_CRYPTO].names.session) == SIGNED_OUT
