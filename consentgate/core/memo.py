"""Bounded memory for pure functions of a short text, on the hot path.

A client sends the same redirect_uri, scope and peer address on every request, and
parsing them (percent-decoding, IDNA, ``ipaddress``) costs microseconds each time.
:func:`remembered` keeps the answers in a bounded LRU; a longer text is never kept
(an attacker's 2 KB values cannot crowd the memory), and a refusal (an exception) is
not remembered. Only for pure functions: same text, same answer. Pure module.

``keep`` says which answers may be kept at all: the access log remembers the logged
form of a request target only when nothing in it was redacted, so a target holding
a code or a token is never kept in memory after its line is written.
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Final, TypeVar, overload

_T = TypeVar("_T")

#: Entries of each function's LRU.
ENTRIES: Final = 1024


@overload
def remembered(longest: int) -> Callable[[Callable[[str], _T]], Callable[[str], _T]]: ...


@overload
def remembered(
    longest: int, *, keep: Callable[[str, _T], bool]
) -> Callable[[Callable[[str], _T]], Callable[[str], _T]]: ...


def remembered(
    longest: int, *, keep: Callable[[str, Any], bool] | None = None
) -> Callable[[Callable[[str], _T]], Callable[[str], _T]]:
    """``func`` with its answers for texts of at most ``longest`` characters remembered;
    with ``keep``, only the answers for which ``keep(text, answer)`` is true."""

    def wrap(func: Callable[[str], _T]) -> Callable[[str], _T]:
        if keep is None:
            cached = functools.lru_cache(maxsize=ENTRIES)(func)

            @functools.wraps(func)
            def call(text: str) -> _T:
                return cached(text) if len(text) <= longest else func(text)

            return call
        return _kept_when(func, longest, keep)

    return wrap


def _kept_when(
    func: Callable[[str], _T], longest: int, keep: Callable[[str, _T], bool]
) -> Callable[[str], _T]:
    """The LRU of :func:`remembered` by hand (``functools.lru_cache`` keeps every
    answer). For the event loop's thread: the ordered dict has no lock."""
    memory: OrderedDict[str, _T] = OrderedDict()

    @functools.wraps(func)
    def call(text: str) -> _T:
        if len(text) > longest:
            return func(text)
        if text in memory:  # not a KeyError caught: some texts miss every time
            memory.move_to_end(text)
            return memory[text]
        answer = func(text)
        if keep(text, answer):
            memory[text] = answer
            if len(memory) > ENTRIES:
                memory.popitem(last=False)
        return answer

    return call
