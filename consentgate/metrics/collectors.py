"""Prometheus metrics, served on the admin listener (the listener is assembled by
:mod:`consentgate.admin.admin_listener`).

``GET /metrics`` on ``[admin] listen`` (never the public port), in the Prometheus
text format written by ``prometheus-client``. Every label set is bounded: outcomes,
reasons, status classes and kinds, never a client_id, URI or path.

The decisions and refusals are counted from the audit trail (one more sink), so
every audited decision is counted once and nothing else has to remember to count.
What every request records (relayed responses by status class, the upstream and
authorize-decision histograms, the decisions) is kept in plain integers and folded
into the exposition at scrape time by a collector (:class:`_HotCollector`): a
``prometheus-client`` child takes a lock per increment, 2.1 µs per relayed response
against 0.3 µs now (``bench/metrics_bench.py``). The families,
names, labels and buckets are the same. Upstream failures and refusals, which are
rare, stay ``prometheus-client`` counters.

Each app has its own registry (no process-global state), so tests and several apps
in one process never mix their figures.
"""

from __future__ import annotations

import bisect
import functools
import platform
import time
from collections.abc import Callable
from typing import Any, Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from consentgate import __version__
from consentgate.audit.client_events import (
    ClientDocumentFailed,
    ClientRefused,
    ClientRegistered,
    RegistrationRefused,
)
from consentgate.audit.decisions import ConsentApproved, ConsentAsked, ConsentDenied, ConsentSilent
from consentgate.audit.decoding import typed
from consentgate.audit.events import AuditEvent, TypedEvent
from consentgate.audit.integrity import Tamper
from consentgate.audit.refusals import (
    PAGE_REFUSALS,
    AnswerRefused,
    ApprovalsRefused,
    CallbackRefused,
    RequestRefused,
)
from consentgate.clients.fetch_results import FAILURE_REASONS
from consentgate.core.clientinfo import CLIENT_KINDS, ClientKind

#: audit event type -> consent decision outcome (``consent_silent``: its reason).
_DECISIONS: Final[dict[type[TypedEvent], str]] = {
    ConsentAsked: "asked",
    ConsentApproved: "approved",
    ConsentDenied: "denied",
}
#: audit event type -> refusal reason, where the type alone says it.
_REFUSALS: Final[dict[type[TypedEvent], str]] = {
    CallbackRefused: "callback_refused",
    RequestRefused: "bad_request",
    RegistrationRefused: "registration_refused",
    Tamper: "tampered_record",
}
#: ``client_refused`` reason (a client named by a URL; web/documents.py) -> refusal reason.
_CLIENT_REFUSALS: Final = {
    "bad_client_id": "client_id_url",
    "disabled": "client_not_accepted",
    "blocked_domain": "client_not_accepted",
    "redirect_uri_not_listed": "redirect_uri_not_listed",
}
UPSTREAM_KINDS: Final = ("unreachable", "timeout", "failed", "address_share")
#: Why the admin listener refused a request: no bearer token, or another one.
ADMIN_REFUSALS: Final = ("missing", "wrong")
#: The Content-Type of :meth:`Metrics.exposition`.
EXPOSITION_TYPE: Final = CONTENT_TYPE_LATEST
DECISION_OUTCOMES: Final = ("asked", "approved", "denied", "preapproved", "remembered")
_STATUS_CLASSES: Final = tuple(f"{n}xx" for n in range(1, 6))


def _kind(event: ConsentAsked | ConsentSilent | ConsentApproved | ConsentDenied) -> ClientKind:
    """The event's ``client_kind``, one of the closed set (a label, so never anything
    else: an event without one counts as ``unknown``)."""
    kind = event.client_kind
    for known in CLIENT_KINDS:
        if kind == known:
            return known
    return "unknown"


class PlainHistogram:
    """A histogram in plain numbers: a bisect and two additions per observation (no
    lock: the gate records from its event loop thread only); exposed by the collector."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.bounds = buckets
        #: Observations per bucket, not cumulative; the last is +Inf.
        self.counts = [0] * (len(buckets) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        # bisect_left: the first bound >= value, as Prometheus' "le" (less or equal).
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value

    @property
    def count(self) -> int:
        return sum(self.counts)

    def family(self, name: str, documentation: str) -> HistogramMetricFamily:
        cumulative: list[tuple[str, float]] = []
        running = 0
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            running += count
            cumulative.append((_bound_text(bound), running))
        return HistogramMetricFamily(name, documentation, buckets=cumulative, sum_value=self.sum)


def _bound_text(bound: float) -> str:
    """A bucket bound as prometheus-client writes it (``0.005``, ``1.0``, ``+Inf``)."""
    if bound == float("inf"):
        return "+Inf"
    return repr(float(bound))


class _HotCollector:
    """Exposes the figures every request records, kept as plain numbers in :class:`Metrics`."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self._created = time.time()

    def describe(self) -> list[Metric]:
        return self.collect()

    def collect(self) -> list[Metric]:
        m = self._metrics
        responses = CounterMetricFamily(
            "consentgate_relayed_responses",
            "Responses relayed from the upstream, by status class.",
            labels=["status_class"],
        )
        for label, count in zip(_STATUS_CLASSES, m.relayed_by_class, strict=True):
            responses.add_metric([label], count, created=self._created)
        decisions = CounterMetricFamily(
            "consentgate_consent_decisions",
            "Consent decisions by outcome and client kind (registered, metadata_document: "
            "named by a URL, unknown).",
            labels=["outcome", "client_kind"],
        )
        for (outcome, kind), count in m.decision_counts.items():
            if count:
                decisions.add_metric([outcome, kind], count, created=self._created)
        return [
            decisions,
            responses,
            m.upstream_seconds.family(
                "consentgate_upstream_response_seconds",
                "Time from sending a request upstream to its response headers.",
            ),
            m.authorize_seconds.family(
                "consentgate_authorize_decision_seconds",
                "Time to decide an authorization request: parse, client lookup (for a "
                "client named by a URL, its metadata document: cached, or fetched), the "
                "remembered decision (before relaying it or showing the consent page).",
            ),
        ]


