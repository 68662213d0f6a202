"""What a consent page showed, kept server-side until the person answers it.

Cloudflare's early MCP approval dialogs trusted hidden form fields and an
unsigned state round-tripped through the IdP; here the answer trusts only the
pending id and the CSRF token, and the request comes back from the store
(REFERENCES.md, "Lessons from Cloudflare's MCP approval dialog"). What is kept is
only what the gate needs to resume (hardening issue #10, point 1): the request's
canonical parameters, from which everything else is parsed again, and the two
decisions made when the page was rendered. The store signs the row with its id,
subject and expiry, so a payload cannot move to another row (point 2).

Pure module: no aiohttp import.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Final

from consentgate.core.oauth import Parameters, encode_parameters

FORMAT: Final = 2


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
