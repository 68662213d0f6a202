"""Audit events and the audit trail: typed events, the emitter, the hash-chained table rows (pure)."""
