"""What a caller of the store must be ready for besides its answers."""

from __future__ import annotations


class StoreUnavailable(Exception):
    """The store cannot answer now: its database is locked for too long, failing
    (disk I/O, read-only, full), or unreachable (a PostgreSQL server down).

    Raised by a backend in place of its driver's error, with a reason that names no
    secret. The gate fails closed on it: an authorization request is answered 503
    and never relayed, a consent answer or a callback is refused with a page that
    asks to try again; relaying other traffic goes on.
    """
