"""Bounded memory for pure functions of a short text, on the hot path.

A client sends the same redirect_uri, scope and peer address on every request, and
parsing them (percent-decoding, IDNA, ``ipaddress``) costs microseconds each time.
:func:`remembered` keeps the answers in a bounded LRU; a longer text is never kept
(an attacker's 2 KB values cannot crowd the memory), and a refusal (an exception) is
not remembered. Only for pure functions: same text, same answer. Pure module.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Final, TypeVar

_T = TypeVar("_T")

#: Entries of each function's LRU.
ENTRIES: Final = 1024


def remembered(longest: int) -> Callable[[Callable[[str], _T]], Callable[[str], _T]]:
    """``func`` with its answers for texts of at most ``longest`` characters remembered."""

    def wrap(func: Callable[[str], _T]) -> Callable[[str], _T]:
        cached = functools.lru_cache(maxsize=ENTRIES)(func)

        @functools.wraps(func)
        def call(text: str) -> _T:
            return cached(text) if len(text) <= longest else func(text)

        return call

    return wrap
