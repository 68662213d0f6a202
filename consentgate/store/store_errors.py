"""What a caller of the store must be ready for besides its answers.

One root, :class:`StoreError`, under which every exception the store raises of its
own sits: a library user catches them all with one ``except StoreError`` and still tells an outage
(:class:`StoreUnavailable`, try again) from a store already closed
(:class:`StoreClosed`, a bug of the caller's lifecycle).
"""

from __future__ import annotations

from typing import Literal

#: What kind of outage, as ``readyz`` names it (``store: read-only``) and the log counts it.
#: ``upgraded``: a newer consentgate migrated the store past the schema this one knows.
OutageKind = Literal[
    "locked",
    "read-only",
    "disk full",
    "I/O error",
    "corrupt",
    "gone",
    "upgraded",
    "unreachable",
    "unavailable",
]


class StoreError(Exception):
    """The root of the store's own exceptions; never raised itself."""


class StoreUnavailable(StoreError):
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


class StoreClosed(StoreError, RuntimeError):
    """The store was used after :meth:`~consentgate.store.ConsentStore.close`.

    Every method but ``close`` and ``current_counter`` raises it from then on. Also a
    :class:`RuntimeError`, which is what a closed store raised before this class
    existed, so a caller written against that keeps working.
    """

    def __init__(self, message: str = "the consent store is closed") -> None:
        super().__init__(message)


def upgraded_past(where: str, found: int, known: int) -> StoreUnavailable:
    """The store at ``where`` was migrated to schema ``found`` by a newer consentgate
    while this one (schema ``known``) had it open: its statements were written for a
    schema that is gone, so it answers nothing more until restarted (fail closed)."""
    return StoreUnavailable(
        f"the consent store {where} was upgraded by a newer consentgate (schema version "
        f"{found}; this one knows {known}); restart the gate with the newer version",
        "upgraded",
    )
