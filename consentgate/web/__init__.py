"""The HTTP layer: the relay, the gate's handlers (``consent_flow/``), the request-shape
guards (``guards/``) and the pages (``rendering/``).

Handlers parse, call the core and the store, and render; they never build SQL or
signatures. ``consentgate.serving.application`` assembles them into the app, where
every request enters.
"""
