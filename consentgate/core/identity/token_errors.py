"""Why an ID token was not believed: a closed set of reasons, for the audit line and
the page, kept apart from the JOSE library (an optional extra) so that everything
but the signature check imports without it."""

from __future__ import annotations

from typing import Final, Literal

Rejection = Literal[
    "malformed",
    "unknown_kid",
    "no_key",
    "algorithm",
    "signature",
    "issuer",
    "audience",
    "authorized_party",
    "expired",
    "issued_in_future",
    "nonce",
    "subject",
]
#: The rejection after which the key set is worth fetching again.
UNKNOWN_KID: Final[Rejection] = "unknown_kid"


class IdTokenRejected(ValueError):
    """The ID token fails a check; ``reason`` is one of :data:`Rejection`."""

    def __init__(self, reason: Rejection, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason: Rejection = reason
