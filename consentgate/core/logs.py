"""Logging setup: text or JSON lines, with separate access and audit loggers.

Three loggers carry meaning (oauth2-proxy and Hydra keep the same split):

* ``consentgate.access`` — one line per request: request id, client address,
  method, path (secrets redacted), status, bytes, duration, upstream time;
* ``consentgate.audit`` — consent decisions, approvals, denials, revocations,
  refused callbacks and tamper events;
* ``consentgate`` — everything else (startup, upstream errors).

Structured fields travel in ``record.fields`` (a dict), so the JSON formatter
emits them as keys and the text formatter as ``key=value`` pairs.

Pure module: no aiohttp import.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final, TextIO

ACCESS: Final = "consentgate.access"
AUDIT: Final = "consentgate.audit"
MAIN: Final = "consentgate"

_HANDLER_NAME: Final = "consentgate-handler"


def fields_of(record: logging.LogRecord) -> dict[str, Any]:
    value = getattr(record, "fields", None)
    return value if isinstance(value, dict) else {}


class _Timestamps:
    """ISO 8601 UTC times with milliseconds; the part up to the second is formatted
    once per second (the access log writes thousands of lines per second)."""

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def __call__(self, created: float) -> str:
        second = int(created)
        if second != self._second:
            self._second = second
            self._prefix = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        return f"{self._prefix}.{int((created - second) * 1000):03d}+00:00"


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
    """``_text_value(path)``, cheaper for the usual path: printable ASCII without a quote
    or a backslash is what ``json.dumps`` would write between its quotes."""
    if path and _NEEDS_QUOTES.search(path) is None:
        return path
    if path.isascii() and path.isprintable() and '"' not in path and "\\" not in path:
        return f'"{path}"'
    return json.dumps(path)


def _text_value(value: Any) -> str:
    text = value if type(value) is str else str(value)
    if not text or _NEEDS_QUOTES.search(text):
        return json.dumps(text)
    return text


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


_REQUEST_LINE: Final = (
    "{} INFO    " + ACCESS + " request request_id={} client={} method={} path={} status={} "
    "bytes={} duration_ms={} upstream_ms={}"
)


class AccessLines:
    """The access log without a ``logging`` record per request (issue 14, point 1).

    The same line, byte for byte, that the ``consentgate.access`` logger would write
    through :func:`configure_logging`'s formatter, built straight from the fields,
    and written in batches: the first line of a batch schedules one write and flush
    (``schedule``: the event loop's ``call_soon``, so once per loop iteration), and
    a batch of ``max_lines`` is written at once. :meth:`flush` writes what is left;
    ``serve`` calls it after the shutdown, so no line of a graceful stop is lost.

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
        self._lines: list[str] = []

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
        self._add(line)

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
        """The access line of one request: :meth:`write` of the same fields (in the
        order of :func:`~consentgate.web.access.access_fields`), with the text line
        built from one template. The hot path: every relayed request takes it."""
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
        # request_id (hex or a checked X-Request-Id), an address, an HTTP method token,
        # numbers: never quoted. A path may need quotes.
        self._add(
            _REQUEST_LINE.format(
                self._time(time.time()),
                _text_value(request_id),
                _text_value(client),
                method,
                _quoted_path(path),
                status,
                sent,
                duration_ms,
                upstream_ms,
            )
        )

    def _add(self, line: str) -> None:
        lines = self._lines
        lines.append(line)
        if len(lines) == 1:
            self._schedule(self.flush)
        elif len(lines) >= self._max_lines:
            self.flush()

    def flush(self) -> None:
        if not self._lines:
            return
        text = "\n".join(self._lines) + "\n"
        self._lines.clear()
        try:
            self._stream.write(text)
            self._stream.flush()
        except (OSError, ValueError):  # a closed or broken stderr: as logging would
            pass


class DirectLines:
    """Log lines written straight to a stream, each at once: one ``write`` and ``flush``
    per line, never batched (the audit log must not lose its last lines), without a
    ``logging`` record (issue 14, point 2: a record, its handler and formatter were
    ~20 µs of a remembered ``/authorize``). The same line, byte for byte, that
    :func:`configure_logging`'s formatter writes for a record of ``logger`` with
    these fields; whether a level is written is still the logger's to say.
    """

    def __init__(
        self, stream: TextIO, *, format: str = "text", static: dict[str, Any] | None = None
    ) -> None:
        self._stream = stream
        self._json = format == "json"
        self._static = dict(static or {})
        self._time = _Timestamps()

    def configure(self, *, format: str) -> None:
        """A reload's ``[log] format`` (the level is the logger's, read at each line)."""
        self._json = format == "json"

    def write(
        self,
        logger: str,
        level: int,
        message: str,
        fields: dict[str, Any],
        created: float | None = None,
    ) -> None:
        if not logging.getLogger(logger).isEnabledFor(level):
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
        try:
            self._stream.write(line + "\n")
            self._stream.flush()
        except (OSError, ValueError):  # a closed or broken stderr: as logging would
            pass


def configure_logging(
    *,
    format: str = "text",
    level: str = "info",
    stream: TextIO | None = None,
    static: dict[str, Any] | None = None,
) -> None:
    """Install one handler on the ``consentgate`` logger (idempotent). ``static``
    fields go on every line (``worker=2`` with ``[server] workers``)."""
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
