"""The return from a sign-in to a clean URL: the reference the authorization request
continues under, and what waits behind it.

The provider's answer arrives at ``{prefix}/signin?code=…&state=…``. Were the consent
page shown there, the code would stay in the address bar and the history, and a
reload would send a used ``state`` back. So the answer, once checked, sets the session
and redirects (303, RFC 9700 §4.12) to ``{prefix}/signin/continue?signin_ref=…``: a fresh,
random reference (32 bytes), not the ``state``; the store keeps, under a digest of it
and bound to the browser, the waiting request, how it *first* arrived (its
``Sec-Fetch-Site``: the cross-site rule judges that arrival, never the provider's
return, FastMCP GHSA-6x8h-498w-gv8c) and the person the session names. Nothing of
the original request travels in the URL (docs/references.md, Cloudflare's lesson: keep
the pending request server-side). The reference is taken once: a reload, another
browser, or a browser whose session no longer names that person gets a clear page.

Pure module.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from dataclasses import dataclass
from typing import Final

#: The path the answer redirects to, under ``[server] prefix``.
CONTINUE_PATH: Final = "/signin/continue"
#: The query parameter that carries the reference; redacted in every log line like a
#: code (:data:`consentgate.core.trust.redact.SECRET_PARAMETERS`).
REFERENCE_PARAMETER: Final = "signin_ref"
#: How long the reference waits for the browser to follow the redirect (seconds).
CONTINUE_SECONDS: Final = 300
#: The reference: 32 random bytes, base64url without padding.
REFERENCE_LENGTH: Final = 43
_KIND: Final = "continue"
_FORMAT: Final = 1


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def new_reference() -> str:
    return _b64(secrets.token_bytes(32))


def is_reference(value: str) -> bool:
    """Whether ``value`` can be a reference at all (before any store round trip)."""
    return len(value) == REFERENCE_LENGTH and all(
        c.isascii() and (c.isalnum() or c in "-_") for c in value
    )


def continue_key(reference: str) -> str:
    """The store's id of what waits under ``reference``: a digest in its own namespace,
    so neither a reference nor a sign-in's ``state`` can stand for the other."""
    digest = hashlib.sha256(b"consentgate-continue\n" + reference.encode()).digest()
    return "continue:" + _b64(digest)


@dataclass(frozen=True, slots=True)
class Continuation:
    """What waits behind a reference."""

    #: The authorization request's validated parameters, canonically encoded.
    query: str
    #: ``Sec-Fetch-Site`` of the request when it first arrived (None: absent).
    fetch_site: str | None
    #: The person the sign-in named (``person:...``): the session must still name them.
    person: str

    def to_json(self) -> str:
        return json.dumps(
            {"v": _FORMAT, "k": _KIND, "q": self.query, "s": self.fetch_site, "p": self.person},
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str) -> Continuation:
        try:
            value = json.loads(text)
        except ValueError:
            raise ValueError("not JSON") from None
        if not isinstance(value, dict) or value.get("v") != _FORMAT or value.get("k") != _KIND:
            raise ValueError("not a continuation")
        query, site, person = value.get("q"), value.get("s"), value.get("p")
        if not (
            isinstance(query, str)
            and (site is None or isinstance(site, str))
            and isinstance(person, str)
        ):
            raise ValueError("malformed continuation")
        return cls(query, site, person)
