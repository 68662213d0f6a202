"""The audit event types (``audit/decisions.py``, ``refusals.py``, ``client_events.py``,
``integrity.py``): one frozen dataclass per event, and the log line each writes is the
line its name, message and fields wrote before events were types, byte for byte."""

from __future__ import annotations

import dataclasses
import io
import typing
from collections.abc import Callable

import pytest

from consentgate.audit.decisions import ConsentApproved, ConsentRecorded, GrantEvent
from consentgate.audit.decoding import EVENT_TYPES
from consentgate.audit.events import AuditEvent, TypedEvent, direct_sink
from consentgate.logs.line_writers import DirectLines
from tests.support.audit_events import EXAMPLES, Example


def test_every_event_type_of_the_gate_has_an_example() -> None:
    assert {type(example.event) for example in EXAMPLES} == set(EVENT_TYPES.values())
    assert len(EVENT_TYPES) == 24


@pytest.mark.parametrize("cls", [EVENT_TYPES[name] for name in sorted(EVENT_TYPES)])
def test_each_event_type_is_a_frozen_dataclass_with_its_own_name(cls: type[TypedEvent]) -> None:
    assert dataclasses.is_dataclass(cls)
    assert cls.__dataclass_params__.frozen  # type: ignore[attr-defined]
    assert EVENT_TYPES[cls.name] is cls
    example = next(e.event for e in EXAMPLES if type(e.event) is cls)
    with pytest.raises(dataclasses.FrozenInstanceError):
        example.request_id = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("cls", "field"),
    [
        (cls, name)
        for cls in EVENT_TYPES.values()
        for name in ("reason", "refusal", "selector", "by", "kind", "answer", "at")
        if name in {f.name for f in dataclasses.fields(cls)}
        and cls.name not in ("request_refused", "tamper", "client_document_failed")
        and (cls.name, name) not in {("answer_refused", "reason"), ("callback_refused", "reason")}
    ],
)
def test_a_reason_of_an_event_is_a_closed_set(cls: type[TypedEvent], field: str) -> None:
    """The reasons that label a metric or name a row are Literal types (the free-text
    reasons, a parser's description, say, are the log line's only)."""
    hint = typing.get_type_hints(cls)[field]
    assert typing.get_origin(hint) is typing.Literal, (cls.name, field, hint)


def _lines(emit: Callable[[Callable[[AuditEvent], None]], None], format: str) -> str:
    stream = io.StringIO()
    flushes: list[Callable[[], None]] = []
    lines = DirectLines(stream, flushes.append, format=format, static={"worker": 1})
    emit(direct_sink(lines))
    lines.flush()
    return stream.getvalue()


@pytest.mark.parametrize("format", ["text", "json"])
@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: f"{e.event.name}-{e.message[:24]}")
def test_a_typed_event_writes_the_line_of_its_name_message_and_fields(
    example: Example, format: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("time.time", lambda: 1_800_000_123.456)
    event = example.event
    before = AuditEvent(
        event.name, example.message, event.request_id, example.severity, example.fields
    )
    assert (event.event, event.message, event.severity) == (
        before.event,
        before.message,
        before.severity,
    )
    assert list(event.as_fields().items()) == list(before.as_fields().items())
    assert _lines(lambda sink: sink(event), format) == _lines(lambda sink: sink(before), format)


def test_the_two_events_of_one_approval_take_its_terms_from_one_grant() -> None:
    """The person's decision and the store's record of it name the grant with the same
    four fields of one base type; the rest is each one's own."""
    grant = {f.name for f in dataclasses.fields(GrantEvent)} - {"request_id"}
    assert grant == {"client_id", "redirect_uri", "scopes", "subject"}
    for cls in (ConsentApproved, ConsentRecorded):
        assert issubclass(cls, GrantEvent)
        hints = typing.get_type_hints(cls)
        assert {name: hints[name] for name in grant} == dict.fromkeys(grant, str)
    approved = {f.name for f in dataclasses.fields(ConsentApproved)}
    recorded = {f.name for f in dataclasses.fields(ConsentRecorded)}
    assert approved & recorded == grant | {"request_id"}
