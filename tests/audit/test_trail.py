"""Which audit events the audit table keeps (``audit/trail.py``): the writer filters on
``KEPT`` by name before it builds a row, so the two must agree."""

from __future__ import annotations

import pytest

from consentgate.audit.chain import Revocations
from consentgate.audit.events import AuditEvent
from consentgate.audit.rows import KEPT, entry_for
from consentgate.audit.trail import GENESIS, AuditRecord
from consentgate.core.signed.keyring import KeyRing


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


def test_a_refused_callback_row_names_a_fixed_reason_never_the_request_text() -> None:
    sent = "n" * 2000
    event = AuditEvent(
        "callback_refused",
        "malformed callback",
        fields={"refusal": "malformed", "reason": f"The parameter {sent!r} is repeated."},
    )
    entry = entry_for(event, 0)
    assert entry is not None
    assert dict(entry.detail) == {"reason": "malformed", "source": "", "count": 1}
    unknown = AuditEvent("callback_refused", "m", fields={"refusal": sent, "source": "x" * 99})
    entry = entry_for(unknown, 0)
    assert entry is not None
    assert dict(entry.detail) == {"reason": "refused", "source": "x" * 64, "count": 1}


def revoked_row(selector: str, started_at: int, **columns: str) -> AuditRecord:
    value = columns.pop("value", "")
    fields: dict[str, object] = {"count": 1, "selector": selector, "value": value}
    fields.update(by="cli", started_at=started_at, **columns)
    entry = entry_for(AuditEvent("consents_revoked", "revoked", fields=fields), started_at + 5)
    assert entry is not None
    return AuditRecord.chain(entry, 1, GENESIS, KeyRing.generate())


def test_a_revocation_covers_only_records_of_its_selector_granted_before_it_started() -> None:
    revocations = Revocations()
    revocations.add(revoked_row("client_id", 100, value="c"))
    revocations.add(revoked_row("id", 200, value="r2", subject="alice"))  # the owner's page
    record = {"id": "r1", "client_id": "c", "redirect_uri": "u", "subject": "bob"}
    assert revocations.covering(**record, granted_at=99) == 100
    assert revocations.covering(**record, granted_at=100) is None  # same second: not before
    assert revocations.covering(**{**record, "client_id": "d"}, granted_at=1) is None
    own = {"id": "r2", "client_id": "d", "redirect_uri": "u"}
    assert revocations.covering(**own, subject="alice", granted_at=150) == 200
    assert revocations.covering(**own, subject="mallory", granted_at=150) is None
