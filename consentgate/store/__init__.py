"""The consent store: signed records kept by a backend, SQLite (a file) or PostgreSQL
(several gates); its public API is :class:`ConsentStore` and the errors below
(docs/store.md)."""

from consentgate.store import store_errors as errors  # noqa: F401 - store.errors, as before
from consentgate.store.facade import (
    ConsentStore,
    VerificationFailure,
    VerificationReport,
)
from consentgate.store.store_errors import StoreClosed, StoreError, StoreUnavailable

__all__ = [
    "ConsentStore",
    "StoreClosed",
    "StoreError",
    "StoreUnavailable",
    "VerificationFailure",
    "VerificationReport",
]
