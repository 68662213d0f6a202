"""The consent store schema versions this consentgate writes, as plain numbers, and the
rule of which code runs on which schema.

``consentgate --version`` names them so an operator can tell which releases may open
a store: a gate opens a store of its own schema, migrates an older one forward
(``consentgate migrate``, and ``serve`` at start), and opens a newer one only when the
newer schema still runs this code (below). They live here, apart from the migrations
(``store/sqlite/sqlite_schema.py``, ``store/postgres/postgres_schema.py``, where each is
the number of migrations), so that printing them loads no database driver; a test
keeps both places equal.

Compatibility levels (docs/store.md, "Two versions on one store"). Each schema version
declares the oldest schema version whose code still runs correctly on it, its
*compatible from*: an additive migration (a new table, a new index) keeps the code of
the version before it working, and the gates of that code keep serving while a newer
one migrates under them, so a rolling restart through it needs no stop; a breaking
one (a table whose meaning changed) declares itself, and the gates of older code stop
answering. So an additive version takes the level of the version before it (whatever
code ran on that still runs), a breaking one its own number. The level is a promise
both ways: the older code runs on the newer schema, and the newer code tolerates what
the older one writes while both run. The store
records the level next to its version when it migrates, so that a gate meeting a
newer store reads the promise of the code that wrote it, not its own guess. Versions
made before the levels were recorded declare their own number (their code never
asked, and no gate of theirs announces itself).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

SQLITE_SCHEMA: Final = 8
POSTGRES_SCHEMA: Final = 6

#: Per schema version (index 0 is version 1), the oldest version whose code runs on it.
#: SQLite 7 (the table of attached gates) is additive: the code of 6 runs on it; so is
#: SQLite 8 (the first sightings of clients named by a URL): the code of 6 runs on it.
SQLITE_COMPATIBLE_FROM: Final[tuple[int, ...]] = (1, 2, 3, 4, 5, 6, 6, 6)
#: PostgreSQL 5 (the table of attached gates, the level column) is additive, and so is
#: PostgreSQL 6 (the first sightings of clients named by a URL).
POSTGRES_COMPATIBLE_FROM: Final[tuple[int, ...]] = (1, 2, 3, 4, 4, 4)


def compatible_from(levels: Sequence[int], version: int) -> int:
    """The oldest schema version whose code runs on schema ``version``, from ``levels``
    (one entry per version, version 1 first)."""
    if not 1 <= version <= len(levels):
        raise ValueError(f"no compatibility level is known for schema version {version}")
    return levels[version - 1]


def runs_on(own: int, store: int, store_compatible_from: int | None) -> bool:
    """Whether code of schema ``own`` may use a store of schema ``store``, whose level
    (as the store records it) is ``store_compatible_from``. An older or equal store
    is this code's to migrate; a newer one only when it promises to keep ``own``
    working. A newer store that records no level promises nothing: refused (fail
    closed), as every newer store was before the levels existed."""
    if store <= own:
        return True
    return store_compatible_from is not None and store_compatible_from <= own
