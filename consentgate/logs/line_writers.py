"""Logging setup: text or JSON lines, with separate access and audit loggers.

Three loggers carry meaning (oauth2-proxy and Hydra keep the same split):

* ``consentgate.access`` — one line per request: request id, client address,
  method, path (secrets redacted), status, bytes, duration, upstream time;
* ``consentgate.audit`` — consent decisions, approvals, denials, revocations,
  refused callbacks and tamper events;
* ``consentgate`` — everything else (startup, upstream errors).

Structured fields travel in ``record.fields`` (a dict), so the JSON formatter
emits them as keys and the text formatter as ``key=value`` pairs.

Every other logger (aiohttp's ``aiohttp.server``, ``aiohttp.web``..., ``asyncio``,
``asyncpg``, ``aiosqlite``) reaches the root logger, where :func:`configure_logging`
installs a handler writing the same lines, at ``warning`` or above: the message
redacted (:func:`~consentgate.core.redact.redact_text`), and of an exception only
its frames and type, never its message, which may quote a request (aiohttp's parse
errors quote the header line). Without it Python's last-resort handler wrote those
records to stderr as they were.

Pure module: no aiohttp import.
"""

from __future__ import annotations

import json
import logging
import math
import re
import sys
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final, TextIO

from consentgate.core.memo import remembered
from consentgate.core.redact import REDACTED, redact_target, redact_text

ACCESS: Final = "consentgate.access"
AUDIT: Final = "consentgate.audit"
MAIN: Final = "consentgate"

_HANDLER_NAME: Final = "consentgate-handler"
_LIBRARIES_HANDLER_NAME: Final = "consentgate-libraries"


def fields_of(record: logging.LogRecord) -> dict[str, Any]:
    value = getattr(record, "fields", None)
    return value if isinstance(value, dict) else {}


class _Timestamps:
    """ISO 8601 UTC times with milliseconds, for a ``created`` time in seconds.

    The part up to the second is formatted once per second, and a whole stamp is
    kept with the times it holds for, so that lines of the same millisecond (the
    access log writes thousands per second) cost two comparisons. The interval is
    found to the last bit (:func:`_until`): a kept stamp is the one a time would get
    computed from scratch.
    """

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""
        self._stamp = ""
        #: ``_stamp`` is the stamp of every time in [_since, _until).
        self._since = 0.0
        self._until = 0.0

    def __call__(self, created: float) -> str:
        if self._since <= created < self._until:
            return self._stamp
        second, millisecond = _second_and_millisecond(created)
        if second != self._second:
            self._second = second
            self._prefix = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        self._stamp = f"{self._prefix}.{millisecond:03d}+00:00"
        self._since = created
        self._until = _until(created, second, millisecond)
        return self._stamp


def _second_and_millisecond(created: float) -> tuple[int, int]:
    second = int(created)
    return second, int((created - second) * 1000)


def _until(created: float, second: int, millisecond: int) -> float:
    """The first time after ``created`` whose second or millisecond differs: near
    ``second + (millisecond + 1) / 1000``, found to the last bit by stepping from
    there (both parts only grow with the time, so the stamp holds up to it). Where
    a few steps do not find it (never seen), ``created`` itself: nothing is kept."""
    if created < 0:  # int() rounds towards zero: before 1970 the parts do not only grow
        return created
    now = (second, millisecond)
    until = second + (millisecond + 1) / 1000
    for _step in range(8):
        if _second_and_millisecond(until) == now:
            until = math.nextafter(until, math.inf)
        elif _second_and_millisecond(math.nextafter(until, -math.inf)) != now:
            until = math.nextafter(until, -math.inf)
        else:
            return until
    return created


_NEEDS_QUOTES = re.compile(r'[\s"=]')


class TextFormatter(logging.Formatter):
    """``time level logger message key=value ...`` on one line.

    ``static`` fields (a worker's number) end every line."""

    def __init__(self, static: dict[str, Any] | None = None) -> None:
        super().__init__()
        self._time = _Timestamps()
        self._static = dict(static or {})

    def format(self, record: logging.LogRecord) -> str:
        fields = {**fields_of(record), **self._static} if self._static else fields_of(record)
        stamp = self._time(record.created)
        line = text_line(stamp, record.levelname, record.name, record.getMessage(), fields)
        if record.exc_info:
            line = f"{line}\n{self.formatException(record.exc_info)}"
        return line


def text_line(stamp: str, level: str, logger: str, message: str, fields: dict[str, Any]) -> str:
    """One text line; what :class:`TextFormatter` and :class:`AccessLines` both write."""
    line = f"{stamp} {level:<7} {logger} {message}"
    if fields:
        line += " " + " ".join(f"{k}={_text_value(v)}" for k, v in fields.items())
    return line


