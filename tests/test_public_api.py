"""The library API that docs/store.md documents survives the package layout."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import consentgate


def test_the_documented_names_import_from_the_top_level_package() -> None:
    from consentgate import ClientRecord, ConsentRecord, ConsentStore, KeyRing, load_keyring
    from consentgate.core.signed.keyring import KeyRing as CoreKeyRing
    from consentgate.signing.key_directory import load_keyring as core_load_keyring
    from consentgate.store import ConsentStore as StoreConsentStore

    assert ConsentStore is StoreConsentStore
    assert KeyRing is CoreKeyRing
    assert load_keyring is core_load_keyring
    assert {ClientRecord.__name__, ConsentRecord.__name__} == {"ClientRecord", "ConsentRecord"}
    assert set(consentgate.__all__) >= {"ConsentStore", "KeyRing", "load_keyring"}


def test_the_store_errors_import_from_the_store_package_under_one_root() -> None:
    import consentgate.store
    from consentgate.store import StoreClosed, StoreError, StoreUnavailable, errors

    assert (StoreError, StoreUnavailable, StoreClosed) == (
        errors.StoreError,
        errors.StoreUnavailable,
        errors.StoreClosed,
    )
    assert issubclass(StoreUnavailable, StoreError)
    assert issubclass(StoreClosed, StoreError)
    assert {"StoreError", "StoreUnavailable", "StoreClosed"} <= set(consentgate.store.__all__)


def test_the_old_keys_module_still_works_and_says_it_moved() -> None:
    sys.modules.pop("consentgate.keys", None)
    with pytest.warns(DeprecationWarning, match=r"consentgate\.keys moved"):
        old = importlib.import_module("consentgate.keys")
    from consentgate import load_keyring

    assert old.load_keyring is load_keyring


def test_an_unknown_top_level_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = consentgate.Nope


def test_the_version_command_loads_neither_the_store_nor_aiohttp() -> None:
    """``--version`` and ``check-config`` stay instant: the heavy modules load on use."""
    code = (
        "import sys; from consentgate.cli import main\n"
        "try:\n    main(['--version'])\nexcept SystemExit:\n    pass\n"
        "heavy = ('aiohttp', 'aiosqlite', 'consentgate.store')\n"
        "print(sorted(m for m in heavy if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip().splitlines()[-1] == "[]"
