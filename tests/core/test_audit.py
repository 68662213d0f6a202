"""Which audit events the audit table keeps (``core/audit.py``): the writer filters on
``KEPT`` by name before it builds a row, so the two must agree."""

from __future__ import annotations

import pytest

from consentgate.core.audit import KEPT, entry_for
from consentgate.core.events import AuditEvent


@pytest.mark.parametrize("name", sorted(KEPT))
def test_every_kept_event_becomes_a_row(name: str) -> None:
    fields = {"count": 1, "selector": "client_id", "value": "c", "by": "cli"}
    assert entry_for(AuditEvent(name, "message", fields=fields), 0) is not None


@pytest.mark.parametrize(
    "name", ["consent_silent", "consent_asked", "callback_accepted", "client_registered"]
)
def test_per_request_events_are_not_kept(name: str) -> None:
    assert name not in KEPT
    assert entry_for(AuditEvent(name, "message"), 0) is None