def _quoted_path(path: str) -> str:
    """``_text_value(path)``, cheaper for the usual path: printable ASCII (where the only
    whitespace is the space) without a quote or a backslash is what ``json.dumps``
    would write between its quotes."""
    if path.isascii() and path.isprintable():
        if '"' in path:
            return json.dumps(path)
        if " " in path or "=" in path or not path:
            return f'"{path}"' if "\\" not in path else json.dumps(path)
        return path
    return _text_value(path)


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
    return _quoted_path(redact_target(target))


def _text_value(value: Any) -> str:
    text = value if type(value) is str else str(value)
    if not text or _NEEDS_QUOTES.search(text):
        return json.dumps(text)
    return text


#: ``_text_value`` of a client address: the same few addresses come back.
_client_text: Final[Callable[[str], str]] = remembered(64)(_text_value)


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log shippers; ``static`` fields in every object."""

    def __init__(self, static: dict[str, Any] | None = None) -> None:
        super().__init__()
        self._time = _Timestamps()
        self._static = dict(static or {})

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "time": self._time(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        document.update(fields_of(record))
        document.update(self._static)
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        return json.dumps(document, default=str, ensure_ascii=False)


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
        self._time = _Timestamps()
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
                _text_value(request_id),
                _client_text(client),
                method,
                _quoted_path(path),
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
                request_id if request_id.isalnum() else _text_value(request_id),
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
        self._time = _Timestamps()
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


def withheld_traceback(exc: BaseException) -> str:
    """``exc``'s traceback, its causes and contexts included, with each exception's
    type in place of its message: where a library failed, not what it was handling."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and all(current is not seen for seen in chain):
        chain.append(current)
        current = current.__cause__ or (
            None if current.__suppress_context__ else current.__context__
        )
    parts: list[str] = []
    for index, item in enumerate(reversed(chain)):
        if index:
            parts.append("\nwhich led to:\n")
        parts.append("Traceback (most recent call last):\n")
        parts.extend(traceback.format_tb(item.__traceback__))
        kind = type(item)
        parts.append(f"{kind.__module__}.{kind.__qualname__} (message not logged)\n")
    return "".join(parts).rstrip("\n")


class LibraryFormatter(logging.Formatter):
    """A library's record as the gate's line (``inner``), redacted: the message through
    :func:`redact_text`, an exception as :func:`withheld_traceback` (after the line,
    or in the JSON object's ``exception``)."""

    def __init__(self, inner: logging.Formatter, *, json: bool) -> None:
        super().__init__()
        self._inner = inner
        self._json = json

    def format(self, record: logging.LogRecord) -> str:
        clean = logging.makeLogRecord(record.__dict__)
        clean.msg = redact_text(record.getMessage())
        clean.args = None
        clean.exc_info = clean.exc_text = clean.stack_info = None
        exc = record.exc_info[1] if record.exc_info else None
        if exc is None:
            return self._inner.format(clean)
        trace = withheld_traceback(exc)
        if self._json:
            clean.fields = {**fields_of(record), "exception": trace}
            return self._inner.format(clean)
        return f"{self._inner.format(clean)}\n{trace}"


def configure_logging(
    *,
    format: str = "text",
    level: str = "info",
    stream: TextIO | None = None,
    static: dict[str, Any] | None = None,
) -> None:
    """Install one handler on the ``consentgate`` logger, and one on the root logger for
    the libraries' loggers (idempotent). ``static`` fields go on every line
    (``worker=2`` with ``[server] workers``)."""
    logger = logging.getLogger(MAIN)
    for handler in list(logger.handlers):
        if handler.get_name() == _HANDLER_NAME:
            logger.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(JsonFormatter(static) if format == "json" else TextFormatter(static))
    logger.addHandler(handler)
    logger.setLevel(level.upper())
    logger.propagate = False
    _route_libraries(format, level, stream or sys.stderr, static)


def _route_libraries(
    format: str, level: str, stream: TextIO, static: dict[str, Any] | None
) -> None:
    """The root logger's handler for every other logger (the module docstring says why);
    replaced, not added to, by each call."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if handler.get_name() == _LIBRARIES_HANDLER_NAME:
            root.removeHandler(handler)
    inner = JsonFormatter(static) if format == "json" else TextFormatter(static)
    handler = logging.StreamHandler(stream)
    handler.set_name(_LIBRARIES_HANDLER_NAME)
    handler.setFormatter(LibraryFormatter(inner, json=format == "json"))
    handler.setLevel(max(logging.WARNING, logging.getLevelNamesMapping()[level.upper()]))
    root.addHandler(handler)
