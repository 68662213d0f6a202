"""The PostgreSQL backend of the consent store (asyncpg): several gates, one store.

``pip install 'consentgate[postgres]'``; docs/store.md, "PostgreSQL". Only this package
imports asyncpg, and nothing imports it unless a PostgreSQL store is opened.
"""

from consentgate.config.dsn import describe, mask_password
from consentgate.store.postgres.postgres_backend import PostgresBackend
from consentgate.store.postgres.postgres_schema import migrate

__all__ = ["PostgresBackend", "describe", "mask_password", "migrate"]
