"""The gate's loggers, and the handlers :func:`configure_logging` installs.

Three loggers carry meaning (oauth2-proxy and Hydra keep the same split):

* ``consentgate.access`` — one line per request: request id, client address,
  method, path (secrets redacted), status, bytes, duration, upstream time;
* ``consentgate.audit`` — consent decisions, approvals, denials, revocations,
  refused callbacks and tamper events;
* ``consentgate`` — everything else (startup, upstream errors).

Every other logger (aiohttp's ``aiohttp.server``, ``aiohttp.web``..., ``asyncio``,
``asyncpg``, ``aiosqlite``) reaches the root logger, where :func:`configure_logging`
installs a handler writing the same lines, at ``warning`` or above: the message
redacted (:func:`~consentgate.core.trust.redact.redact_text`), and of an exception only
its frames and type, never its message, which may quote a request (aiohttp's parse
errors quote the header line). Without it Python's last-resort handler wrote those
records to stderr as they were.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, Final, TextIO

from consentgate.logs.formatters import JsonFormatter, LibraryFormatter, TextFormatter

ACCESS: Final = "consentgate.access"
AUDIT: Final = "consentgate.audit"
MAIN: Final = "consentgate"
_HANDLER_NAME: Final = "consentgate-handler"
_LIBRARIES_HANDLER_NAME: Final = "consentgate-libraries"


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
