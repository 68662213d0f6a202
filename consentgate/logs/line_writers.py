"""The access and audit lines written in batches, without a ``logging`` record each.

The same lines, byte for byte, that the ``consentgate.access`` and ``consentgate.audit``
loggers would write through :func:`~consentgate.logs.loggers.configure_logging`'s
formatter, built straight from the fields and written in one ``write`` and one flush
per batch: the access line is on the path of every request.

A request target is redacted (:func:`~consentgate.core.trust.redact.redact_target`) before
it is written; a target is remembered only when nothing was redacted from it, so a
code or a token is never kept in memory.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any, Final, TextIO

from consentgate.core.memo import remembered
from consentgate.core.trust.redact import REDACTED, redact_target
from consentgate.logs.formatters import Timestamps, quoted_path, text_line, text_value
from consentgate.logs.loggers import ACCESS

#: Request targets longer than this are not remembered (:func:`_logged_target`).
_LONGEST_REMEMBERED_TARGET: Final = 256


def _nothing_redacted(target: str, logged: str) -> bool:
    return REDACTED not in logged


@remembered(_LONGEST_REMEMBERED_TARGET, keep=_nothing_redacted)
def _logged_target(target: str) -> str:
    """A request target as the text line writes it: redacted, then quoted if need be.

    Remembered (a bounded LRU): clients ask for the same few targets (``/mcp``) over
    and over. Never remembered when something was redacted: a target with a code or
    a token in its query is redacted again each time rather than kept in memory
    (a target that says ``[redacted]`` itself is not kept either, which costs only
    time)."""
    return quoted_path(redact_target(target))


#: ``text_value`` of a client address: the same few addresses come back.
_client_text: Final[Callable[[str], str]] = remembered(64)(text_value)


def _milliseconds(seconds: float) -> str:
    """``str(round(seconds * 1000, 2))``, the access line's duration, without ``round``:
    both round the same binary value to two decimals the same way (``_Py_dg_dtoa``),
    and below 10**12 the shortest text of that rounded number is those decimals,
    trailing zeros dropped (one kept after the point)."""
    milliseconds = seconds * 1000
    if -1e12 < milliseconds < 1e12:
        text = f"{milliseconds:.2f}".rstrip("0")
        return text + "0" if text[-1] == "." else text
    return str(round(milliseconds, 2))


#: A text access line waiting in a batch (:meth:`AccessLines.ended`): when it was
#: made, then its values in the line's order, quoted where they need to be.
_PendingRequest = tuple[float, str, str, str, str, int, int, str, str]


def _write_out(stream: TextIO, lines: list[str]) -> None:
    """Write ``lines`` (and empty the list) in one write and one flush; the batches of
    :class:`AccessLines` and :class:`DirectLines` both end here."""
    if not lines:
        return
    text = "\n".join(lines) + "\n"
    lines.clear()
    try:
        stream.write(text)
        stream.flush()
    except (OSError, ValueError):  # a closed or broken stderr: as logging would
        pass


class AccessLines:
    """The access log without a ``logging`` record per request.

    The same line, byte for byte, that the ``consentgate.access`` logger would write
    through :func:`configure_logging`'s formatter, built straight from the fields,
    and written in batches: the first line of a batch schedules one write and flush
    (``schedule``: the event loop's ``call_soon`` for once per loop iteration, or,
    as ``serve`` does, a ``call_later`` of ``ACCESS_FLUSH_SECONDS``), and a batch of
    ``max_lines`` is written at once. :meth:`flush` writes what is left;
    ``serve`` calls it after the shutdown, so no line of a graceful stop is lost.

    A request's text line waits as a tuple of its values and is formatted with the
    others at the flush, in one list comprehension (no call per line): the target is
    redacted at once, so a secret in it does not wait for the flush.

    ``serve`` builds one at start even when ``[log] access_log`` is off, since the
    server takes its access logger once: a reload then switches it on or off and
    changes its format (:meth:`configure`) without a restart.
    """

    def __init__(
        self,
        stream: TextIO,
        schedule: Callable[[Callable[[], None]], object],
        *,
        format: str = "text",
        static: dict[str, Any] | None = None,
        max_lines: int = 256,
        enabled: bool = True,
    ) -> None:
        #: Whether lines are written; read by the access logger for every request.
        self.enabled = enabled
        self._stream = stream
        self._schedule = schedule
        self._json = format == "json"
        self._static = dict(static or {})
        self._max_lines = max_lines
        self._time = Timestamps()
        #: Lines made already (by :meth:`write`), then request lines still to be
        #: formatted: always in this order (a line of :meth:`write` formats those first).
        #: Each list is written at ``max_lines``; together they may hold up to twice that.
        self._lines: list[str] = []
        self._requests: list[_PendingRequest] = []
        self._scheduled = False

    def configure(self, *, format: str, enabled: bool) -> None:
        """A reload: lines already waiting are written first, in the format they were
        made in; the next ones follow ``format``, or none when not ``enabled``."""
        self.flush()
        self._json = format == "json"
        self.enabled = enabled

    def write(self, fields: dict[str, Any], created: float | None = None) -> None:
        if not self.enabled:
            return
        stamp = self._time(time.time() if created is None else created)
        if self._static:
            fields = {**fields, **self._static}
        if self._json:
            document = {"time": stamp, "level": "info", "logger": ACCESS, "message": "request"}
            document.update(fields)
            line = json.dumps(document, default=str, ensure_ascii=False)
        else:
            line = text_line(stamp, "INFO", ACCESS, "request", fields)
        if self._requests:
            self._format_requests()
        self._lines.append(line)
        self._added(len(self._lines))

    def request(
        self,
        *,
        request_id: str,
        client: str,
        method: str,
        path: str,
        status: int,
        sent: int,
        duration_ms: float,
        upstream_ms: float | None,
    ) -> None:
        """The access line of one request, its ``path`` already redacted: :meth:`write`
        of the same fields (in the order of :func:`~consentgate.web.access.access_fields`)."""
        if not self.enabled:
            return
        if self._json or self._static:
            self.write(
                {
                    "request_id": request_id,
                    "client": client,
                    "method": method,
                    "path": path,
                    "status": status,
                    "bytes": sent,
                    "duration_ms": duration_ms,
                    "upstream_ms": upstream_ms,
                }
            )
            return
        self._requests.append(
            (
                time.time(),
                text_value(request_id),
                _client_text(client),
                method,
                quoted_path(path),
                status,
                sent,
                str(duration_ms),
                str(upstream_ms),
            )
        )
        self._added(len(self._requests))

    def ended(  # noqa: PLR0917 - the hot path: positional arguments are cheaper
        self,
        request_id: str,
        client: str,
        method: str,
        target: str,
        status: int,
        sent: int,
        seconds: float,
        upstream_seconds: float | None,
    ) -> None:
        """:meth:`request` from what the server has at the end of a request: the raw
        ``target`` (redacted here) and the times in seconds.

        The hot path, every request takes it (at most 5 µs of CPU for a
        text line, the ``AccessLogger.log`` around it included), hence the positional
        arguments, the remembered targets (:func:`_logged_target`), the milliseconds
        written without a ``round`` (:func:`_milliseconds`), the line formatted at
        the flush and the batch bookkeeping in line. The request id (hex or a checked
        ``X-Request-Id``) and an address never need quotes, but that is checked
        (cheaply); an HTTP method token never needs them."""
        if not self.enabled:
            return
        if self._json or self._static:
            self.request(
                request_id=request_id,
                client=client,
                method=method,
                path=redact_target(target),
                status=status,
                sent=sent,
                duration_ms=round(seconds * 1000, 2),
                upstream_ms=None if upstream_seconds is None else round(upstream_seconds * 1000, 2),
            )
            return
        requests = self._requests
        requests.append(
            (
                time.time(),
                request_id if request_id.isalnum() else text_value(request_id),
                _client_text(client),
                method,
                _logged_target(target),
                status,
                sent,
                _milliseconds(seconds),
                "None" if upstream_seconds is None else _milliseconds(upstream_seconds),
            )
        )
        if not self._scheduled:
            self._scheduled = True
            self._schedule(self.flush)
        if len(requests) >= self._max_lines:
            self.flush()

    def _added(self, waiting: int) -> None:
        """After a line was added to a list that now holds ``waiting``: the first line
        of a batch schedules its flush, a full list is written at once (as :meth:`ended`
        does in line)."""
        if not self._scheduled:
            self._scheduled = True
            self._schedule(self.flush)
        if waiting >= self._max_lines:
            self.flush()

    def _format_requests(self) -> None:
        """The waiting request lines, formatted, after the lines made before them."""
        stamp = self._time
        self._lines += [
            f"{stamp(created)} INFO    {ACCESS} request request_id={request_id} "
            f"client={client} method={method} path={path} status={status} bytes={sent} "
            f"duration_ms={duration_ms} upstream_ms={upstream_ms}"
            for (
                created,
                request_id,
                client,
                method,
                path,
                status,
                sent,
                duration_ms,
                upstream_ms,
            ) in self._requests
        ]
        self._requests.clear()

    def flush(self) -> None:
        self._scheduled = False
        if self._requests:
            self._format_requests()
        _write_out(self._stream, self._lines)


class DirectLines:
    """Log lines written without a ``logging`` record (a record, its
    handler and formatter were ~20 µs of a remembered ``/authorize``), in one write and
    flush per event-loop iteration. The same line, byte for byte, that
    :func:`configure_logging`'s formatter writes for a record of ``logger`` with these
    fields, and in the order they were written; whether a level is written is still
    the logger's to say, line by line (a reload's level holds from the next line).

    The first line of a batch schedules its flush (``schedule``: the event loop's
    ``call_soon``), so lines reach the stream before the loop next waits for I/O: a
    write and a flush per line were ~6.5 % of a remembered ``/authorize``, and under
    load one iteration handles several requests. A batch of ``max_lines`` is written
    at once. :meth:`flush` writes what is left; ``serve`` calls it when it returns,
    however it returns.

    Durability: a process killed outright (``kill -9``, the OOM killer) loses the lines
    of the iteration it was in, which a line-by-line writer would mostly have written.
    The audit log on stderr is for operators to read; the record of truth is the
    store's tamper-evident audit table, which this does not touch. Lines of
    other loggers (through ``logging``) are written at once, so within one iteration
    an audit line may follow a line logged after it.
    """

    def __init__(
        self,
        stream: TextIO,
        schedule: Callable[[Callable[[], None]], object],
        *,
        format: str = "text",
        static: dict[str, Any] | None = None,
        max_lines: int = 256,
    ) -> None:
        self._stream = stream
        self._schedule = schedule
        self._json = format == "json"
        self._static = dict(static or {})
        self._max_lines = max_lines
        self._time = Timestamps()
        self._lines: list[str] = []
        #: The loggers by name: ``logging.getLogger`` takes the module's lock each
        #: time. A logger is one object for the life of the process, and its
        #: ``isEnabledFor`` follows ``setLevel`` (logging clears its cache), so a
        #: reload's level still holds from the next line.
        self._loggers: dict[str, logging.Logger] = {}

    def configure(self, *, format: str) -> None:
        """A reload's ``[log] format``: lines already waiting are written first (they
        were made in the old one). The level is the logger's, read at each line."""
        self.flush()
        self._json = format == "json"

    def write(
        self,
        logger: str,
        level: int,
        message: str,
        fields: dict[str, Any],
        created: float | None = None,
    ) -> None:
        named = self._loggers.get(logger)
        if named is None:
            named = self._loggers[logger] = logging.getLogger(logger)
        if not named.isEnabledFor(level):
            return
        stamp = self._time(time.time() if created is None else created)
        level_name = logging.getLevelName(level)
        if self._json:
            document: dict[str, Any] = {
                "time": stamp,
                "level": level_name.lower(),
                "logger": logger,
                "message": message,
            }
            document.update(fields)
            document.update(self._static)
            line = json.dumps(document, default=str, ensure_ascii=False)
        else:
            if self._static:
                fields = {**fields, **self._static}
            line = text_line(stamp, level_name, logger, message, fields)
        lines = self._lines
        lines.append(line)
        if len(lines) == 1:
            self._schedule(self.flush)
        elif len(lines) >= self._max_lines:
            self.flush()

    def flush(self) -> None:
        """Write the waiting lines, in one write and one flush."""
        _write_out(self._stream, self._lines)
