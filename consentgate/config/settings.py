"""One snapshot of the configuration per request, swapped in one step on reload.

Everything a request reads from the configuration (the policy in ``[consent]``,
the public URL, the path rules derived from ``[upstream]``) comes from one
:class:`Settings`, taken once when the request enters. A reload builds a new
:class:`Settings` beside the old one and swaps it in with one assignment
(:meth:`LiveSettings.swap`), so a request never sees half of an old
configuration and half of a new one, and requests already running finish under
the snapshot they started with.

Resources opened at start (the listening socket, the store, the upstream pool)
are not part of a snapshot: they are opened from the configuration the
application was created with, and a reload that changes them needs a restart.
:func:`consentgate.config.reload_rules.plan_reload` decides which keys those are and
hands :meth:`LiveSettings.swap` a configuration that keeps their running values.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass
from typing import Final

from consentgate.config.model import Config
from consentgate.core.oauth.paths import PathRules, Route

#: Every cookie name the gate uses starts with one of these; none is ever relayed.
GATE_COOKIE_PREFIXES: Final = ("__Host-cg_", "cg_")


def path_rules(config: Config) -> PathRules:
    """The routes of the paths the gate owns or guards, from ``[upstream]`` and the prefix."""
    upstream = config.upstream
    exact = {
        upstream.authorize_path: Route.AUTHORIZE,
        upstream.callback_path: Route.CALLBACK,
        upstream.register_path: Route.REGISTER,
    }
    subtree = dict.fromkeys(upstream.blocked_paths, Route.BLOCKED)
    subtree[config.server.prefix] = Route.GATE
    return PathRules(exact, subtree)


@dataclass(frozen=True, slots=True)
class Settings:
    """The configuration and what is derived from it once, for every request."""

    config: Config
    path_rules: PathRules
    #: ``host[:port]`` of ``server.public_url``: the X-Forwarded-Host the upstream gets.
    public_host: str
    #: Cookie-name prefixes that belong to the gate and are never relayed upstream.
    cookie_prefixes: tuple[str, ...] = GATE_COOKIE_PREFIXES

    @classmethod
    def of(cls, config: Config) -> Settings:
        return cls(
            config=config,
            path_rules=path_rules(config),
            public_host=urllib.parse.urlsplit(config.server.public_url).netloc,
        )


class LiveSettings:
    """The current :class:`Settings`; :meth:`swap` replaces it atomically."""

    def __init__(self, config: Config) -> None:
        self._current = Settings.of(config)

    @property
    def current(self) -> Settings:
        return self._current

    def swap(self, config: Config) -> Settings:
        """Derive everything from ``config`` first, then swap in one assignment."""
        new = Settings.of(config)
        self._current = new
        return new
