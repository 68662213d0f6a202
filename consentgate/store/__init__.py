"""The consent store: signed records kept by a backend (SQLite ships; see docs/store.md)."""

from consentgate.store.facade import (
    ConsentStore,
    PendingFull,
    PendingRow,
    VerificationFailure,
    VerificationReport,
)

__all__ = [
    "ConsentStore",
    "PendingFull",
    "PendingRow",
    "VerificationFailure",
    "VerificationReport",
]
