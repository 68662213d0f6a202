"""An event made by name reads as its type (``audit/decoding.py``): what the table and
the metrics read of an embedding application's events."""

from __future__ import annotations

import pytest

from consentgate.audit.decoding import typed
from consentgate.audit.events import AuditEvent
from consentgate.audit.refusals import AnswerRefused, ApprovalsRefused, CallbackRefused
from tests.support.audit_events import EXAMPLES, Example


@pytest.mark.parametrize(
    "example",
    [e for e in EXAMPLES if not isinstance(e.event, AnswerRefused | ApprovalsRefused)],
    ids=lambda e: f"{e.event.name}-{e.message[:24]}",
)
def test_an_event_made_by_name_reads_as_the_type_of_that_name(example: Example) -> None:
    event = example.event
    by_name = AuditEvent(event.name, "any words", event.request_id, fields=example.fields)
    assert typed(by_name) == event
    assert typed(event) is event


def test_a_page_refusal_made_by_name_has_no_refusal_its_line_does_not_name() -> None:
    """The refusal of a consent answer is not a field of its line: read by name, it is
    empty (and counted as "other"), never guessed from the words."""
    found = typed(AuditEvent("answer_refused", "consent answer with a bad CSRF token"))
    assert isinstance(found, AnswerRefused)
    assert found.refusal == ""  # type: ignore[comparison-overlap]


def test_a_callback_refusal_made_by_name_is_one_of_the_fixed_set() -> None:
    named = typed(AuditEvent("callback_refused", "m", fields={"reason": "replayed"}))
    unknown = typed(AuditEvent("callback_refused", "m", fields={"refusal": "x" * 99}))
    assert isinstance(named, CallbackRefused) and named.refusal == "replayed"
    assert isinstance(unknown, CallbackRefused) and unknown.refusal == "refused"


def test_a_name_the_gate_does_not_emit_reads_as_nothing() -> None:
    assert typed(AuditEvent("my_own_event", "an embedding application's line")) is None
