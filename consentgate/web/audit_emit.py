"""Audit events of a request: built here, emitted through the app's one :class:`AuditTrail`.

An event names the request id and what the gate checked; never a code, token,
state or cookie value (the browser appears as its subject digest).
"""

from __future__ import annotations

from aiohttp import web

from consentgate.audit.events import AuditEvent
from consentgate.web.appkeys import AUDIT, REQUEST_ID


def audit_event(
    request: web.Request,
    event: str,
    message: str,
    **fields: object,
) -> None:
    """Emit one audit event for ``request`` (the request id is added)."""
    request.app[AUDIT].emit(AuditEvent(event, message, request[REQUEST_ID], fields=fields))
