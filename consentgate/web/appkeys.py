"""Typed keys for what the application and each request carry (no globals)."""

from __future__ import annotations

import aiohttp
from aiohttp import web

from consentgate.core.clock import Clock
from consentgate.core.config import Config
from consentgate.core.cookies import CookieCrypto
from consentgate.core.forwarding import IPAddress
from consentgate.core.issuer import IssuerCache
from consentgate.core.paths import PathRules
from consentgate.store import ConsentStore
from consentgate.web.templates import Templates

CONFIG = web.AppKey("config", Config)
CLOCK: web.AppKey[Clock] = web.AppKey("clock")
UPSTREAM_SESSION = web.AppKey("upstream_session", aiohttp.ClientSession)
PATH_RULES = web.AppKey("path_rules", PathRules)
TEMPLATES = web.AppKey("templates", Templates)
STORE = web.AppKey("store", ConsentStore)
COOKIE_CRYPTO = web.AppKey("cookie_crypto", CookieCrypto)
ISSUER = web.AppKey("issuer", IssuerCache)
#: ``host[:port]`` of ``server.public_url``: the X-Forwarded-Host the upstream gets.
PUBLIC_HOST = web.AppKey("public_host", str)
#: Cookie-name prefixes that belong to the gate and are never relayed upstream.
COOKIE_PREFIXES: web.AppKey[tuple[str, ...]] = web.AppKey("cookie_prefixes")

REQUEST_ID = web.RequestKey("request_id", str)
PEER_IP: web.RequestKey[IPAddress | None] = web.RequestKey("peer_ip")
CLIENT_IP = web.RequestKey("client_ip", str)
UPSTREAM_SECONDS = web.RequestKey("upstream_seconds", float)
