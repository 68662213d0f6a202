"""Every exception the store raises of its own is a StoreError: one ``except`` for a
library user, whatever the backend, and still a distinct class per cause."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import consentgate.store
from consentgate import ConsentStore, KeyRing
from consentgate.store import StoreClosed, StoreError, StoreUnavailable
from tests.store.conftest import StoreDatabase, approve


def store_exception_classes() -> list[type[BaseException]]:
    """Every exception class defined in a module of the consentgate.store package."""
    found: list[type[BaseException]] = []
    for info in pkgutil.walk_packages(consentgate.store.__path__, "consentgate.store."):
        module = importlib.import_module(info.name)
        for _, value in inspect.getmembers(module, inspect.isclass):
            if issubclass(value, BaseException) and value.__module__ == module.__name__:
                found.append(value)
    return found


def test_every_exception_class_of_the_store_is_a_store_error() -> None:
    classes = store_exception_classes()
    assert {StoreUnavailable, StoreClosed} <= set(classes)
    assert [cls for cls in classes if not issubclass(cls, StoreError)] == []


async def test_a_closed_store_raises_store_closed_which_except_store_error_catches(
    database: StoreDatabase, ring: KeyRing
) -> None:
    store: ConsentStore = await database.open(ring)
    await approve(store)
    await store.close()
    for call in (store.list, store.ping, lambda: approve(store, "bob")):
        with pytest.raises(StoreError) as caught:  # one except for every store error
            await call()
        assert isinstance(caught.value, StoreClosed)
        assert str(caught.value) == "the consent store is closed"
        assert isinstance(caught.value, RuntimeError)  # what a closed store raised before
