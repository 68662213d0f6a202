"""``[identity]``: the gate's own OpenID Connect sign-in, so that consent is per person.

Off by default (``issuer`` empty): the gate then records what a *browser* approved,
as it always did. With an issuer, a browser without a gate session signs in at that
IdP first (authorization code flow with PKCE, OpenID Connect Core §3.1), and an
approval is recorded for the person (the issuer and the subject claim), so it follows
them to every browser where they signed in and never passes to someone else's
(MCP 2025-11-25, security best practices: "a registry of approved client_id values
per user"; docs/references.md).

Each key is one field (:mod:`consentgate.config.keyspec`). The issuer's metadata is
discovered at start (OpenID Connect Discovery 1.0 §4), so every key here takes effect
at a restart.
"""

from __future__ import annotations

import ipaddress
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from consentgate.config.keyspec import ParseContext, restart, spec
from consentgate.config.parsers import (
    _fmt,
    parse_duration,
    parse_optional_file_path,
    parse_scope_list,
    parse_str,
)

_AT_START = "the issuer's metadata is discovered and the sign-in set up at start"
_CLAIM_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.:")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def issuer_problem(text: str) -> str | None:
    """Why ``text`` cannot be an issuer identifier, or None (OpenID Connect Discovery
    §2: a case-sensitive https URL with scheme, host and optionally port and path, no
    query or fragment; plain http is accepted for a loopback host only)."""
    try:
        parts = urllib.parse.urlsplit(text)
        port = parts.port
    except ValueError:
        return "expected an issuer URL"
    del port
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return "expected an https issuer URL"
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        return "expected an https issuer URL (plain http only for a loopback host)"
    if parts.query or parts.fragment or "?" in text or "#" in text:
        return "an issuer URL has no query or fragment"
    if parts.username is not None or parts.password is not None:
        return "an issuer URL has no user information"
    if any(ord(c) <= 0x20 or ord(c) == 0x7F for c in text):
        return "an issuer URL has no spaces or control characters"
    return None


def parse_issuer(value: Any, ctx: ParseContext) -> str:
    """An issuer identifier (OpenID Connect Discovery §2): https, no query or fragment;
    plain http only for a loopback host (a test or a demo IdP); empty: identity off.
    Kept byte for byte: the metadata's ``issuer`` must equal it exactly (§4.3)."""
    text = parse_str(value, ctx)
    if text and (problem := issuer_problem(text)) is not None:
        raise ValueError(f"{problem}, got {_fmt(value)}")
    return text


def parse_claim_name(value: Any, ctx: ParseContext) -> str:
    """A claim name of the ID token, such as ``sub`` or ``email``."""
    text = parse_str(value, ctx)
    if not text or len(text) > 64 or not set(text) <= _CLAIM_CHARS:
        raise ValueError(f"expected a claim name such as sub or email, got {_fmt(value)}")
    return text


def parse_identity_scopes(value: Any, ctx: ParseContext) -> tuple[str, ...]:
    """Scopes of the gate's own sign-in; ``openid`` must be one (OIDC Core §3.1.2.1)."""
    scopes = parse_scope_list(value, ctx)
    if "openid" not in scopes:
        raise ValueError(f'must include "openid" (OpenID Connect Core §3.1.2.1), got {_fmt(value)}')
    return scopes


def parse_session_lifetime(value: Any, ctx: ParseContext) -> float:
    seconds = parse_duration(value, ctx)
    if not 60 <= seconds <= 400 * 86400:
        raise ValueError(f"must be between 1 minute and 400 days, got {_fmt(value)}")
    return seconds


def parse_client_id(value: Any, ctx: ParseContext) -> str:
    text = parse_str(value, ctx)
    if len(text) > 512 or any(ord(c) < 0x21 or ord(c) == 0x7F for c in text):
        raise ValueError(
            f"expected a client_id without spaces or control characters, got {_fmt(value)}"
        )
    return text


@dataclass(frozen=True)
class IdentityConfig:
    """Who the gate's person is: the IdP, the gate's own client there, the claims read."""

    issuer: str = field(
        default="",
        metadata=spec(
            parse_issuer,
            "Issuer URL of the OpenID Connect provider the gate signs people in at "
            "(https; http only on loopback); empty: no sign-in, approvals are per browser.",
            reload=restart(_AT_START),
        ),
    )
    client_id: str = field(
        default="",
        metadata=spec(
            parse_client_id,
            "The gate's own client_id at the issuer (not the upstream proxy's); required "
            "with issuer. Register the redirect URI {public_url}{prefix}/signin.",
            reload=restart(_AT_START),
        ),
    )
    client_secret: str = field(
        default="",
        metadata=spec(
            parse_str,
            "The gate's client secret (client_secret_basic); prefer client_secret_file; "
            "empty: a public client, PKCE only.",
            secret=True,
            reload=restart(_AT_START),
        ),
    )
    scopes: tuple[str, ...] = field(
        default=("openid", "email"),
        metadata=spec(
            parse_identity_scopes,
            'Scopes the gate asks for at sign-in; must include "openid".',
            reload=restart(_AT_START),
        ),
    )
    subject_claim: str = field(
        default="sub",
        metadata=spec(
            parse_claim_name,
            "ID token claim that identifies the person (with the issuer): approvals are "
            "keyed by a digest of both.",
            reload=restart(_AT_START),
        ),
    )
    display_claim: str = field(
        default="email",
        metadata=spec(
            parse_claim_name,
            'ID token claim shown to people ("Signed in as") and kept for operators '
            "(consents list --user).",
            reload=restart(_AT_START),
        ),
    )
    session_lifetime: float = field(
        default=12 * 3600.0,
        metadata=spec(
            parse_session_lifetime,
            "How long a gate sign-in lasts in one browser before the person signs in again.",
            reload=restart(_AT_START),
        ),
    )
    ca_file: Path | None = field(
        default=None,
        metadata=spec(
            parse_optional_file_path,
            "PEM file of CA certificates trusted for the issuer (its metadata, keys and "
            "token endpoint) besides the system's; empty: the system's only.",
            reload=restart("the sign-in's TLS context is built at start"),
        ),
    )

    @property
    def enabled(self) -> bool:
        return bool(self.issuer)
