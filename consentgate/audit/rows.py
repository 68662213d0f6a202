"""Which audit events the table keeps, and each one's row, from its type and fields.

Kept: what an operator must be able to review after an incident (approved, denied,
revoked and by whom, records expired and purged, a tampered record found, a callback
refused, a key rotated). Not kept: what happens on every request (a remembered
approval relayed, a consent page shown), which the ``consentgate.audit`` log and the
metrics count. A row is built from the event's typed fields, never from its message.
Pure module.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from consentgate.audit.decisions import (
    ConsentApproved,
    ConsentDenied,
    ConsentsPurged,
    ConsentsRevoked,
)
from consentgate.audit.decoding import typed
from consentgate.audit.events import AuditEvent, TypedEvent
from consentgate.audit.integrity import KeyAdded, KeyRotated, Tamper
from consentgate.audit.refusals import CALLBACK_REFUSALS, CallbackRefused
from consentgate.audit.trail import AuditEntry

_SELECTOR_COLUMNS: Final = {"client_id", "redirect_uri", "subject"}


def _decision(event: ConsentApproved | ConsentDenied, at: int) -> AuditEntry:
    detail: dict[str, object] = {}
    if isinstance(event, ConsentApproved):
        detail.update(
            remembered=event.remembered, upstream_status=event.upstream_status, bound=event.bound
        )
    if event.client_kind is not None:
        detail["client_kind"] = event.client_kind
    if event.client_domain is not None:
        detail["client_domain"] = event.client_domain
    return AuditEntry(
        at,
        "approved" if isinstance(event, ConsentApproved) else "denied",
        request_id=event.request_id,
        actor="person",
        client_id=event.client_id,
        redirect_uri=event.redirect_uri,
        scopes=event.scopes,
        subject=event.subject,
        detail=detail,
    )


def _revoked(event: ConsentsRevoked, at: int) -> AuditEntry | None:
    count = event.count
    if not isinstance(count, int) or count <= 0:
        return None
    selector = event.selector
    value = "" if event.value is None else event.value
    columns = {selector: value} if selector in _SELECTOR_COLUMNS else {}
    if event.subject is not None:
        columns["subject"] = event.subject
    detail: dict[str, object] = {"count": count, "selector": selector}
    if selector == "id":
        detail["id"] = value
    started = event.started_at
    if isinstance(started, int) and not isinstance(started, bool):
        detail["started_at"] = started
    return AuditEntry(
        at, "revoked", request_id=event.request_id, actor=event.by, detail=detail, **columns
    )


def _purged(event: ConsentsPurged, at: int) -> AuditEntry:
    detail = {"count": event.count, "keep_seconds": event.keep_seconds}
    return AuditEntry(at, "expired", actor="gate", detail=detail)


def _tampered(event: Tamper, at: int) -> AuditEntry:
    detail = {"kind": event.kind, "id": event.id, "reason": event.reason}
    return AuditEntry(at, "tampered", request_id=event.request_id, actor="gate", detail=detail)


def _callback_refused(event: CallbackRefused, at: int) -> AuditEntry:
    # A fixed reason and the source network only: the row is counted, not a copy of
    # what an anonymous client sent (its parameter names, say).
    refusal = event.refusal if event.refusal in CALLBACK_REFUSALS else "refused"
    return AuditEntry(
        at,
        "callback_refused",
        request_id=event.request_id,
        actor="gate",
        subject=event.subject or "",
        detail={"reason": refusal, "source": str(event.source)[:64], "count": 1},
    )


def _key_rotated(event: KeyRotated, at: int) -> AuditEntry:
    detail = {"active_key": event.active_key, "previous_key": event.previous_key}
    return AuditEntry(at, "key_rotated", actor=event.by or "cli", detail=detail)


def _key_added(event: KeyAdded, at: int) -> AuditEntry:
    detail = {"key": event.key, "active_key": event.active_key}
    return AuditEntry(at, "key_added", actor=event.by or "cli", detail=detail)


_ROWS: Final[Mapping[type[TypedEvent], Callable[[Any, int], AuditEntry | None]]] = {
    ConsentApproved: _decision,
    ConsentDenied: _decision,
    ConsentsRevoked: _revoked,
    ConsentsPurged: _purged,
    Tamper: _tampered,
    CallbackRefused: _callback_refused,
    KeyRotated: _key_rotated,
    KeyAdded: _key_added,
}
#: The names of the events the table keeps a row of: the writer passes over every
#: other event (a remembered approval relayed, a page shown: one per request) by its
#: name alone, before it builds anything.
KEPT: Final = frozenset(cls.name for cls in _ROWS)

#: Events that any client can cause without signing in or holding a pending page:
#: a refused callback (no state, no binding cookie, malformed, expired, replayed) is
#: the one of them the table keeps. The other anonymous refusals (a bad authorization
#: request, an ambiguous path, a refused consent answer or approvals change, too many
#: consent pages, a refused registration) are not in :data:`KEPT`: the log and the
#: metrics count them. A flood of these must not grow the table by one signed row per
#: request, so :class:`~consentgate.store.auditlog.AuditWriter` aggregates them per
#: (event, reason, source network) and interval; real decisions (approved, denied,
#: revoked) are never aggregated.
AGGREGATED: Final = frozenset({CallbackRefused.name})


def aggregation_key(entry: AuditEntry) -> tuple[str, str, str] | None:
    """The bucket an entry of an :data:`AGGREGATED` event is counted in, else None."""
    if entry.event not in AGGREGATED:
        return None
    return entry.event, str(entry.detail.get("reason", "")), str(entry.detail.get("source", ""))


def entry_for(event: AuditEvent, at: int) -> AuditEntry | None:
    """The table's row for an audit event, or None for events the table does not keep."""
    found = typed(event)
    row = _ROWS.get(type(found)) if found is not None else None
    return None if row is None else row(found, at)
