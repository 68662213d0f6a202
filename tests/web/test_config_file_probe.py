"""readyz's configuration-file check: probes that arrive together share one read."""

from __future__ import annotations

import asyncio
import threading
from typing import cast

from consentgate.config.loading import ConfigError
from consentgate.config.model import Config
from consentgate.web.config_file_probe import CONFIG_FILE_WARNING, ConfigFileProbe


async def test_probes_that_arrive_together_share_one_read_of_the_file() -> None:
    reads = 0
    release = threading.Event()
    config = cast(Config, object())  # what the loader returns is not read by the probe

    def source() -> Config:
        nonlocal reads
        reads += 1
        release.wait(5)
        return config

    probe = ConfigFileProbe()
    waiting = [asyncio.ensure_future(probe.check(source)) for _ in range(50)]
    await asyncio.sleep(0.05)
    release.set()
    assert await asyncio.gather(*waiting) == [None] * 50
    assert reads == 1
    assert await probe.check(source) is None  # the next probe reads again
    assert reads == 2


async def test_a_file_that_does_not_load_is_a_warning_until_it_loads_again() -> None:
    config = cast(Config, object())  # what the loader returns is not read by the probe
    broken = True

    def source() -> Config:
        if broken:
            raise ConfigError(["gate.toml: not valid TOML"])
        return config

    probe = ConfigFileProbe()
    assert await probe.check(source) == CONFIG_FILE_WARNING
    broken = False
    assert await probe.check(source) is None
