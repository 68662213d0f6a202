"""What a reload (SIGHUP) does, registered by each resource that can reload.

The signal handler knows nothing about the store or the keys: a resource opened
in a ``cleanup_ctx`` registers its own reload here while it is open, and removes
it when it closes. A reload that fails says so in its own log line and keeps
what was in use; one failing hook does not keep the others from running.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

_log = logging.getLogger("consentgate")

Hook = Callable[[], None]


class ReloadHooks:
    def __init__(self) -> None:
        self._hooks: list[Hook] = []

    def add(self, hook: Hook) -> None:
        self._hooks.append(hook)

    def remove(self, hook: Hook) -> None:
        self._hooks.remove(hook)

    def run(self) -> None:
        for hook in tuple(self._hooks):
            try:
                hook()
            except Exception:
                _log.exception("a reload failed; what was in use stays in use")
