"""Once the gate listens, what it built is frozen out of the cyclic collector's way
and young collections run less often (serving/gc_tuning.py; docs/performance.md)."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from consentgate.serving import server
from consentgate.serving.gc_tuning import GEN0_THRESHOLD, settle_garbage_collector
from tests.conftest import make_config

#: serve changes the consentgate logger: put back after each test.
pytestmark = pytest.mark.usefixtures("restore_logging")


@pytest.fixture(autouse=True)
def restore_gc() -> Iterator[None]:
    """The settings are the process's: the tests that follow get Python's back."""
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def test_settling_freezes_what_exists_and_raises_only_the_young_threshold() -> None:
    gc.unfreeze()
    _, gen1, gen2 = gc.get_threshold()
    survivor = [object()]
    assert any(o is survivor for o in gc.get_objects())
    settle_garbage_collector()
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == (GEN0_THRESHOLD, gen1, gen2)
    # Frozen: out of every generation a collection walks.
    assert not any(o is survivor for o in gc.get_objects())


async def test_the_gate_freezes_and_raises_the_threshold_once_it_listens(
    tmp_path: Path,
) -> None:
    gc.unfreeze()
    gc.set_threshold(700, 10, 10)
    seen: list[tuple[int, tuple[int, int, int]]] = []

    def listening() -> None:
        seen.append((gc.get_freeze_count(), gc.get_threshold()))
        # Once serve has set its handlers (right after this call): a graceful stop.
        asyncio.get_running_loop().call_soon(os.kill, os.getpid(), signal.SIGTERM)

    config = make_config(tmp_path, "http://127.0.0.1:9", server={"listen": "127.0.0.1:0"})
    await asyncio.wait_for(server.serve(config, listening=listening), 30)
    ((frozen, thresholds),) = seen
    assert frozen > 0
    assert thresholds == (GEN0_THRESHOLD, 10, 10)
