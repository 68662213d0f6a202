"""What ``check-config`` looks at beyond the file itself: whether ``serve``
will find what it needs on this machine, said before the first start instead of by it.

Errors: the store's directory missing or not writable, a store file others can read,
a PostgreSQL store that does not answer or whose role may not do what ``serve`` will
do there (:mod:`consentgate.cli.store_check`),
a keys directory that cannot be created or that ``serve`` would refuse, an admin
token file ``serve`` would refuse, ``[ui]`` templates or a logo ``serve`` would refuse
(docs/branding.md), a guarded path that is not where the upstream's
metadata says its endpoint is (:mod:`consentgate.core.oauth.upstream_endpoints`: ``serve`` would
refuse to start). Warnings: the upstream does not answer (it may start later;
``readyz`` says so meanwhile), or it publishes no metadata to compare the paths with.

It does I/O (files, one HTTP GET), so it is the CLI's, not the core's; no aiohttp import:
the upstream is asked with the standard library, so ``check-config`` stays light.
"""

from __future__ import annotations

import os
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from consentgate.config.model import Config
from consentgate.config.settings import path_rules
from consentgate.core.oauth.issuer import METADATA_PATH
from consentgate.core.oauth.upstream_endpoints import (
    endpoint_mismatches,
    metadata_request_headers,
    parse_metadata,
)
from consentgate.core.startup_errors import StartupError
from consentgate.signing.admin_token import load_admin_token
from consentgate.signing.key_directory import load_keyring

#: The paths compared with the upstream's metadata; ``--offline`` names them as unchecked.
COMPARED_KEYS = "upstream.authorize_path and upstream.register_path"
MAX_METADATA_BYTES = 256 * 1024


@dataclass(frozen=True)
class Finding:
    level: Literal["error", "warning"]
    message: str


def _writable_directory(directory: Path) -> bool:
    return directory.is_dir() and os.access(directory, os.W_OK | os.X_OK)


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def store_findings(config: Config) -> list[Finding]:
    if config.store.url:
        from consentgate.cli.store_check import postgres_problems

        return [Finding("error", problem) for problem in postgres_problems(config.store)]
    path = config.store.path
    if not path.parent.is_dir():
        return [Finding("error", f"store.path: the directory {path.parent} does not exist")]
    if not _writable_directory(path.parent):
        return [
            Finding(
                "error",
                f"store.path: the gate cannot write in {path.parent} (SQLite creates "
                f"{path.name}-wal and {path.name}-shm beside the file)",
            )
        ]
    if path.exists():
        mode = path.stat().st_mode & 0o7777
        if mode & 0o077:
            return [
                Finding(
                    "error",
                    f"store.path: {path} is accessible by group or others (mode "
                    f"{mode:04o}); run: chmod 600 {path}",
                )
            ]
        if not os.access(path, os.R_OK | os.W_OK):
            return [Finding("error", f"store.path: the gate cannot read and write {path}")]
    return []


def keys_findings(config: Config) -> list[Finding]:
    directory = config.keys.dir
    if not directory.exists():
        parent = _nearest_existing(directory.parent)
        if _writable_directory(parent):
            return []  # created, with a first key, at the first start
        return [
            Finding("error", f"keys.dir: {directory} cannot be created ({parent} is not writable)")
        ]
    try:
        load_keyring(directory, create=False)
    except StartupError as exc:
        if "has no keys" in str(exc):
            return []  # an empty directory: the first start fills it
        return [Finding("error", f"keys.dir: {exc}")]
    return []


def admin_findings(config: Config) -> list[Finding]:
    """The admin token file, checked as ``serve`` checks it (mode, length)."""
    token_file = config.admin.token_file
    if config.admin.listen is None or token_file is None:
        return []
    try:
        load_admin_token(token_file)
    except StartupError as exc:
        return [Finding("error", str(exc))]
    return []


def upstream_findings(config: Config) -> list[Finding]:
    url = config.upstream.url.rstrip("/") + "/"
    timeout = min(config.upstream.connect_timeout, 5.0)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - our config
            response.read(1)
    except urllib.error.HTTPError:
        return []  # any HTTP status: it answers
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        name = type(reason).__name__
        return [
            Finding(
                "warning",
                f"upstream.url: {config.upstream.url} does not answer ({name}: {reason}); "
                "serve starts anyway, and readyz reports it until it does",
            )
        ]
    return []


