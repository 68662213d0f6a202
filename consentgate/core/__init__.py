"""The pure core: configuration, the OAuth request rules (``oauth/``), untrusted input
and redaction (``trust/``), records, the key ring, sealed pages and cookies
(``signed/``), client metadata views and audit events.

Nothing here imports aiohttp, the store or any package that does I/O (import-linter
contracts in ``pyproject.toml``): every rule can be tested, and reused, without a
server or a disk.
"""
