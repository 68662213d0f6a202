"""Writes that a closing store waits for.

A backend runs each write as its own task, shielded from the caller's cancellation
(a person who closes the tab must not leave an approval half written: docs/store.md),
and ``close()`` waits for every such task before it closes its connections. One
helper for both backends, so the rule is written once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

T = TypeVar("T")


class TrackedWork:
    """The write tasks still running; :meth:`start` one, :meth:`wait` for all."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def start(self, work: Awaitable[T]) -> asyncio.Task[T]:
        """Run ``work`` as a task that :meth:`wait` will wait for."""
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._forget)
        return task

    async def wait(self) -> None:
        """Until every started task has ended (their errors are their callers')."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _forget(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: a caller that was cancelled never will
