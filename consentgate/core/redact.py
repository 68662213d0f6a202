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
    """The query string with the values of secret parameters replaced."""
    if not query:
        return query
    parts = []
    for item in query.split("&"):
        name, sep, _value = item.partition("=")
        decoded = urllib.parse.unquote_plus(name).lower()
        parts.append(f"{name}={REDACTED}" if sep and decoded in SECRET_PARAMETERS else item)
    return "&".join(parts)


def redact_target(target: str, max_length: int = 2048) -> str:
    """A request target (path and query) safe to log, bounded in length."""
    path, sep, query = target.partition("?")
    text = path + sep + redact_query(query) if sep else path
    if len(text) > max_length:
        text = text[:max_length] + "...(truncated)"
    return text
