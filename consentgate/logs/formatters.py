"""The text and JSON formatters of the gate's log lines, and the one for libraries'
records.

Structured fields travel in ``record.fields`` (a dict), so the JSON formatter emits
them as keys and the text formatter as ``key=value`` pairs, quoted where a value
holds a space, a quote or an ``=``. Timestamps are made once per millisecond
(:class:`Timestamps`), on the hot path of every line.

A library's record (aiohttp's parse errors quote the header line they refused) is
written redacted (:func:`~consentgate.core.trust.redact.redact_text`), and of an exception
only its frames and types, never its message (:func:`withheld_traceback`).
"""

from __future__ import annotations

import json
import logging
import math
import traceback
from datetime import UTC, datetime
from typing import Any

from consentgate.core.trust.redact import redact_text


def fields_of(record: logging.LogRecord) -> dict[str, Any]:
    value = getattr(record, "fields", None)
    return value if isinstance(value, dict) else {}


class Timestamps:
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


class TextFormatter(logging.Formatter):
    """``time level logger message key=value ...`` on one line.

    ``static`` fields (a worker's number) end every line."""

    def __init__(self, static: dict[str, Any] | None = None) -> None:
        super().__init__()
        self._time = Timestamps()
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
    if not fields:
        return line
    texts = [v if type(v) is str else str(v) for v in fields.values()]
    # The quotes' rule is about single characters, so a run of texts breaks it only
    # where one of them does: one look at them all, and no text empty, says that
    # every value is written as it is (the usual line); otherwise each is quoted as
    # text_value does.
    pairs = zip(fields, texts, strict=True)
    if all(texts) and _plain("".join(texts)):
        return line + " " + " ".join([f"{k}={t}" for k, t in pairs])
    return line + " " + " ".join([f"{k}={text_value(t)}" for k, t in pairs])


def quoted_path(path: str) -> str:
    """``text_value(path)``, cheaper for the usual path: printable ASCII (where the only
    whitespace is the space) without a quote or a backslash is what ``json.dumps``
    would write between its quotes."""
    if path.isascii() and path.isprintable():
        if '"' in path:
            return json.dumps(path)
        if " " in path or "=" in path or not path:
            return f'"{path}"' if "\\" not in path else json.dumps(path)
        return path
    return text_value(path)


def text_value(value: Any) -> str:
    text = value if type(value) is str else str(value)
    return text if _plain(text) else json.dumps(text)


def _plain(text: str) -> bool:
    """Whether ``text`` is written without quotes: not empty, and no whitespace (what
    ``str.isspace`` says, as the regular expression ``\\s`` does), ``"`` or ``=``.
    Searched with ``in`` and ``split``, in C: the character class ``[\\s"=]`` took
    some 60 instructions a character, 12,000 for an audit line."""
    return '"' not in text and "=" not in text and text.split() == [text]


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log shippers; ``static`` fields in every object."""

    def __init__(self, static: dict[str, Any] | None = None) -> None:
        super().__init__()
        self._time = Timestamps()
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
