"""The SQLite backend of the consent store: schema, file checks, queries, invalidation."""

from consentgate.store.sqlite.backend import SQLiteBackend

__all__ = ["SQLiteBackend"]
