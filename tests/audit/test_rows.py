"""The audit table's rows (``audit/rows.py``) come from an event's type and fields:
rewording an event's message changes no row."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from consentgate.audit import rows
from consentgate.audit.rows import KEPT, entry_for
from consentgate.store import auditlog
from tests.support.audit_events import EXAMPLES, Example


def attributes_read(module: object) -> set[str]:
    """Every attribute name the module's code reads (``x.message`` -> ``message``)."""
    source = Path(str(getattr(module, "__file__", ""))).read_text(encoding="utf-8")
    return {node.attr for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Attribute)}


@pytest.mark.parametrize("module", [rows, auditlog], ids=lambda m: m.__name__)
def test_the_table_never_reads_an_events_message_or_its_log_fields(module: object) -> None:
    assert not {"message", "fields", "describe", "log_fields"} & attributes_read(module)


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: f"{e.event.name}-{e.message[:24]}")
def test_rewording_an_events_message_changes_no_table_row(
    example: Example, monkeypatch: pytest.MonkeyPatch
) -> None:
    event = example.event
    before = entry_for(event, 1_800_000_000)
    monkeypatch.setattr(type(event), "describe", lambda self: "reworded entirely")
    assert event.message == "reworded entirely"
    assert entry_for(event, 1_800_000_000) == before
    assert (before is not None) == (event.name in KEPT)
