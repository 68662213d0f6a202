"""The backend protocol as written down: every backend implements all of it, with the
same parameters; docs/store.md documents every method; and the store itself loads
no database driver until a store is opened on one (SQLite's or PostgreSQL's)."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest

from consentgate.store.postgres import PostgresBackend
from consentgate.store.postgres.postgres_backend import _Transaction as PostgresTransaction
from consentgate.store.protocol import StoreBackend, StoreTransaction
from consentgate.store.sqlite import SQLiteBackend
from consentgate.store.sqlite.sqlite_backend import _Transaction as SQLiteTransaction

REPO = Path(__file__).resolve().parents[2]

#: Every backend and its transaction class; a new backend adds its pair here.
IMPLEMENTATIONS: list[tuple[type[object], type[object]]] = [
    (SQLiteBackend, SQLiteTransaction),
    (PostgresBackend, PostgresTransaction),
]


def members(protocol: type[object]) -> dict[str, object]:
    """The protocol's own methods and properties, by name."""
    return {
        name: value
        for name, value in vars(protocol).items()
        if not name.startswith("_") and (callable(value) or isinstance(value, property))
    }


def test_the_protocols_are_not_empty() -> None:
    assert {"transaction", "current_counter", "count_pending", "use_binding"} <= set(
        members(StoreBackend)
    )
    assert {"change_counter", "active_consents", "put_client"} <= set(members(StoreTransaction))


@pytest.mark.parametrize(("backend", "transaction"), IMPLEMENTATIONS)
def test_a_backend_implements_every_method_with_the_protocols_parameters(
    backend: type[object], transaction: type[object]
) -> None:
    for protocol, implementation in ((StoreBackend, backend), (StoreTransaction, transaction)):
        for name, wanted in members(protocol).items():
            if isinstance(wanted, property):
                continue  # an attribute set in __init__ satisfies a read-only property
            assert callable(wanted)
            have = getattr(implementation, name, None)
            assert have is not None, f"{implementation.__name__} lacks {name}"
            assert inspect.iscoroutinefunction(have) == inspect.iscoroutinefunction(wanted), name
            ours = [(p.name, p.kind) for p in inspect.signature(have).parameters.values()]
            theirs = [(p.name, p.kind) for p in inspect.signature(wanted).parameters.values()]
            assert ours == theirs, f"{implementation.__name__}.{name}"


def test_the_backends_section_of_the_docs_names_every_protocol_method() -> None:
    text = (REPO / "docs" / "store.md").read_text(encoding="utf-8")
    match = re.search(r"^## Backends\n(.*?)^## ", text, re.DOTALL | re.MULTILINE)
    assert match is not None
    section = match.group(1)
    for protocol in (StoreBackend, StoreTransaction):
        for name in members(protocol):
            assert re.search(rf"^\| `{name}[(` ]", section, re.MULTILINE), name


def test_importing_the_store_loads_no_database_driver() -> None:
    """Only ``ConsentStore.open`` brings SQLite in, and only opening a PostgreSQL store
    brings asyncpg (import-linter checks the imports; this checks what gets loaded)."""
    code = (
        "import sys\n"
        "import consentgate.store, consentgate.store.facade, consentgate.store.cache\n"
        "drivers = ('sqlite3', '_sqlite3', 'aiosqlite', 'asyncpg')\n"
        "print(sorted(m for m in drivers if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        check=True,
    )
    assert result.stdout.strip() == "[]"
