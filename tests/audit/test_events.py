"""Audit events: one emission point, every sink gets every event, a failing sink is contained."""

from __future__ import annotations

import dataclasses
import logging

import pytest

from consentgate.audit.events import AuditEvent, AuditTrail, log_sink


def test_an_event_is_frozen_and_its_fields_read_only() -> None:
    fields = {"client_id": "c1"}
    event = AuditEvent("consent_approved", "consent approved", "req-1", fields=fields)
    fields["client_id"] = "changed later"
    assert event.fields["client_id"] == "c1"
    with pytest.raises(TypeError):
        event.fields["client_id"] = "x"  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.event = "other"  # type: ignore[misc]


def test_the_structured_form_names_the_event_and_the_request_when_there_is_one() -> None:
    with_request = AuditEvent("consent_denied", "consent denied", "req-9", fields={"a": 1})
    without = AuditEvent("consents_revoked", "revoked 2 consent(s) by all", fields={"count": 2})
    assert with_request.as_fields() == {"event": "consent_denied", "request_id": "req-9", "a": 1}
    assert without.as_fields() == {"event": "consents_revoked", "count": 2}


def test_an_event_needs_a_name() -> None:
    with pytest.raises(ValueError, match="needs a name"):
        AuditEvent("", "nothing")


def test_every_sink_gets_every_event_in_order_and_a_failing_sink_is_contained(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[tuple[str, str]] = []

    def broken(event: AuditEvent) -> None:
        raise RuntimeError("the disk is gone")

    trail = AuditTrail([lambda e: seen.append(("first", e.event)), broken])
    trail.add_sink(lambda e: seen.append(("last", e.event)))
    with caplog.at_level(logging.ERROR, logger="consentgate"):
        trail.emit(AuditEvent("tamper", "tamper event", severity="warning"))
    assert seen == [("first", "tamper"), ("last", "tamper")]
    assert [r.getMessage() for r in caplog.records] == ["an audit sink failed"]


def test_the_log_sink_writes_one_line_with_the_fields_at_the_events_severity(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="consentgate.audit"):
        log_sink(AuditEvent("tamper", "record x is not honoured", severity="warning"))
        log_sink(AuditEvent("consent_asked", "consent page shown", "r1", fields={"p": "id"}))
    tamper, asked = caplog.records
    assert (tamper.name, tamper.levelno, tamper.getMessage()) == (
        "consentgate.audit",
        logging.WARNING,
        "record x is not honoured",
    )
    assert asked.levelno == logging.INFO
    assert asked.fields == {"event": "consent_asked", "request_id": "r1", "p": "id"}  # type: ignore[attr-defined]
