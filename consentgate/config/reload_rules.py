"""What a SIGHUP may change in a running gate, decided before anything changes.

A reload re-reads the configuration file the gate was started with (the same
loader, environment overrides and secret files as at start) and compares it with
the configuration in force. Every key is in exactly one of two classes (a test
keeps the lists complete, so a new key cannot be forgotten):

* :data:`RELOADABLE` keys are read from the per-request settings snapshot
  (:mod:`consentgate.config.settings`) or by the logging setup: a reload swaps the
  snapshot, requests already running finish under the old one, new requests see
  the new values, and no connection or stream is dropped;
* :data:`RESTART_ONLY` keys were used at start to open something (a socket, the
  store, the upstream pool, the routes, the cookie keys): changing them live would
  leave a half-old, half-new gate, so they keep their running values and are
  reported, old and new, in one warning "ignored until restart".

A key missing from both lists is treated as restart-only: the safe side.

A file with an error is refused whole, before this module is reached
(:func:`~consentgate.config.loading.load_config` raises with every problem). A file
that is valid alone may still clash with the restart-only values that stay in
force (a new ``blocked_paths`` entry covering the running ``authorize_path``);
:func:`plan_reload` re-runs the configuration's cross-checks on the merged result
and then refuses the reload too.

Pure module: no aiohttp import, no I/O.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any, Final

from consentgate.config.dsn import MASK, mask_password
from consentgate.config.loading import SECTIONS, Config, check_config

#: How an empty value (``""``, a listener that is off) is shown.
EMPTY: Final = "(empty)"

#: Where a reload reads the configuration from: ``serve`` gives the same loader it
#: started with (``load_config`` of ``--config FILE``, the environment as it is).
ConfigSource = Callable[[], Config]

#: Keys a reload applies to new requests, and where each is read.
RELOADABLE: Final[Mapping[str, str]] = {
    "server.trusted_proxies": "per request (forwarded headers)",
    "server.max_body_size": "per request (relay)",
    "server.body_timeout": "per request (relay)",
    "upstream.host_header": "per request (relay)",
    "upstream.max_connections_per_address": "per request (relay)",
    "upstream.blocked_paths": "per request (the path rules of the snapshot)",
    "upstream.direct_paths": "only by nginx-config; checked against the gate's paths",
    "consent.mode": "per request (decision)",
    "consent.service_name": "per request (consent page)",
    "consent.remember_for": "per approval (records already made keep their expiry)",
    "consent.pending_ttl": "per consent page shown",
    "consent.binding_ttl": "per sign-in started",
    "consent.max_pending_per_browser": "per consent page shown",
    "consent.max_flows_per_browser": "per sign-in started",
    "consent.max_pending_per_address": "ignored (consent pages are sealed in the page)",
    "consent.max_pending": "ignored (consent pages are sealed in the page)",
    "consent.preapproved_redirect_uris": "per request (decision)",
    "consent.allow_request_uri": "per request (parsing)",
    "consent.allow_request_object": "per request (parsing)",
    "consent.show_logos": "per request (consent page)",
    "consent.scope_descriptions": "per request (consent page)",
    "clients.fetch_documents": "per request (a client named by a URL, before the cache)",
    "clients.blocked_domains": "per request (a client named by a URL, before the cache)",
    "clients.allowed_domains": "per request (a client named by a URL, before the cache)",
    "log.format": "the log handler and the access log writer are rebuilt",
    "log.level": "the log level is set again",
    "log.access_log": "the access log writer is switched on or off",
}

#: Keys read once at start, and why a live change is not applied.
RESTART_ONLY: Final[Mapping[str, str]] = {
    "server.public_url": "cookie names (__Host-, Secure) and origins are fixed at start",
    "server.listen": "the listening socket is bound at start",
    "server.prefix": "the gate's routes are fixed when the app is built",
    "server.workers": "the supervisor starts the processes once",
    "server.shutdown_grace": "the supervisor's kill deadline is fixed at start",
    "server.header_timeout": "the connection guard is built at start",
    "server.idle_timeout": "the server's keep-alive timeout is set at start",
    "server.max_connections": "the connection cap and the open-file limit are set at start",
    "upstream.url": "the upstream connection pool is opened at start",
    "upstream.authorize_path": "tied to the upstream's routes; in-flight flows use it",
    "upstream.register_path": "tied to the upstream's routes",
    "upstream.callback_path": "tied to the upstream's routes; a sign-in in flight returns there",
    "upstream.connect_timeout": "the upstream session is built at start",
    "upstream.read_timeout": "the upstream session is built at start",
    "upstream.keepalive_timeout": "the upstream connection pool is built at start",
    "upstream.max_connections": "the upstream connection pool is built at start",
    "upstream.issuer": "the issuer cache is built at start",
    "store.path": "the store is opened at start",
    "store.url": "the store is opened at start",
    "store.password": "the store is opened at start",
    "store.pool_size": "the store is opened at start",
    "store.statement_timeout": "the store is opened at start",
    "store.keep_expired": "the purge task starts with it",
    "keys.dir": "keys are loaded from it at start (SIGHUP re-reads this directory)",
    "keys.cookie_secret": "the cookie keys are derived from it at start",
    "admin.listen": "the admin listener is bound at start",
    "admin.token_file": "the admin token is read from this file at start (SIGHUP re-reads "
    "the same file: rotate the token in place)",
    "admin.metrics_need_token": "the admin listener's routes are set up at start",
    "audit.keep": "the purge task takes it at start",
    "clients.fetch_allow_networks": "the document fetcher is built at start",
    "clients.fetch_ca_file": "the fetcher's TLS context is built at start",
    "clients.fetch_timeout": "the document fetcher is built at start",
    "clients.fetch_min_ttl": "the document cache is built at start",
    "clients.fetch_max_ttl": "the document cache is built at start",
    "clients.fetch_default_ttl": "the document cache is built at start",
    "clients.fetch_failure_ttl": "the document cache is built at start",
    "clients.fetch_cache_size": "the document cache is built at start",
    "clients.fetch_per_host_per_minute": "the document fetcher is built at start",
    "clients.fetch_max_concurrent": "the document fetcher is built at start",
}


@dataclass(frozen=True)
class Change:
    """One key whose value differs, both values as they may be logged (secrets masked)."""

    key: str
    old: str
    new: str

    def __str__(self) -> str:
        return f"{self.old} -> {self.new}"


@dataclass(frozen=True)
class ReloadPlan:
    """What a reload does: ``config`` is what will be in force (the new file's
    reloadable keys, every restart-only key at its running value)."""

    config: Config
    applied: tuple[Change, ...]
    ignored: tuple[Change, ...]
    #: Why the merged configuration cannot be used; the reload is then refused whole.
    problems: tuple[str, ...] = ()

    @property
    def refused(self) -> bool:
        return bool(self.problems)


def is_reloadable(key: str) -> bool:
    """``section.key`` is applied by a reload (anything unlisted waits for a restart)."""
    return key in RELOADABLE


def plan_reload(old: Config, new: Config) -> ReloadPlan:
    """Split the difference between the running ``old`` and the re-read ``new``."""
    applied: list[Change] = []
    ignored: list[Change] = []
    sections: dict[str, Any] = {}
    for section in SECTIONS:
        old_part, new_part = getattr(old, section), getattr(new, section)
        keep: dict[str, Any] = {}
        for spec in fields(old_part):
            before, after = getattr(old_part, spec.name), getattr(new_part, spec.name)
            if before == after:
                continue
            key = f"{section}.{spec.name}"
            secret = bool(spec.metadata.get("secret"))
            change = Change(key, shown(before, secret=secret), shown(after, secret=secret))
            if is_reloadable(key):
                applied.append(change)
            else:
                ignored.append(change)
                keep[spec.name] = before
        sections[section] = dataclasses.replace(new_part, **keep) if keep else new_part
    merged = Config(**sections)
    problems: tuple[str, ...] = ()
    if ignored:
        found = check_config(merged)
        if found:
            waiting = ", ".join(change.key for change in ignored)
            problems = tuple(
                f"{problem} (with {waiting} kept at the running value until a restart)"
                for problem in found
            )
    return ReloadPlan(merged, tuple(applied), tuple(ignored), problems)


def shown(value: Any, *, secret: bool = False) -> str:
    """A configuration value as a log line may show it: a PostgreSQL URL with its
    password masked, any other secret as ``***``, never as given; ``(empty)`` for an
    empty string or a listener that is off (quotes would be escaped in a log line).
    """
    if value is None or value == "":
        return EMPTY
    if secret:
        return mask_password(value) if isinstance(value, str) and "://" in value else MASK
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, tuple):
        return "[" + ", ".join(shown(item) for item in value) + "]"
    return str(value)
