"""The core is pure: pyproject.toml's import-linter contract forbids the network, the
event loop, the databases and the gate's I/O packages; the standard library's HTTP
clients live in packages the core also uses for parsing (``urllib.parse``), so the
contract cannot name them and this test refuses them."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path
from typing import Any

import consentgate.core

ROOT = Path(__file__).resolve().parents[2]
CONTRACT = "The core is pure"
#: The standard library's own HTTP clients: I/O, whatever module imports them.
HTTP_CLIENTS = frozenset({"urllib.request", "http.client"})
#: Modules on their way out of the core (none now).
LEAVING_THE_CORE: frozenset[str] = frozenset()


def contract() -> dict[str, Any]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    (found,) = [
        c for c in data["tool"]["importlinter"]["contracts"] if c["name"].startswith(CONTRACT)
    ]
    assert isinstance(found, dict)
    return found


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_the_contract_covers_the_whole_core_and_forbids_network_event_loop_and_databases() -> None:
    found = contract()
    assert found["source_modules"] == ["consentgate.core"]
    forbidden = set(found["forbidden_modules"])
    assert {"aiohttp", "yarl", "asyncio", "socket", "ssl", "subprocess", "fcntl"} <= forbidden
    assert {"sqlite3", "aiosqlite", "asyncpg"} <= forbidden
    assert {"consentgate.store", "consentgate.signing", "consentgate.logs"} <= forbidden
    assert {"consentgate.upstream", "consentgate.web", "consentgate.serving"} <= forbidden


def test_no_core_module_imports_the_standard_librarys_http_clients() -> None:
    package = Path(consentgate.core.__file__).parent
    offenders = {
        f"consentgate.core.{'.'.join(path.relative_to(package).with_suffix('').parts)}": sorted(
            imported_modules(path) & HTTP_CLIENTS
        )
        for path in package.rglob("*.py")
    }
    assert {module for module, found in offenders.items() if found} <= LEAVING_THE_CORE
