"""The gate's Prometheus metrics: the collectors a gate keeps, fed by the audit trail,
and one ``/metrics`` added up over the workers of ``[server] workers``.

Below the web layer: a handler counts, the admin listener serves. Nothing here answers
a request.
"""
