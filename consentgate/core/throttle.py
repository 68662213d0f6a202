"""At most one log line per kind of trouble per interval.

An outage hits every request: a store that is locked for a minute under load would
otherwise write thousands of identical lines. The first occurrence is
logged at once, later ones at most once per interval, each saying how many were
left out since the last line.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class Throttle:
    def __init__(self, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self._clock = clock
        self._last: dict[str, float] = {}
        self._left_out: dict[str, int] = {}

    def allow(self, key: str) -> int | None:
        """None when a line for ``key`` was written less than ``interval`` ago (this one
        is counted as left out); else how many were left out before this one."""
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last < self.interval:
            self._left_out[key] = self._left_out.get(key, 0) + 1
            return None
        self._last[key] = now
        return self._left_out.pop(key, 0)