def endpoint_findings(config: Config) -> list[Finding]:
    """The guarded paths against the upstream's metadata, as ``serve`` compares them
    at start: a difference is an error naming the key and both values."""
    url = config.upstream.url.rstrip("/") + METADATA_PATH
    timeout = min(config.upstream.connect_timeout, 5.0)
    try:
        headers = dict(metadata_request_headers(config))
        ask = urllib.request.Request(url, headers=headers)  # noqa: S310 - our config
        with urllib.request.urlopen(ask, timeout=timeout) as response:  # noqa: S310 - our config
            status, body = response.status, response.read(MAX_METADATA_BYTES + 1)
    except urllib.error.HTTPError as exc:
        status, body = exc.code, b""
    except (urllib.error.URLError, OSError):
        return []  # said by upstream_findings
    document = parse_metadata(status, body) if len(body) <= MAX_METADATA_BYTES else None
    if document is None:
        return [
            Finding(
                "warning",
                f"{COMPARED_KEYS.replace(' and ', ', ')}: not compared with the upstream's "
                f"endpoints: {url} answers no RFC 8414 metadata (HTTP {status})",
            )
        ]
    return [
        Finding("error", str(mismatch))
        for mismatch in endpoint_mismatches(document, config, path_rules(config))
    ]


def ui_findings(config: Config) -> list[Finding]:
    """The templates and the logo, loaded and compiled as ``serve`` does at start."""
    from consentgate.web.rendering.templates import Templates

    try:
        Templates.from_config(config.ui)
    except StartupError as exc:
        return [Finding("error", str(exc))]
    return []


def identity_findings(config: Config, *, online: bool) -> list[Finding]:
    """``[identity]``: what ``serve`` would refuse (no client_id, no JOSE library) and,
    online, the issuer's metadata as the sign-in reads it (OpenID Connect Discovery
    §4.3: its ``issuer`` identical to the configured one; an error), and whether it and
    its key set answer at all (a warning: sign-ins fail closed until they do)."""
    if not config.identity.enabled:
        return []
    from consentgate.core.identity.discovery import DiscoveryError, metadata_url, parse_metadata
    from consentgate.web.identity.signin_setup import identity_problems

    findings = [Finding("error", problem) for problem in identity_problems(config)]
    if not online:
        return findings
    from consentgate.web.identity.provider import provider_tls

    try:  # with identity.ca_file: the private CA the provider is reached with
        tls = provider_tls(config.identity)
    except ValueError:  # reported above, by identity_problems
        tls = True
    context = tls if isinstance(tls, ssl.SSLContext) else None
    url = metadata_url(config.identity.issuer)
    try:
        metadata = parse_metadata(_get(url, context), config.identity.issuer)
        _get(metadata.jwks_uri, context)
    except DiscoveryError as exc:
        findings.append(Finding("error", f"identity.issuer: {url}: {exc}"))
    except (urllib.error.URLError, OSError, ValueError) as exc:
        findings.append(
            Finding(
                "warning",
                f"identity.issuer: {url} or its key set does not answer "
                f"({type(exc).__name__}); serve starts anyway, and every sign-in fails "
                "closed until it does",
            )
        )
    return findings


def _get(url: str, context: ssl.SSLContext | None = None) -> bytes:
    ask = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310
    with urllib.request.urlopen(ask, timeout=5.0, context=context) as response:  # noqa: S310
        body: bytes = response.read(MAX_METADATA_BYTES + 1)
    if len(body) > MAX_METADATA_BYTES:
        raise ValueError("too large")
    return body


def preflight(config: Config, *, upstream: bool = True) -> list[Finding]:
    """Everything found, errors first."""
    findings = [
        *store_findings(config),
        *keys_findings(config),
        *admin_findings(config),
        *ui_findings(config),
        *identity_findings(config, online=upstream),
    ]
    if upstream:
        findings += upstream_findings(config)
        findings += endpoint_findings(config)
    return sorted(findings, key=lambda finding: finding.level != "error")
