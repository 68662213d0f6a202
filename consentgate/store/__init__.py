"""The consent store: signed records in SQLite (see docs/store.md)."""

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
