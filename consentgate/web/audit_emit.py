"""Audit events of a request: emitted through the app's one :class:`AuditTrail`.

A handler builds the event's type (:mod:`consentgate.audit`) with the request's id
(:func:`request_id`) and what the gate checked; never a code, token, state or cookie
value (the browser appears as its subject digest).
"""

from __future__ import annotations

from aiohttp import web

from consentgate.audit.events import AuditEvent
from consentgate.web.appkeys import AUDIT, REQUEST_ID


def request_id(request: web.Request) -> str:
    """The id of ``request`` that its audit events and log lines carry."""
    return request[REQUEST_ID]


def audit_event(request: web.Request, event: AuditEvent) -> None:
    """Emit ``event``, audited for ``request``."""
    request.app[AUDIT].emit(event)
