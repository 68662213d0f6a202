"""The metrics' audit sink (``metrics/collectors.py``) labels from an event's type and typed
fields: rewording an event's message changes no metric name or label."""

from __future__ import annotations

import pytest

from consentgate.audit.events import AuditEvent
from consentgate.audit.refusals import AnswerRefused, ApprovalsRefused, PageRefusal
from consentgate.metrics import collectors as metrics_module
from consentgate.metrics.collectors import Metrics
from tests.audit.test_rows import attributes_read
from tests.support.audit_events import EXAMPLES, Example

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def counted(*events: AuditEvent) -> Samples:
    """The figures the sink recorded for ``events`` (the creation times left out)."""
    metrics = Metrics()
    for event in events:
        metrics.audit_sink(event)
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in metrics.registry.collect()
        for sample in family.samples
        if not sample.name.endswith("_created") and sample.name != "consentgate_build_info"
    }


def test_the_metrics_never_read_an_events_message_or_its_log_fields() -> None:
    assert not {"message", "fields", "describe", "log_fields"} & attributes_read(metrics_module)


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: f"{e.event.name}-{e.message[:24]}")
def test_rewording_an_events_message_changes_no_metric_label(
    example: Example, monkeypatch: pytest.MonkeyPatch
) -> None:
    event = example.event
    before = counted(event)
    monkeypatch.setattr(type(event), "describe", lambda self: "reworded entirely")
    assert event.message == "reworded entirely"
    assert counted(event) == before


@pytest.mark.parametrize("refusal", ["csrf", "cross_site", "no_browser", "expired_page"])
def test_a_refused_consent_answer_or_approvals_change_is_counted_by_its_refusal(
    refusal: PageRefusal,
) -> None:
    figures = counted(AnswerRefused(refusal=refusal), ApprovalsRefused(refusal=refusal))
    assert figures[("consentgate_refusals_total", (("reason", refusal),))] == 2
    counted_once = {labels for name, labels in figures if name == "consentgate_refusals_total"} - {
        (("reason", "store_unavailable"),)
    }  # a series from the start, at 0
    assert counted_once == {(("reason", refusal),)}


def test_a_refusal_made_by_name_without_its_reason_is_counted_as_other() -> None:
    figures = counted(AuditEvent("answer_refused", "consent answer with a bad CSRF token"))
    assert figures[("consentgate_refusals_total", (("reason", "other"),))] == 1
