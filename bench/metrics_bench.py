"""What recording the metrics costs per request: ``python bench/metrics_bench.py``.

In one process: what the relay records for every upstream response (a status-class
counter and the time-to-headers histogram), what an audited decision adds (the
metrics sink of the audit trail), and a no-op call as the floor of a Python call.
"""

from __future__ import annotations

import timeit
from collections.abc import Callable

from consentgate.audit.decisions import ConsentSilent
from consentgate.metrics.collectors import Metrics

NUMBER = 200_000


def per_call(call: Callable[[], object]) -> float:
    return min(timeit.repeat(call, number=NUMBER, repeat=5)) / NUMBER * 1e6


def main() -> int:
    metrics = Metrics()
    event = ConsentSilent(
        request_id="id",
        reason="remembered",
        client_id="c",
        redirect_uri="http://127.0.0.1:9/cb",
        subject="s",
        client_kind="registered",
        upstream_status=302,
        bound=True,
    )

    def nothing() -> None:
        return None

    rows = [
        ("a no-op Python call (floor)", per_call(nothing)),
        ("relayed response: counter + histogram", per_call(lambda: metrics.relayed(200, 0.003))),
        ("an audited decision (metrics sink)", per_call(lambda: metrics.audit_sink(event))),
    ]
    print(f"recording metrics, µs per call (best of 5 x {NUMBER:,})")
    for label, value in rows:
        print(f"{label:<40} {value:6.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
