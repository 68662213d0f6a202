"""The pure core: OAuth request parsing and path rules, records and their
signatures, client metadata views, redaction and audit events (the configuration
they read is :mod:`consentgate.config`, the layer below).

Nothing here imports aiohttp or the store (import-linter contracts in
``pyproject.toml``): every rule can be tested, and reused, without a server.
"""
