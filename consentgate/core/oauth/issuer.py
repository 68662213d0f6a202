"""The upstream's issuer identifier, for ``iss`` on error redirects (RFC 9207 §2).

A client compares ``iss`` byte for byte with the ``issuer`` of the metadata it read
through the gate, and must not act on an error whose ``iss`` differs or is missing
(RFC 9207 §2.4; MCP 2026-07-28, docs/references.md). So the value is the upstream's
``issuer`` exactly as served (a trailing slash or a path kept): taken from
``[upstream] issuer`` when set (``serve`` and ``readyz`` refuse one the metadata
contradicts, core/oauth/upstream_endpoints.py), else read once from the upstream's RFC 8414
metadata (``/.well-known/oauth-authorization-server``), asked the way a client's
request through the gate asks (the caller's fetch sends those headers): at start
and at each readiness probe, when the gate compares its endpoints (:meth:`note`),
else when an error first needs it. A failed read is retried after a few seconds;
until then the issuer is unknown, and the caller shows a local page instead of
redirecting an error without ``iss``.

Pure module: the fetch is passed in, so no aiohttp import.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Final

from consentgate.core.clock import Clock

log = logging.getLogger("consentgate")

METADATA_PATH: Final = "/.well-known/oauth-authorization-server"
#: Seconds between reads while the issuer is unknown (error redirects wait for it).
RETRY_AFTER: Final = 5.0

#: Fetches a path from the upstream: returns (status, body) or raises OSError-like errors.
Fetch = Callable[[str], Awaitable[tuple[int, bytes]]]


def _usable(issuer: object) -> str | None:
    return (
        issuer if isinstance(issuer, str) and issuer.startswith(("https://", "http://")) else None
    )


class IssuerCache:
    def __init__(self, configured: str, clock: Clock) -> None:
        self._configured = bool(configured)
        self._value: str | None = configured or None
        self._clock = clock
        self._retry_at = 0.0

    def note(self, document: Mapping[str, object]) -> None:
        """Take the ``issuer`` of a metadata document the gate read for another reason
        (its endpoints, at start and at each readiness probe): the first error needs no
        read of its own, and an upstream that changed its issuer is followed. A
        configured issuer stays (a different advertised one is refused there)."""
        issuer = _usable(document.get("issuer"))
        if issuer is not None and not self._configured:
            self._value = issuer

    async def get(self, fetch: Fetch) -> str | None:
        if self._value is not None or self._clock() < self._retry_at:
            return self._value
        try:
            status, body = await fetch(METADATA_PATH)
            document = json.loads(body) if status == 200 else None
        except Exception as exc:
            log.warning("cannot read the upstream metadata", extra={"fields": {"error": repr(exc)}})
            document = None
        issuer = _usable(document.get("issuer")) if isinstance(document, dict) else None
        if issuer is not None:
            self._value = issuer
        else:
            self._retry_at = self._clock() + RETRY_AFTER
        return self._value
