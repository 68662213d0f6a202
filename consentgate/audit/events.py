"""Audit events: every decision that matters, emitted once, consumed by several sinks.

A consent gate's decisions (asked, approved, denied, relayed without asking,
refused at the callback, a record that failed its signature, revoked, purged) are
what an operator reviews after an incident. They are emitted in one place through
the application's :class:`AuditTrail`; what consumes them is a sink: the
``consentgate.audit`` log (:func:`log_sink`), the metrics and the append-only audit
table. A handler or the store never formats an audit log line itself.

An event is a type, not a string: each decision is one frozen dataclass, a subclass of
:class:`TypedEvent` (the vocabulary: :mod:`consentgate.audit.decisions`,
:mod:`~consentgate.audit.refusals`, :mod:`~consentgate.audit.client_events`,
:mod:`~consentgate.audit.integrity`), with its name as a class variable, typed
fields and Literal types for closed sets such as a reason. Its log line (message and
fields), its audit table row (:mod:`consentgate.audit.rows`) and its metric label
(:mod:`consentgate.metrics.collectors`) are each derived from the type and the fields; the
human message is derived too, and nothing reads it back, so rewording it changes no
row and no label.

:class:`AuditEvent` is what every sink receives: the root of the typed events, and
also an event by name, message and fields, for an embedding application's own lines
(read by the table and the metrics only through
:func:`consentgate.audit.decoding.typed`).

An event never carries a code, token, state, cookie or Authorization value: the
browser appears only as its keyed digest (the *subject*), and the fields are what
the gate checked, not what the client sent. Pure module: no aiohttp, no I/O of its
own (the sinks write through ``logging`` or :class:`~consentgate.logs.line_writers.DirectLines`).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any, ClassVar, Final, Literal, NoReturn

from consentgate.logs.line_writers import DirectLines
from consentgate.logs.loggers import AUDIT

_log = logging.getLogger("consentgate")

Severity = Literal["info", "warning"]
_LEVELS: Final[Mapping[Severity, int]] = {"info": logging.INFO, "warning": logging.WARNING}
_NO_FIELDS: Final[Mapping[str, object]] = MappingProxyType({})


class AuditEvent:
    """One audited decision, as every sink reads it.

    ``event`` is a stable machine name (``consent_approved``, ``tamper``, ...);
    ``message`` the human line; ``fields`` the structured details of the log line
    (client_id, redirect_uri, scopes, subject digest, counts), read-only.

    Constructed directly, it is an event by name (an embedding application's own);
    the gate's own events are :class:`TypedEvent` subclasses, which derive all four
    from their type and fields. Frozen either way.
    """

    __slots__ = ("_event", "_fields", "_message", "_request_id", "_severity")
    _event: str
    _message: str
    _request_id: str
    _severity: Severity
    _fields: Mapping[str, object]

    def __init__(
        self,
        event: str,
        message: str,
        request_id: str = "",
        severity: Severity = "info",
        fields: Mapping[str, object] | None = None,
    ) -> None:
        if not event:
            raise ValueError("an audit event needs a name")
        setter = object.__setattr__
        setter(self, "_event", event)
        setter(self, "_message", message)
        setter(self, "_request_id", request_id)
        setter(self, "_severity", severity)
        setter(self, "_fields", MappingProxyType(dict(fields)) if fields else _NO_FIELDS)

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> NoReturn:
        raise dataclasses.FrozenInstanceError(f"cannot delete field {name!r}")

    @property
    def event(self) -> str:
        return self._event

    @property
    def message(self) -> str:
        return self._message

    @property
    def request_id(self) -> str:
        return self._request_id

    @property
    def severity(self) -> Severity:
        return self._severity

    @property
    def fields(self) -> Mapping[str, object]:
        return self._fields

    def as_fields(self) -> dict[str, object]:
        """The structured form: ``event``, ``request_id`` when there is one, the fields."""
        head: dict[str, object] = {"event": self.event}
        if self.request_id:
            head["request_id"] = self.request_id
        return {**head, **self.fields}

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self) or not isinstance(other, AuditEvent):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key()[:4])

    def _key(self) -> tuple[Any, ...]:
        return (self.event, self.message, self.request_id, self.severity, dict(self.fields))

    def __repr__(self) -> str:
        return (
            f"AuditEvent({self.event!r}, {self.message!r}, {self.request_id!r}, "
            f"severity={self.severity!r}, fields={dict(self.fields)!r})"
        )


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class TypedEvent(AuditEvent):
    """The base of the gate's own events: one frozen dataclass per event.

    A subclass names itself (``name``), may raise its ``level``, and says how its
    fields read on the log line (:meth:`log_fields`, in the line's order) and in
    words (:meth:`describe`). Those two are the log's only; the table and the metrics
    read the typed fields.
    """

    name: ClassVar[str]
    level: ClassVar[Severity] = "info"

    request_id: str = ""

    def __post_init__(self) -> None:
        """Nothing to check: the type is the name (the root's constructor is not run)."""

    @property
    def event(self) -> str:
        return self.name

    @property
    def severity(self) -> Severity:
        return self.level

    @property
    def message(self) -> str:
        return self.describe()

    @property
    def fields(self) -> Mapping[str, object]:
        return MappingProxyType(self.log_fields())

    def describe(self) -> str:
        """The human line of the log (never read back by a sink)."""
        raise NotImplementedError

    def log_fields(self) -> dict[str, object]:
        """The log line's fields, in their order (without ``event`` and ``request_id``)."""
        raise NotImplementedError

    def as_fields(self) -> dict[str, object]:
        head: dict[str, object] = {"event": self.name}
        if self.request_id:
            head["request_id"] = self.request_id
        head.update(self.log_fields())
        return head


def optional(**fields: object) -> dict[str, object]:
    """``fields`` without the ones that are None: a log line names what was there."""
    return {key: value for key, value in fields.items() if value is not None}


AuditSink = Callable[[AuditEvent], None]


def log_sink(event: AuditEvent) -> None:
    """Write the event as one line on the ``consentgate.audit`` logger."""
    logging.getLogger(AUDIT).log(
        _LEVELS[event.severity], event.message, extra={"fields": event.as_fields()}
    )


def direct_sink(lines: DirectLines) -> AuditSink:
    """:func:`log_sink`'s line, written by ``lines`` without a ``logging`` record (what
    ``serve`` uses; the tests and an embedding application keep :func:`log_sink`)."""

    def sink(event: AuditEvent) -> None:
        lines.write(AUDIT, _LEVELS[event.severity], event.message, event.as_fields())

    return sink


class AuditTrail:
    """The one emission point: every sink gets every event, in the order they were added.

    A sink that raises is reported on the ``consentgate`` logger and does not keep
    the other sinks (or the decision being audited) from going on.
    """

    def __init__(self, sinks: Iterable[AuditSink] = (log_sink,)) -> None:
        self._sinks: list[AuditSink] = list(sinks)

    def add_sink(self, sink: AuditSink) -> None:
        self._sinks.append(sink)

    def emit(self, event: AuditEvent) -> None:
        for sink in tuple(self._sinks):
            try:
                sink(event)
            except Exception:
                _log.exception(
                    "an audit sink failed", extra={"fields": {"audit_event": event.event}}
                )
