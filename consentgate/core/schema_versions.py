"""The consent store schema versions this consentgate writes, as plain numbers.

``consentgate --version`` names them so an operator can tell which releases may open
a store: a gate opens a store of its own schema, migrates an older one forward
(``consentgate migrate``, and ``serve`` at start) and refuses a newer one. They live
here, apart from the migrations (``store/sqlite/sqlite_schema.py``,
``store/postgres/postgres_schema.py``, where each is the number of migrations), so
that printing them loads no database driver; a test keeps both places equal.
"""

from __future__ import annotations

from typing import Final

SQLITE_SCHEMA: Final = 6
POSTGRES_SCHEMA: Final = 4
