"""Time every store operation, for the operators' histogram.

:meth:`ConsentStore.time_operations` wraps the backend in :class:`TimedBackend`: each
coroutine of the backend protocol reports its name and duration to a callback (the
gate's ``consentgate_store_operation_seconds{operation}``), whether it succeeded or
failed. Synchronous methods are handed through untouched, so the hot path of a
cached answer (``current_counter``, a local check of a few microseconds) pays
nothing; only a real round trip to the database is timed.

The label is the method name: a closed set (the protocol's few dozen methods), never
a value from a request. Pure module: no aiohttp, no prometheus import.
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

from consentgate.store.protocol import StoreBackend

T = TypeVar("T")
Observe = Callable[[str, float], None]


def _timed(name: str, method: Callable[..., Awaitable[T]], observe: Observe) -> Any:
    @functools.wraps(method)
    async def timed(*args: Any, **kwargs: Any) -> T:
        started = time.perf_counter()
        try:
            return await method(*args, **kwargs)
        finally:
            observe(name, time.perf_counter() - started)

    return timed


class TimedBackend:
    """``backend`` with each protocol coroutine timed (see the module docstring)."""

    def __init__(self, backend: StoreBackend, observe: Observe) -> None:
        self._backend = backend
        for name, declared in inspect.getmembers(StoreBackend):
            if name.startswith("_") or isinstance(declared, property):
                continue
            method = getattr(backend, name)
            if inspect.iscoroutinefunction(declared):
                method = _timed(name, method, observe)
            # Synchronous methods bound as they are: ``current_counter`` runs before
            # every cached answer and must not pay for an indirection.
            setattr(self, name, method)

    def __getattr__(self, name: str) -> Any:
        # Only what __init__ did not set: the properties (``path``).
        return getattr(self._backend, name)

    @staticmethod
    def wrap(backend: StoreBackend, observe: Observe) -> StoreBackend:
        return cast(StoreBackend, TimedBackend(backend, observe))
