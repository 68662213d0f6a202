"""Typed keys for what the application and each request carry (no globals)."""

from __future__ import annotations

import aiohttp
from aiohttp import web

from consentgate.config import Config
from consentgate.forwarding import IPAddress
from consentgate.paths import PathRules
from consentgate.templates import Templates

CONFIG = web.AppKey("config", Config)
UPSTREAM_SESSION = web.AppKey("upstream_session", aiohttp.ClientSession)
PATH_RULES = web.AppKey("path_rules", PathRules)
TEMPLATES = web.AppKey("templates", Templates)
#: Cookie-name prefixes that belong to the gate and are never relayed upstream.
COOKIE_PREFIXES = web.AppKey("cookie_prefixes", tuple[str, ...])

REQUEST_ID = web.RequestKey("request_id", str)
PEER_IP = web.RequestKey("peer_ip", IPAddress | None)  # type: ignore[arg-type]
CLIENT_IP = web.RequestKey("client_ip", str)
UPSTREAM_SECONDS = web.RequestKey("upstream_seconds", float)
