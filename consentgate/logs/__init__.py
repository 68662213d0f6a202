"""The gate's log lines: text or JSON formatters, the batched access and audit writers, and
the handlers that keep OAuth secrets out of libraries' logs.

The redaction rules themselves are pure (:mod:`consentgate.core.trust.redact`); this
package writes.
"""
