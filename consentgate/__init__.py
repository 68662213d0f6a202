"""consentgate: a consent gate in front of single-client OAuth proxies.

A single-client OAuth proxy forwards every dynamically registered client to the
third-party IdP under one fixed client_id, so the IdP may skip its consent screen
and an attacker's client can receive a victim's authorization code (the MCP
"confused deputy" problem). consentgate relays all traffic, but asks the person
before an unapproved client's authorization request reaches the proxy, and binds
the upstream flow to the browser that approved it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from consentgate.core.signed.keyring import KeyRing
    from consentgate.core.signed.records import ClientRecord, ConsentRecord
    from consentgate.signing.key_directory import load_keyring
    from consentgate.store import ConsentStore

__version__ = "0.2.0.dev0"

__all__ = [
    "ClientRecord",
    "ConsentRecord",
    "ConsentStore",
    "KeyRing",
    "__version__",
    "load_keyring",
]

# The library names are imported on first use (PEP 562), so ``consentgate --version``
# and ``check-config`` do not load aiosqlite and cryptography.
_LAZY = {
    "ClientRecord": "consentgate.core.signed.records",
    "ConsentRecord": "consentgate.core.signed.records",
    "ConsentStore": "consentgate.store",
    "KeyRing": "consentgate.core.signed.keyring",
    "load_keyring": "consentgate.signing.key_directory",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib  # noqa: PLC0415 - only on first use

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
