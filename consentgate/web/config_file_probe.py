"""Whether the configuration file on disk would load at the next restart (``readyz``).

``readyz`` is public, and this check reads the file, its secret files and the
environment in a thread and parses them all: probes that arrive together share one
read in flight instead of a thread and a parse each, so a flood of probes costs the
gate one read at a time. Each problem is logged once, until the file loads again.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Final

from consentgate.config.loading import ConfigError
from consentgate.config.reload_rules import ConfigSource

log = logging.getLogger("consentgate")

#: ``readyz``'s warning while the configuration file on disk does not load.
CONFIG_FILE_WARNING: Final = (
    "configuration: the file on disk does not load, so a restart would fail (the log says why)"
)


class ConfigFileProbe:
    """One read of the configuration file in flight at a time, its problems logged once."""

    def __init__(self) -> None:
        self._logged: set[str] = set()
        self._reading: asyncio.Task[str | None] | None = None

    async def check(self, source: ConfigSource) -> str | None:
        """None when ``source`` loads, else :data:`CONFIG_FILE_WARNING`; a probe that
        arrives while a read is in flight gets that read's answer."""
        if self._reading is None:
            self._reading = asyncio.ensure_future(self._read(source))
            self._reading.add_done_callback(self._done)
        # One probe that goes away does not cancel the read the others wait for.
        return await asyncio.shield(self._reading)

    def _done(self, task: asyncio.Task[str | None]) -> None:
        self._reading = None
        if not task.cancelled():
            task.exception()  # retrieved: every waiter may have gone away

    async def _read(self, source: ConfigSource) -> str | None:
        try:
            await asyncio.to_thread(source)
        except ConfigError as exc:
            for problem in exc.problems:
                if problem not in self._logged:
                    self._logged.add(problem)
                    log.warning(
                        "the configuration file on disk does not load; a restart would fail",
                        extra={"fields": {"problem": problem}},
                    )
            return CONFIG_FILE_WARNING
        self._logged.clear()
        return None
