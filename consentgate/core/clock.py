"""The time source every expiry decision reads, injectable so tests need no sleeping.

Consent records, pending consent pages and flow bindings all expire. Reading the
time through one injected callable (instead of calling ``time.time()`` inside the
store) lets a test move time forward by an hour in a microsecond and check the
boundaries exactly, the "injected clock" habit of STYLE.md.

The store converts the value to integer unix seconds (``int(clock())``): records
carry whole seconds, which is what the canonical encoding signs.
"""

from __future__ import annotations

import time
from collections.abc import Callable

#: Returns the current time as unix seconds (fractions allowed).
Clock = Callable[[], float]


def system_clock() -> float:
    """The wall clock: ``time.time()``."""
    return time.time()
