"""What the gate has in flight: how many requests, and the streamed responses a
shutdown may have to cut.

``server.shutdown_grace`` is the whole time from the stop signal to exit:
aiohttp's own shutdown waits its timeout for handlers, then cancels them and
waits the timeout again, about twice the number it is given. So the gate drains
by itself (:mod:`consentgate.serving.shutdown`): it waits for the requests counted
here, and when the grace is nearly spent it cuts each open stream, which then ends
as cleanly as its framing allows, rather than being torn off by a cancellation
somewhere in aiohttp.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass
class Sending:
    """How far one response got: whether its headers left, the body bytes written,
    and whether the shutdown cut it."""

    status: int = 0
    started: bool = False
    sent: int = 0
    cut: bool = False


class InFlight:
    """Requests being handled, and the streaming tasks among them."""

    def __init__(self) -> None:
        self.requests = 0
        self.stopping = False
        self._streams: dict[asyncio.Task[object], Sending] = {}
        self._idle = asyncio.Event()
        self._idle.set()

    def enter(self) -> None:
        self.requests += 1
        self._idle.clear()

    def leave(self) -> None:
        self.requests -= 1
        if self.requests <= 0:
            self.requests = 0
            self._idle.set()

    async def wait_idle(self, seconds: float) -> bool:
        """Wait until no request is in flight, at most ``seconds``; whether it is."""
        if seconds > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), seconds)
        return self._idle.is_set()

    @contextlib.contextmanager
    def streaming(self, sending: Sending) -> Iterator[None]:
        """Register the current task as sending a stream the shutdown may cut."""
        task = asyncio.current_task()
        if task is None:  # pragma: no cover - handlers always run in a task
            yield
            return
        self._streams[task] = sending
        try:
            yield
        finally:
            self._streams.pop(task, None)

    @property
    def streams(self) -> int:
        return len(self._streams)

    def cut_streams(self) -> int:
        """Mark every open stream cut and cancel its task; the relay ends it. How many."""
        cut = 0
        for task, sending in list(self._streams.items()):
            if not sending.cut and not task.done():
                sending.cut = True
                task.cancel()
                cut += 1
        return cut
