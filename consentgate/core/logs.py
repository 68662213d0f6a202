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
        extra = " ".join(f"{k}={_text_value(v)}" for k, v in fields.items())
        stamp = self._time(record.created)
        line = f"{stamp} {record.levelname:<7} {record.name} {record.getMessage()}"
        if extra:
            line = f"{line} {extra}"
        if record.exc_info:
            line = f"{line}\n{self.formatException(record.exc_info)}"
        return line


def _text_value(value: Any) -> str:
    text = str(value)
    if not text or any(c.isspace() or c in '"=' for c in text):
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
