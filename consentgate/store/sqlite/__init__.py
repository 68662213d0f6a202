"""The SQLite backend of the consent store: schema, file checks, queries, invalidation."""

from consentgate.store.sqlite.sqlite_backend import SQLiteBackend

__all__ = ["SQLiteBackend"]
