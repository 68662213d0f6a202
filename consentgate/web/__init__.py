"""The HTTP layer: ``create_app(config)``, the relay, the gate's handlers and pages.

Handlers parse, call the core and the store, and render; they never build SQL or
signatures. ``consentgate.serving.application`` is where every request enters.
"""
