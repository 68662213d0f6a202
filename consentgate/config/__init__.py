"""The configuration, defined once: each key's type, default, parser, documentation
and reload behaviour in one field of a section dataclass, and what is derived from
it (loading, reload rules, the per-request settings snapshot).

Pure: nothing here imports aiohttp, opens a socket or a database (import-linter
contracts in ``pyproject.toml``); the CLI, the server, the store and the library
read the same :class:`~consentgate.config.model.Config`.
"""
