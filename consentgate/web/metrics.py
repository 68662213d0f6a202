"""Prometheus metrics, served on the admin listener (issue 13, point 1, first slice;
the listener is assembled by :mod:`consentgate.web.admin_app`).

``GET /metrics`` on ``[admin] listen`` (never the public port), in the Prometheus
text format written by ``prometheus-client``. Every label set is bounded: outcomes,
reasons, status classes and kinds, never a client_id, URI or path.

The decisions and refusals are counted from the audit trail (one more sink), so
every audited decision is counted once and nothing else has to remember to count.
The relay counts its responses and upstream failures with pre-bound children: a few
hundred nanoseconds per request (``bench/metrics_bench.py``).

Each app has its own registry (no process-global state), so tests and several apps
in one process never mix their figures.
"""

from __future__ import annotations

import platform
from collections.abc import Callable
from typing import Any, Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from consentgate import __version__
from consentgate.core.events import AuditEvent

#: audit event -> consent decision outcome.
_DECISIONS: Final = {
    "consent_asked": "asked",
    "consent_approved": "approved",
    "consent_denied": "denied",
}
#: audit event -> refusal reason, where the event alone says it.
_REFUSALS: Final = {
    "callback_refused": "callback_refused",
    "request_refused": "bad_request",
    "consent_unavailable": "too_many_pages",
    "registration_refused": "registration_refused",
    "tamper": "tampered_record",
}
#: phrases of an ``answer_refused`` (or ``approvals_refused``) message -> refusal reason.
_ANSWER_REFUSALS: Final = (
    ("CSRF", "csrf"),
    ("another site", "cross_site"),
    ("browser cookie", "no_browser"),
    ("unusable pending", "expired_page"),
)
UPSTREAM_KINDS: Final = ("unreachable", "timeout", "failed")
#: Why the admin listener refused a request: no bearer token, or another one.
ADMIN_REFUSALS: Final = ("missing", "wrong")
#: The Content-Type of :meth:`Metrics.exposition`.
EXPOSITION_TYPE: Final = CONTENT_TYPE_LATEST


class Metrics:
    """The gate's metrics, in its own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.decisions = Counter(
            "consentgate_consent_decisions",
            "Consent decisions by outcome.",
            ["outcome"],
            registry=r,
        )
        self.refusals = Counter(
            "consentgate_refusals", "Requests refused, by reason.", ["reason"], registry=r
        )
        self.registrations = Counter(
            "consentgate_registrations", "Dynamic registrations seen, learned.", registry=r
        )
        responses = Counter(
            "consentgate_relayed_responses",
            "Responses relayed from the upstream, by status class.",
            ["status_class"],
            registry=r,
        )
        self._classes = [responses.labels(f"{n}xx") for n in range(1, 6)]
        upstream_errors = Counter(
            "consentgate_upstream_errors", "Upstream failures, by kind.", ["kind"], registry=r
        )
        self.upstream_errors = {kind: upstream_errors.labels(kind) for kind in UPSTREAM_KINDS}
        self.upstream_seconds = Histogram(
            "consentgate_upstream_response_seconds",
            "Time from sending a request upstream to its response headers.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        )
        self.store_unavailable = self.refusals.labels("store_unavailable")
        info = Gauge(
            "consentgate_build_info",
            "The running version (value 1).",
            ["version", "python"],
            registry=r,
        )
        info.labels(__version__, platform.python_version()).set(1)
        self.authorize_seconds = Histogram(
            "consentgate_authorize_decision_seconds",
            "Time to decide an authorization request: parse, client lookup, the "
            "remembered decision (before relaying it or showing the consent page).",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5),
            registry=r,
        )
        self.pending_pages = Gauge(
            "consentgate_pending_pages",
            "Consent pages shown and not yet answered or expired (read at each scrape).",
            registry=r,
        )
        self.requests_in_flight = Gauge(
            "consentgate_requests_in_flight", "Requests being handled now.", registry=r
        )
        self.streams_open = Gauge(
            "consentgate_streams_open", "Streamed responses being sent now.", registry=r
        )
        unauthorized = Counter(
            "consentgate_admin_unauthorized",
            "Admin listener requests refused for a missing or wrong bearer token, by reason.",
            ["reason"],
            registry=r,
        )
        self.admin_unauthorized = {reason: unauthorized.labels(reason) for reason in ADMIN_REFUSALS}
        self.tamper_events = Gauge(
            "consentgate_tamper_events",
            "Records that failed verification since start.",
            registry=r,
        )
        self.store_seconds = Histogram(
            "consentgate_store_operation_seconds",
            "Time of each consent store operation (one round trip or transaction), by "
            "operation; a cached answer makes none.",
            ["operation"],
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5),
            registry=r,
        )
        self._store_children: dict[str, Any] = {}

    def store_operation(self, operation: str, seconds: float) -> None:
        """One store round trip (``ConsentStore.time_operations``'s callback)."""
        child = self._store_children.get(operation)
        if child is None:
            child = self._store_children[operation] = self.store_seconds.labels(operation)
        child.observe(seconds)

    def watch_tampering(self, count: Callable[[], float]) -> None:
        self.tamper_events.set_function(count)

    def relayed(self, status: int, upstream_seconds: float | None) -> None:
        """One relayed response: the hot path, a list index and two increments."""
        index = status // 100 - 1
        if 0 <= index < 5:
            self._classes[index].inc()
        if upstream_seconds is not None:
            self.upstream_seconds.observe(upstream_seconds)

    def audit_sink(self, event: AuditEvent) -> None:
        """Count an audited decision (a sink of the app's :class:`AuditTrail`)."""
        name = event.event
        if name == "consent_silent":
            outcome = "preapproved" if event.fields.get("reason") == "preapproved" else "remembered"
            self.decisions.labels(outcome).inc()
        elif name in _DECISIONS:
            self.decisions.labels(_DECISIONS[name]).inc()
        elif name in ("answer_refused", "approvals_refused"):
            reason = next((r for phrase, r in _ANSWER_REFUSALS if phrase in event.message), "other")
            self.refusals.labels(reason).inc()
        elif name in _REFUSALS:
            self.refusals.labels(_REFUSALS[name]).inc()
        elif name == "client_registered":
            self.registrations.inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
