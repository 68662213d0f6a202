"""The gate's log lines: the loggers and the handlers installed on them
(``loggers.py``), the text and JSON formatters (``formatters.py``), and the access and
audit lines written in batches (``line_writers.py``).

The redaction rules are pure (:mod:`consentgate.core.trust.redact`); this package writes.
"""
