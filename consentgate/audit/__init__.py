"""Audit events and the audit trail (pure): one type per event, the emitter and its
sinks, the hash-chained table's rows and their checks."""