class Metrics:
    """The gate's metrics, in its own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        #: Plain numbers, exposed by :class:`_HotCollector` (see the module docstring).
        self.decision_counts: dict[tuple[str, ClientKind], int] = {
            (outcome, kind): 0 for outcome in DECISION_OUTCOMES for kind in CLIENT_KINDS
        }
        self.relayed_by_class = [0] * 5
        self.upstream_seconds = PlainHistogram(
            (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
        )
        self.authorize_seconds = PlainHistogram(
            (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5)
        )
        r.register(_HotCollector(self))
        self.refusals = Counter(
            "consentgate_refusals", "Requests refused, by reason.", ["reason"], registry=r
        )
        self.registrations = Counter(
            "consentgate_registrations", "Dynamic registrations seen, learned.", registry=r
        )
        self.unbound_relays = Counter(
            "consentgate_unbound_relays",
            "Approved authorizations relayed without a flow binding: the upstream's redirect "
            "was not recognised as a hand-off to its IdP, so the callback will be refused "
            "(docs/deploy.md).",
            registry=r,
        )
        upstream_errors = Counter(
            "consentgate_upstream_errors", "Upstream failures, by kind.", ["kind"], registry=r
        )
        self.upstream_errors = {kind: upstream_errors.labels(kind) for kind in UPSTREAM_KINDS}
        self.store_unavailable = self.refusals.labels("store_unavailable")
        document_failures = Counter(
            "consentgate_client_document_failures",
            "Metadata documents of clients named by a URL that could not be used, by the "
            "fetch's reason (docs/clients.md); refused domains are refusals.",
            ["reason"],
            registry=r,
        )
        self.document_failures: dict[str, Counter] = {
            reason: document_failures.labels(reason)
            for reason in FAILURE_REASONS
            if reason not in ("disabled", "blocked_domain")
        }
        info = Gauge(
            "consentgate_build_info",
            "The running version (value 1).",
            ["version", "python"],
            registry=r,
        )
        info.labels(__version__, platform.python_version()).set(1)
        self.pending_pages = Gauge(
            "consentgate_pending_pages",
            "Unexpired pending rows in the store (read at each scrape): authorization "
            "requests waiting for a sign-in at the gate ([identity]) and rows an earlier "
            "version left, since consent pages carry their request sealed in the page; "
            'pages shown are consentgate_consent_decisions_total{outcome="asked"}.',
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
        self._counters = self._audit_counters()

    def store_operation(self, operation: str, seconds: float) -> None:
        """One store round trip (``ConsentStore.time_operations``'s callback)."""
        child = self._store_children.get(operation)
        if child is None:
            child = self._store_children[operation] = self.store_seconds.labels(operation)
        child.observe(seconds)

    def watch_tampering(self, count: Callable[[], float]) -> None:
        self.tamper_events.set_function(count)

    def relayed(self, status: int, upstream_seconds: float | None) -> None:
        """One relayed response: the hot path, a list index and plain additions."""
        index = status // 100 - 1
        if 0 <= index < 5:
            self.relayed_by_class[index] += 1
        if upstream_seconds is not None:
            self.upstream_seconds.observe(upstream_seconds)

    def audit_sink(self, event: AuditEvent) -> None:
        """Count an audited decision (a sink of the app's :class:`AuditTrail`): each
        label is the event's type or one of its typed fields, never its message."""
        found = typed(event)
        if found is not None:
            count = self._counters.get(type(found))
            if count is not None:
                count(found)

    def _audit_counters(self) -> dict[type[TypedEvent], Callable[[Any], None]]:
        """What each audit event type counts (:meth:`audit_sink`)."""
        counters: dict[type[TypedEvent], Callable[[Any], None]] = {
            ConsentSilent: self._silent,
            AnswerRefused: self._page_refused,
            ApprovalsRefused: self._page_refused,
            ClientRefused: self._client_refused,
            ClientDocumentFailed: self._document_failed,
            ClientRegistered: lambda event: self.registrations.inc(),
        }
        for decided, outcome in _DECISIONS.items():
            counters[decided] = functools.partial(self._decided, outcome)
        for refused, reason in _REFUSALS.items():
            counters[refused] = functools.partial(self._refused, reason)
        return counters

    def _silent(self, event: ConsentSilent) -> None:
        outcome = "preapproved" if event.reason == "preapproved" else "remembered"
        self.decision_counts[outcome, _kind(event)] += 1

    def _decided(self, outcome: str, event: ConsentAsked | ConsentApproved | ConsentDenied) -> None:
        self.decision_counts[outcome, _kind(event)] += 1

    def _page_refused(self, event: AnswerRefused | ApprovalsRefused) -> None:
        # An event made by name (not by the gate) has no refusal: "other".
        label = event.refusal if event.refusal in PAGE_REFUSALS else "other"
        self.refusals.labels(label).inc()

    def _client_refused(self, event: ClientRefused) -> None:
        self.refusals.labels(_CLIENT_REFUSALS.get(event.reason, "client_refused")).inc()

    def _document_failed(self, event: ClientDocumentFailed) -> None:
        child = self.document_failures.get(event.reason)
        if child is not None:
            child.inc()

    def _refused(self, reason: str, event: TypedEvent) -> None:
        # A child made at the first refusal, not before: an unseen reason is no series.
        self.refusals.labels(reason).inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
