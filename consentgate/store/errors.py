"""What a caller of the store must be ready for besides its answers."""

from __future__ import annotations

from typing import Literal

#: What kind of outage, as ``readyz`` names it (``store: read-only``) and the log counts it.
OutageKind = Literal[
    "locked", "read-only", "disk full", "I/O error", "corrupt", "gone", "unreachable", "unavailable"
]


class StoreUnavailable(Exception):
    """The store cannot answer now: its database is locked for too long, failing
    (disk I/O, read-only, full), gone (its file deleted or replaced under the gate),
    or unreachable (a PostgreSQL server down).

    Raised by a backend in place of its driver's error, with a reason that names no
    secret and a :attr:`kind`. The gate fails closed on it: an authorization request
    is answered 503 and never relayed, a consent answer or a callback is refused with
    a page that asks to try again; relaying other traffic goes on.
    """

    def __init__(self, message: str, kind: OutageKind = "unavailable") -> None:
        super().__init__(message)
        self.kind: OutageKind = kind
