"""Deadlines for the relay's waits, one timer each, as ``asyncio.timeout`` would set.

The response headers must arrive within ``upstream.read_timeout`` after the request
body was sent (:class:`HeaderDeadline`); a body that is not an event stream may pause
at most that long between two chunks, and a request body at most
``server.body_timeout`` (:class:`IdleDeadline`). No total timeout: an event stream
lasts as long as it lasts (docs/references.md, "Proxy correctness").
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class TaskDeadline:
    """What ``asyncio.timeout`` does for the current task, with the loop known in
    advance: a timer cancels the task when the deadline passes, and that cancellation,
    if it is the only one, leaves the ``with`` block as ``TimeoutError``; any other
    cancellation (the client went away, the shutdown) stays a ``CancelledError``.

    ``asyncio.timeout`` looks the loop up twice and the task once, in Python, on every
    use (on Python 3.11 each loop lookup is a ``getpid`` system call; 3 % of the
    relay's profile). Subclasses say when the deadline is (:meth:`_arm`).
    """

    __slots__ = ("_cancelling", "_done", "_expired", "_handle", "_loop", "_task")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        task = asyncio.current_task(loop)
        if task is None:  # pragma: no cover - handlers always run in a task
            raise RuntimeError("a deadline needs a task")
        self._loop = loop
        self._task = task
        self._cancelling = task.cancelling()
        self._handle: asyncio.TimerHandle | None = None
        self._expired = False
        self._done = False

    def _arm(self, when: float, callback: Callable[[], None]) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._handle = self._loop.call_at(when, callback)

    def _expire(self) -> None:
        self._handle = None
        self._expired = True
        self._task.cancel()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> None:
        self._done = True
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if (
            self._expired
            and self._task.uncancel() <= self._cancelling
            and exc_type is asyncio.CancelledError
        ):
            raise TimeoutError from exc


class HeaderDeadline(TaskDeadline):
    """``asyncio.timeout_at`` (see :class:`TaskDeadline`). ``reschedule`` after the
    deadline passed or after the block ended does nothing."""

    __slots__ = ()

    def __init__(self, loop: asyncio.AbstractEventLoop, when: float | None) -> None:
        super().__init__(loop)
        if when is not None:
            self.reschedule(when)

    def reschedule(self, when: float) -> None:
        if not (self._expired or self._done):
            self._arm(when, self._expire)

    def __enter__(self) -> HeaderDeadline:
        return self


class IdleDeadline(TaskDeadline):
    """A pause of ``idle`` seconds in one wait for the upstream's body ends the body.

    What ``async with asyncio.timeout(idle)`` around each wait did, with one timer for
    the whole body instead of one per wait (a 1 MiB response waits 16-30 times).
    Only time spent *waiting for the upstream* counts: a write the client is slow to
    take never expires it (see :class:`TaskDeadline` for how it ends the block).
    """

    __slots__ = ("_idle", "_wait_started")

    def __init__(self, loop: asyncio.AbstractEventLoop, idle: float) -> None:
        super().__init__(loop)
        self._idle = idle
        #: When the current wait began; None while not waiting for the upstream.
        self._wait_started: float | None = None

    def waiting(self) -> None:
        """A wait for the upstream begins (the timer is armed at the first)."""
        now = self._loop.time()
        self._wait_started = now
        if self._handle is None and not self._expired:
            self._arm(now + self._idle, self._check)

    def done_waiting(self) -> None:
        self._wait_started = None

    def _check(self) -> None:
        self._handle = None
        if self._done:
            return
        started = self._wait_started
        now = self._loop.time()
        if started is None:  # not waiting now: look again one idle period from now
            self._arm(now + self._idle, self._check)
        elif now < started + self._idle:
            self._arm(started + self._idle, self._check)
        else:
            self._expire()

    def __enter__(self) -> IdleDeadline:
        return self
