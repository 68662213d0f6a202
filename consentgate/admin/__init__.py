"""The Prometheus metrics of a gate (``metrics.py``) and how several workers give one
``/metrics`` (``metrics_merge.py``); served on the admin listener (``admin/listener.py``).
"""
