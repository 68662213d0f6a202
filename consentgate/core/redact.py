"""Keeping OAuth secrets out of logs.

Authorization codes, ``state``, tokens and client secrets travel in query strings;
an access log that records them hands an account to whoever reads the log. Values
of these parameters are replaced before a query string is logged. Headers are
never logged at all (Authorization, Cookie, Set-Cookie).

Pure module: no aiohttp import.
"""

from __future__ import annotations

import urllib.parse
from typing import Final

SECRET_PARAMETERS: Final = frozenset(
    {
        "code",
        "state",
        "session_state",
        "access_token",
        "refresh_token",
        "id_token",
        "token",
        "client_secret",
        "client_assertion",
        "assertion",
        "code_verifier",
        "password",
        "request",
        "request_uri",
        "registration_access_token",
        "device_code",
        "nonce",
    }
)
REDACTED: Final = "[redacted]"


def redact_query(query: str) -> str:
    """The query string with the values of secret parameters replaced.

    A parameter's name is decoded (``%5F``, ``+``) and lower-cased before it is
    compared; a name without ``%`` or ``+`` decodes to itself, so the decoding is
    skipped for it (this runs for every logged request, issue 14). A query with
    nothing to replace comes back as the very same string.
    """
    if not query:
        return query
    items = query.split("&")
    redacted = False
    for index, item in enumerate(items):
        name, sep, _value = item.partition("=")
        if not sep:
            continue
        if "%" in name or "+" in name:
            decoded = urllib.parse.unquote_plus(name).lower()
        else:
            decoded = name.lower()
        if decoded in SECRET_PARAMETERS:
            items[index] = f"{name}={REDACTED}"
            redacted = True
    return "&".join(items) if redacted else query


def redact_target(target: str, max_length: int = 2048) -> str:
    """A request target (path and query) safe to log, bounded in length."""
    path, _, query = target.partition("?")
    redacted = redact_query(query)  # the same string when there was nothing to redact
    text = target if redacted is query else f"{path}?{redacted}"
    if len(text) > max_length:
        text = text[:max_length] + "...(truncated)"
    return text
