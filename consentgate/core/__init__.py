"""The pure core: the OAuth request rules (``oauth/``), untrusted input and
redaction (``trust/``), records, the key ring, sealed pages and cookies
(``signed/``), client metadata views (the configuration they read is
:mod:`consentgate.config`, the layer below).

Nothing here imports aiohttp, the store or any package that does I/O (import-linter
contracts in ``pyproject.toml``): every rule can be tested, and reused, without a
server or a disk.
"""
