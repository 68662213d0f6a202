"""Typed keys for what the application and each request carry (no globals).

A request reads its configuration from ``request[SETTINGS]``, the snapshot taken
when it entered (:mod:`consentgate.config.settings`), never from the application:
a reload swaps ``app[LIVE_SETTINGS]`` in one step and running requests keep theirs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from consentgate.audit.events import AuditTrail
from consentgate.clients.fetcher import DocumentFetcher
from consentgate.config.reload_hooks import ReloadHooks
from consentgate.config.reload_rules import ConfigSource
from consentgate.config.settings import LiveSettings, Settings
from consentgate.core.clock import Clock
from consentgate.core.oauth.idp_handoff import IdpMemory
from consentgate.core.oauth.issuer import IssuerCache
from consentgate.core.signed.cookies import CookieCrypto
from consentgate.core.throttle import Throttle
from consentgate.core.trust.forwarding import IPAddress
from consentgate.logs.line_writers import AccessLines
from consentgate.metrics.collectors import Metrics
from consentgate.store import ConsentStore
from consentgate.upstream.upstream_client import Upstream
from consentgate.web.config_file_probe import ConfigFileProbe
from consentgate.web.guards.inflight import InFlight, Sending
from consentgate.web.identity.provider import IdentityProvider
from consentgate.web.rendering.templates import Templates


@dataclass(frozen=True, slots=True)
class WorkerPlace:
    """Where this process stands under a supervisor (``[server] workers > 1``): its
    number, how many workers there are, and the supervisor's private directory where
    each worker answers the others (one ``/metrics`` for all,
    :mod:`~consentgate.metrics.worker_merge`)."""

    number: int
    count: int
    directory: Path


#: The configuration now in force, swapped whole on reload.
LIVE_SETTINGS = web.AppKey("live_settings", LiveSettings)
CLOCK: web.AppKey[Clock] = web.AppKey("clock")
#: Where every audited decision goes (the log today; metrics and a table later).
AUDIT = web.AppKey("audit", AuditTrail)
UPSTREAM = web.AppKey("upstream", Upstream)
TEMPLATES = web.AppKey("templates", Templates)
STORE = web.AppKey("store", ConsentStore)
COOKIE_CRYPTO = web.AppKey("cookie_crypto", CookieCrypto)
ISSUER = web.AppKey("issuer", IssuerCache)
#: Why this gate's keys do not fit its store (a cookie secret other gates do not share).
KEY_PROBLEMS: web.AppKey[tuple[str, ...]] = web.AppKey("key_problems")
#: The endpoint mismatches already logged (``web/endpoints.py``): each is logged once.
ENDPOINT_MISMATCHES_LOGGED: web.AppKey[set[str]] = web.AppKey("endpoint_mismatches_logged")
#: ``readyz``'s check that the configuration file on disk loads: one read at a time, each
#: problem logged once (``web/config_file_probe.py``).
CONFIG_FILE_PROBE = web.AppKey("config_file_probe", ConfigFileProbe)

#: What the upstream's hand-offs to its IdP said (``web/consent_flow/flow.py`` learns,
#: the consent page shows: where the person signs in next, the third-party scopes).
IDP_MEMORY = web.AppKey("idp_memory", IdpMemory)
#: Where SIGHUP re-reads the configuration (``serve`` sets it: the loader of
#: ``--config FILE``); absent, a reload only runs the hooks below.
CONFIG_SOURCE: web.AppKey[ConfigSource] = web.AppKey("config_source")
#: Run on SIGHUP; each resource that can be reloaded registers what that means for it.
RELOAD_HOOKS = web.AppKey("reload_hooks", ReloadHooks)
#: One "store unavailable" line per kind of outage per interval.
STORE_LOG = web.AppKey("store_log", Throttle)
#: At most one "upstream unavailable" WARNING per kind (unreachable, timeout) per interval.
UPSTREAM_LOG = web.AppKey("upstream_log", Throttle)
#: The batched access log ``serve`` writes (absent: the ``consentgate.access`` logger).
ACCESS_LINES = web.AppKey("access_lines", AccessLines)
#: The Prometheus metrics of this app (served on the admin listener).
METRICS = web.AppKey("metrics", Metrics)
#: Requests in flight and the streams a shutdown may cut.
IN_FLIGHT = web.AppKey("in_flight", InFlight)
#: The metadata documents of clients named by a URL (``web/documents.py``), one per
#: process: its cache is what lets /authorize and the consent answer re-check a
#: document in about a microsecond.
DOCUMENT_FETCHER = web.AppKey("document_fetcher", DocumentFetcher)
#: The identity provider of the gate's own sign-in (set only with ``[identity]``).
IDENTITY = web.AppKey("identity", IdentityProvider)
#: Set in a worker process only (see :class:`WorkerPlace`).
WORKER_PLACE = web.AppKey("worker_place", WorkerPlace)

SETTINGS = web.RequestKey("settings", Settings)
REQUEST_ID = web.RequestKey("request_id", str)
#: The language of the request's pages, once chosen (``rendering/pages.page_language``).
PAGE_LANGUAGE = web.RequestKey("page_language", str)
#: The authorization request's ``ui_locales``, kept until a page is rendered.
PAGE_UI_LOCALES = web.RequestKey("page_ui_locales", str)
PEER_IP: web.RequestKey[IPAddress | None] = web.RequestKey("peer_ip")
CLIENT_IP = web.RequestKey("client_ip", str)
UPSTREAM_SECONDS = web.RequestKey("upstream_seconds", float)
#: How far the relayed response got (set once the upstream answered).
SENDING = web.RequestKey("sending", Sending)
