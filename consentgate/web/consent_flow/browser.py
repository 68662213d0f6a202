"""Who is asking: the browser identity cookie, and whether a POST came from the gate.

A random browser id travels in a MAC-protected cookie (``cookies.CookieCrypto``);
the store only ever sees its keyed digest, the *subject*. Approvals, pending
consent pages and flow bindings are all bound to that subject.
"""

from __future__ import annotations

from aiohttp import web

from consentgate.core.signed.cookies import BROWSER_COOKIE_MAX_AGE, set_cookie_header
from consentgate.web.appkeys import COOKIE_CRYPTO, SETTINGS


class Browser:
    """The browser identity of one request: read from its cookie, or newly issued."""

    def __init__(self, request: web.Request) -> None:
        crypto = request.app[COOKIE_CRYPTO]
        self._request = request
        self.browser_id = crypto.read_browser_cookie(request.cookies.get(crypto.names.browser))
        self.subject: str | None = crypto.subject_of(self.browser_id) if self.browser_id else None
        self.new_cookie: str | None = None

    def ensure(self) -> str:
        """The subject, issuing a new browser id (and its cookie) when there is none."""
        if self.subject is None:
            crypto = self._request.app[COOKIE_CRYPTO]
            config = self._request[SETTINGS].config
            browser_id, value = crypto.new_browser_cookie()
            self.browser_id = browser_id
            self.subject = crypto.subject_of(browser_id)
            self.new_cookie = set_cookie_header(
                crypto.names.browser,
                value,
                max_age=BROWSER_COOKIE_MAX_AGE,
                secure=config.secure_cookies,
            )
        return self.subject

    def cookies_to_set(self) -> list[str]:
        return [self.new_cookie] if self.new_cookie else []


def from_own_page(request: web.Request) -> bool:
    """Whether a POST came from the gate's own page, by Fetch Metadata or Origin.

    ``Sec-Fetch-Site: same-origin`` is proof. Without it, an ``Origin`` equal to the
    public origin is. The gate's pages' ``Referrer-Policy: no-referrer`` makes
    browsers send ``Origin: null`` on their forms, so ``null`` is not a mismatch when
    Fetch Metadata vouches for the request, and not proof when it does not: when
    the gate cannot tell, it refuses.
    """
    public = request[SETTINGS].config.server.public_url
    fetch_site = request.headers.get("Sec-Fetch-Site")
    origin = request.headers.get("Origin")
    if origin is not None and origin not in ("null", public):
        return False
    if fetch_site is not None:
        return fetch_site == "same-origin"
    return origin == public
