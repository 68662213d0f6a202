"""The consent store: signed records kept by a backend (SQLite ships; see docs/store.md)."""

from consentgate.store.errors import StoreClosed, StoreError, StoreUnavailable
from consentgate.store.facade import (
    ConsentStore,
    VerificationFailure,
    VerificationReport,
)

__all__ = [
    "ConsentStore",
    "StoreClosed",
    "StoreError",
    "StoreUnavailable",
    "VerificationFailure",
    "VerificationReport",
]
