"""Where consent is decided: may this authorization request pass without asking?

Before any of it, a client named by a URL (Client ID Metadata Documents) must have
a current metadata document listing the redirect URI, or the request is refused on a
page (``web/documents.py``): so rule 6 holds for such a client only while its document,
fetched or cached for this very request, still lists the URI it approved.

The rule, in the order it is applied (each line is a test in tests/core/oauth/test_decision.py):

1. A request whose content is hidden from the gate (PAR ``request_uri``, JAR
   ``request``) is always asked: the gate cannot tell what it would approve.
2. ``prompt=consent`` is always asked (OIDC Core §3.1.2.1).
3. A redirect URI listed in ``[consent] preapproved_redirect_uris`` passes: the
   operator vouched for it.
4. With ``[consent] mode = "always"``, or without a browser identity, ask.
5. A remembered approval is used silently only on a navigation that another site
   cannot have started: ``Sec-Fetch-Site`` none, same-origin or same-site; a
   missing header means ask (FastMCP GHSA-6x8h-498w-gv8c).
6. Otherwise the store decides: an unrevoked, unexpired, validly signed approval
   by this browser of this client, redirect URI, resource and every scope (with
   ``[identity]``: by the signed-in person, or by this browser before identity was
   on; ``Sec-Fetch-Site`` is the one the request first arrived with, before the
   sign-in's round trip through the provider).

Only the last step needs I/O, so :func:`first_look` answers the first five as a
pure function and says when the store has to be asked (``LOOK_UP``).
"""

from __future__ import annotations

import enum
from collections.abc import Collection
from typing import Final

from consentgate.core.oauth.authorization_requests import AuthorizationRequest

#: Navigations that cannot have been started by another site (Fetch Metadata).
SILENT_FETCH_SITES: Final = frozenset({"none", "same-origin", "same-site"})


class FirstLook(enum.Enum):
    """What the request itself says, before any stored approval is consulted."""

    ASK = "ask"
    PREAPPROVED = "preapproved"
    #: Silent if the store holds a matching approval, else ask.
    LOOK_UP = "look_up"


def first_look(
    auth: AuthorizationRequest,
    *,
    mode: str,
    preapproved_redirect_uris: Collection[str],
    has_browser: bool,
    fetch_site: str | None,
) -> FirstLook:
    """Rules 1 to 5 of the module docstring."""
    if auth.opaque or "consent" in auth.prompt:
        return FirstLook.ASK
    if auth.redirect_uri in preapproved_redirect_uris:
        return FirstLook.PREAPPROVED
    if mode != "remember" or not has_browser:
        return FirstLook.ASK
    if (fetch_site or "").lower() not in SILENT_FETCH_SITES:
        return FirstLook.ASK
    return FirstLook.LOOK_UP
