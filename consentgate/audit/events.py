"""Audit events: every decision that matters, emitted once, consumed by several sinks.

A consent gate's decisions (asked, approved, denied, relayed without asking,
refused at the callback, a record that failed its signature, revoked, purged) are
what an operator reviews after an incident. They are emitted in one place, as an
:class:`AuditEvent`, through the application's :class:`AuditTrail`; what consumes
them is a sink: today the ``consentgate.audit`` log (:func:`log_sink`), later
metrics and an append-only audit table (issue 13). A handler or the store never
formats an audit log line itself.

An event never carries a code, token, state, cookie or Authorization value: the
browser appears only as its keyed digest (the *subject*), and the fields are what
the gate checked, not what the client sent.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final, Literal

from consentgate.core.logs import AUDIT, DirectLines

_log = logging.getLogger("consentgate")

Severity = Literal["info", "warning"]
_LEVELS: Final[Mapping[Severity, int]] = {"info": logging.INFO, "warning": logging.WARNING}


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One audited decision.

    ``event`` is a stable machine name (``consent_approved``, ``tamper``, ...) that
    sinks may count or index; ``message`` the human line; ``fields`` the structured
    details (client_id, redirect_uri, scopes, subject digest, counts), read-only.
    """

    event: str
    message: str
    request_id: str = ""
    severity: Severity = "info"
    fields: Mapping[str, object] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        if not self.event:
            raise ValueError("an audit event needs a name")
        if not isinstance(self.fields, MappingProxyType):
            object.__setattr__(self, "fields", MappingProxyType(dict(self.fields)))

    def as_fields(self) -> dict[str, object]:
        """The structured form: ``event``, ``request_id`` when there is one, the fields."""
        head: dict[str, object] = {"event": self.event}
        if self.request_id:
            head["request_id"] = self.request_id
        return {**head, **self.fields}


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
