"""Keeping OAuth secrets out of logs.

Authorization codes, ``state``, tokens and client secrets travel in query strings;
an access log that records them hands an account to whoever reads the log. Values
of these parameters are replaced before a query string is logged. Headers are
never logged at all (Authorization, Cookie, Set-Cookie).

The gate's libraries (aiohttp, asyncio, asyncpg, aiosqlite) write their own
messages, which may quote a request: :func:`redact_text` is the best effort for
those (credentials after an auth scheme, header values, the gate's cookies, secret
parameters); the structural protections are elsewhere (a malformed request is
never logged, a library's exception message is never written).

Pure module: no aiohttp import.
"""

from __future__ import annotations

import re
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
        "signin_ref",  # the gate's own: where a sign-in continues (core/identity/resumption)
    }
)
REDACTED: Final = "[redacted]"


def redact_query(query: str) -> str:
    """The query string with the values of secret parameters replaced.

    A parameter's name is decoded (``%5F``, ``+``) and lower-cased before it is
    compared; a name without ``%`` or ``+`` decodes to itself, so the decoding is
    skipped for it (this runs for every logged request). A query with
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


_SECRET_HEADERS: Final = (
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
    "api-key",
    "x-auth-token",
    "mcp-session-id",
)
_TEXT_RULES: Final = (
    # ``Authorization: Bearer x`` and the like: a header's whole value, to the end of
    # the line or the quote of a repr. The name may follow the escaped line end of a
    # bytes repr (``b'...\\r\\nCookie: ...'``) and be quoted in a mapping's repr
    # (``{'Cookie': '...'}``).
    (
        re.compile(
            rf"(?i)(?:(?<=\\[rnt])|(?<![A-Za-z0-9_-]))"
            rf"({'|'.join(map(re.escape, _SECRET_HEADERS))})(['\"]?\s*[:=]\s*['\"]?)[^\r\n'\"]*"
        ),
        rf"\1\2{REDACTED}",
    ),
    # A credential after its scheme wherever it appears (RFC 9110 §11.4, RFC 6750 §2.1).
    (re.compile(r"(?i)\b(bearer|basic|digest)(\s+)[^\s'\",;]+"), rf"\1\2{REDACTED}"),
    # The gate's own cookies, ``__Host-cg_*`` or ``cg_*``, anywhere.
    (re.compile(r"\b((?:__Host-)?cg_[A-Za-z0-9_-]*)=[^;\s'\"]*"), rf"\1={REDACTED}"),
    # Secret parameters of a query or a form (the names of SECRET_PARAMETERS).
    (
        re.compile(rf"(?i)(?<![A-Za-z0-9_])({'|'.join(sorted(SECRET_PARAMETERS))})=[^&\s'\"#;]*"),
        rf"\1={REDACTED}",
    ),
    # asyncio's repr of a finished task quotes its exception's message.
    (re.compile(r"(exception=[A-Za-z0-9_.]+)\((?:[^()]|\([^()]*\))*\)"), r"\1(...)"),
)


def redact_text(text: str) -> str:
    """A library's log message with every credential-shaped value replaced."""
    for pattern, replacement in _TEXT_RULES:
        text = pattern.sub(replacement, text)
    return text
