"""What one audit-log line costs, in this process: ``python bench/audit_line_bench.py``.

``serve`` writes the ``consentgate.audit`` line of every decision without a
``logging`` record (``DirectLines``). It used to write each line
at once, one ``write`` and one ``flush`` per line (~6.5 % of a remembered
``/authorize``); it now writes the lines of one event-loop iteration together. This
runs both in the same process, the per-line writer reproduced below as the baseline,
for the line of a remembered ``/authorize`` (``consent_silent``):

* to a stream that drops what it is given (the CPU of making the line and of the
  calls), and to ``/dev/null`` (a ``write`` system call per flush, as on stderr;
  the cheapest there is, a pipe to journald costs more);
* with 1, 8 and 64 lines per loop iteration: one under light load, several when an
  iteration handles several requests. The batched writer's ``call_soon`` is counted
  (an ``asyncio.Handle`` made and queued per batch, as the loop's ``call_soon`` does).
"""

from __future__ import annotations

import asyncio
import functools
import io
import logging
import os
import time
import timeit
from collections.abc import Callable
from typing import Any, TextIO

from consentgate.audit.decisions import ConsentSilent
from consentgate.audit.events import direct_sink
from consentgate.logs.formatters import Timestamps, text_line
from consentgate.logs.line_writers import DirectLines
from consentgate.logs.loggers import AUDIT, configure_logging

NUMBER = 50_000

#: The event of a remembered ``/authorize``, as the gate emits it.
EVENT = ConsentSilent(
    request_id="0123456789abcdef",
    reason="remembered",
    client_id="mcp-client-7",
    redirect_uri="http://127.0.0.1:33418/callback",
    subject="b3f1c2d4e5a6978899aabbccddeeff00",
    client_kind="registered",
    upstream_status=302,
    bound=True,
)


class Dropped(io.StringIO):
    """A text stream that keeps nothing (a ``StringIO`` would grow through the run)."""

    def write(self, text: str) -> int:
        return len(text)


class PerLine:
    """The writer before this change, as it was: the level asked of ``logging`` by
    name, the line made, then written and flushed on its own."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._time = Timestamps()

    def write(self, logger: str, level: int, message: str, fields: dict[str, Any]) -> None:
        if not logging.getLogger(logger).isEnabledFor(level):
            return
        stamp = self._time(time.time())
        line = text_line(stamp, logging.getLevelName(level), logger, message, fields)
        try:
            self._stream.write(line + "\n")
            self._stream.flush()
        except (OSError, ValueError):
            pass


def per_line(stream: TextIO) -> Callable[[int], None]:
    """``lines`` audit lines, each written at once."""
    writer = PerLine(stream)

    def run(lines: int) -> None:
        for _ in range(lines):
            writer.write(AUDIT, logging.INFO, EVENT.message, EVENT.as_fields())

    return run


def batched(stream: TextIO, loop: asyncio.AbstractEventLoop) -> Callable[[int], None]:
    """``lines`` audit lines in one loop iteration, then the flush the iteration runs."""
    ready: list[asyncio.Handle] = []
    lines_ = DirectLines(stream, lambda callback: ready.append(asyncio.Handle(callback, (), loop)))
    sink = direct_sink(lines_)

    def run(lines: int) -> None:
        for _ in range(lines):
            sink(EVENT)
        lines_.flush()  # what the queued handle runs at the end of the iteration
        ready.clear()

    return run


def per_audit_line(
    before: Callable[[int], None], after: Callable[[int], None], lines: int
) -> tuple[float, float]:
    """Microseconds per line of each, the best of seven repeats taken in turns (a
    neighbour's burst on a shared machine then hits both, not one)."""
    rounds = max(1, NUMBER // lines)
    best = [float("inf"), float("inf")]
    for _ in range(7):
        for index, run in enumerate((before, after)):
            seconds = timeit.timeit(functools.partial(run, lines), number=rounds)
            best[index] = min(best[index], seconds / (rounds * lines) * 1e6)
    return best[0], best[1]


def main() -> int:
    configure_logging(stream=io.StringIO())
    loop = asyncio.new_event_loop()
    print(
        f"one audit line (consent_silent), µs per line (best of 7 x {NUMBER:,} lines, in turns; "
        f"{time.strftime('%Y-%m-%d')})"
    )
    print(f"{'stream, lines per iteration':<34} {'per line':>9} {'batched':>9} {'ratio':>7}")
    with open(os.devnull, "w", encoding="utf-8") as devnull:
        streams: tuple[tuple[str, TextIO], ...] = (("dropped", Dropped()), ("/dev/null", devnull))
        for name, stream in streams:
            for lines in (1, 8, 64):
                before, after = per_audit_line(per_line(stream), batched(stream, loop), lines)
                label = f"{name}, {lines}"
                print(f"{label:<34} {before:9.2f} {after:9.2f} {before / after:7.2f}")
    loop.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
