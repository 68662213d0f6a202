"""Every module of consentgate.clients is either a pure rule or one of the I/O modules,
as pyproject.toml's import-linter contracts list them: a new module cannot slip out of
the purity contract unnoticed."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import consentgate.clients

ROOT = Path(__file__).resolve().parents[2]
PURE = "The client rules are pure"
IO = "The document fetcher is asyncio and llhttp"


def contract(name_start: str) -> dict[str, Any]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    (found,) = [
        c for c in data["tool"]["importlinter"]["contracts"] if c["name"].startswith(name_start)
    ]
    assert isinstance(found, dict)
    return found


def test_every_clients_module_is_listed_as_pure_or_as_doing_io() -> None:
    package = Path(consentgate.clients.__file__).parent
    modules = {
        f"consentgate.clients.{path.stem}"
        for path in package.glob("*.py")
        if path.stem != "__init__"
    }
    pure = set(contract(PURE)["source_modules"])
    io = set(contract(IO)["source_modules"])
    assert pure.isdisjoint(io)
    assert modules == pure | io


def test_the_pure_rules_may_not_import_the_io_modules() -> None:
    forbidden = set(contract(PURE)["forbidden_modules"])
    assert set(contract(IO)["source_modules"]) <= forbidden
    assert {"asyncio", "socket", "ssl", "httptools", "aiohttp"} <= forbidden
