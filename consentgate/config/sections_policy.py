"""The policy sections: ``[consent]`` (when and how the gate asks) and ``[clients]``
(clients named by a URL: whether and how their metadata documents are fetched).

Each key is one field: its type, default, parser, doc and reload behaviour
(:mod:`consentgate.config.keyspec`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal

from consentgate.config.keyspec import applies, obsolete, restart, spec
from consentgate.config.parsers import (
    Choice,
    DomainEntry,
    Network,
    bounded_int,
    parse_bool,
    parse_domains,
    parse_duration,
    parse_fetch_networks,
    parse_host_name,
    parse_nonempty_str,
    parse_optional_file_path,
    parse_positive_int,
    parse_scope_list,
    parse_str_map,
    parse_uri_list,
)

#: ``[consent] mode``: remember an approval, or ask on every authorization.
ConsentMode = Literal["remember", "always"]


#: ``[consent] service_name`` when the operator names none: the gate's own words, so
#: the pages say it in their language (``web/rendering/catalogs.shown_service_name``).
DEFAULT_SERVICE_NAME: Final = "this service"


@dataclass(frozen=True)
class ConsentConfig:
    """When and how the gate asks."""

    mode: ConsentMode = field(
        default="remember",
        metadata=spec(
            Choice(ConsentMode),
            '"remember" lets a person approve a client once; "always" asks on every authorization.',
            reload=applies("per request (decision)"),
        ),
    )
    service_name: str = field(
        default=DEFAULT_SERVICE_NAME,
        metadata=spec(
            parse_nonempty_str,
            "Name shown on the consent page.",
            reload=applies("per request (consent page)"),
        ),
    )
    remember_for: float = field(
        default=30 * 86400.0,
        metadata=spec(
            parse_duration,
            "How long a remembered approval lasts.",
            reload=applies("per approval (records already made keep their expiry)"),
        ),
    )
    pending_ttl: float = field(
        default=600.0,
        metadata=spec(
            parse_duration,
            "How long a consent page stays answerable.",
            reload=applies("per consent page shown"),
        ),
    )
    binding_ttl: float = field(
        default=600.0,
        metadata=spec(
            parse_duration,
            "How long an approved sign-in may take to come back from the IdP.",
            reload=applies("per sign-in started"),
        ),
    )
    max_pending_per_browser: int = field(
        default=5,
        metadata=spec(
            parse_positive_int,
            "Consent pages one browser may have open at once (the oldest page's cookie is "
            "dropped beyond, so it can no longer be answered).",
            reload=applies("per consent page shown"),
        ),
    )
    max_flows_per_browser: int = field(
        default=5,
        metadata=spec(
            parse_positive_int,
            "Sign-ins one browser may have in flight at once.",
            reload=applies("per sign-in started"),
        ),
    )
    max_pending_per_address: int = field(
        default=50,
        metadata=spec(
            parse_positive_int,
            "Ignored: consent pages carry their request sealed in the page, so the store "
            "keeps nothing per address to bound. Accepted so existing files still load.",
            reload=obsolete(
                "consent pages carry their request sealed in the page and the "
                "store keeps nothing for them, so there is no per-address "
                "share to bound"
            ),
        ),
    )
    max_pending: int = field(
        default=10_000,
        metadata=spec(
            parse_positive_int,
            "Ignored: consent pages carry their request sealed in the page, so there is no "
            "store budget for them to fill. Accepted so existing files still load.",
            reload=obsolete(
                "consent pages carry their request sealed in the page and the "
                "store keeps nothing for them, so there is no total to bound "
                "and no page is refused"
            ),
        ),
    )
    preapproved_redirect_uris: tuple[str, ...] = field(
        default=(),
        metadata=spec(
            parse_uri_list,
            "Exact redirect URIs of first-party clients that never need consent.",
            reload=applies("per request (decision)"),
        ),
    )
    allow_request_uri: bool = field(
        default=False,
        metadata=spec(
            parse_bool,
            "Accept request_uri (PAR); such requests are always asked, never remembered.",
            reload=applies("per request (parsing)"),
        ),
    )
    allow_request_object: bool = field(
        default=False,
        metadata=spec(
            parse_bool,
            "Accept request (JAR); such requests are always asked, never remembered.",
            reload=applies("per request (parsing)"),
        ),
    )
    show_logos: bool = field(
        default=False,
        metadata=spec(
            parse_bool,
            "Load clients' self-declared logo_uri images on the consent page.",
            reload=applies("per request (consent page)"),
        ),
    )
    scope_descriptions: tuple[tuple[str, str], ...] = field(
        default=(),
        metadata=spec(
            parse_str_map,
            "Table of scope = description shown on the consent page.",
            env=False,
            reload=applies("per request (consent page)"),
        ),
    )
    idp_host: str = field(
        default="",
        metadata=spec(
            parse_host_name,
            'Host where people sign in after consent ("Next, you sign in at ..."); '
            '"" learns it from the upstream\'s redirect to its IdP.',
            reload=applies("per request (consent page)"),
        ),
    )
    upstream_scopes: tuple[str, ...] = field(
        default=(),
        metadata=spec(
            parse_scope_list,
            "Scopes the upstream asks its IdP for, shown on the consent page; "
            "[] learns them from the upstream's redirect to its IdP.",
            reload=applies("per request (consent page)"),
        ),
    )


@dataclass(frozen=True)
class ClientsConfig:
    """Clients named by a URL (Client ID Metadata Documents, MCP 2025-11-25): whether and
    how the gate fetches their documents (docs/clients.md; the SSRF rules in
    docs/references.md)."""

    fetch_documents: bool = field(
        default=True,
        metadata=spec(
            parse_bool,
            "Fetch the metadata document of a client whose client_id is an https URL; "
            "false refuses such clients.",
            reload=applies("per request (a client named by a URL, before the cache)"),
        ),
    )
    fetch_allow_networks: tuple[Network, ...] = field(
        default=(),
        metadata=spec(
            parse_fetch_networks,
            'Networks a document fetch may reach besides public addresses, e.g. ["10.20.0.0/16"]; '
            "empty: public addresses only (no loopback, private or link-local address).",
            reload=restart("the document fetcher is built at start"),
        ),
    )
    fetch_ca_file: Path | None = field(
        default=None,
        metadata=spec(
            parse_optional_file_path,
            "PEM file of CA certificates trusted for document hosts besides the system's; "
            "empty: the system's only.",
            reload=restart("the fetcher's TLS context is built at start"),
        ),
    )
    fetch_timeout: float = field(
        default=5.0,
        metadata=spec(
            parse_duration,
            "Longest one document fetch may take, from name lookup to the last byte.",
            reload=restart("the document fetcher is built at start"),
        ),
    )
    fetch_min_ttl: float = field(
        default=60.0,
        metadata=spec(
            parse_duration,
            "Shortest time a fetched document is kept, whatever its Cache-Control says "
            "(no-store, no-cache, max-age=0 included).",
            reload=restart("the document cache is built at start"),
        ),
    )
    fetch_max_ttl: float = field(
        default=86400.0,
        metadata=spec(
            parse_duration,
            "Longest time a document is used before it is fetched (revalidated) again.",
            reload=restart("the document cache is built at start"),
        ),
    )
    fetch_default_ttl: float = field(
        default=3600.0,
        metadata=spec(
            parse_duration,
            "How long a document without max-age or s-maxage is kept.",
            reload=restart("the document cache is built at start"),
        ),
    )
    fetch_failure_ttl: float = field(
        default=30.0,
        metadata=spec(
            parse_duration,
            "How long a failed fetch is remembered: the same client_id is not fetched "
            "again before.",
            reload=restart("the document cache is built at start"),
        ),
    )
    fetch_cache_size: int = field(
        default=1000,
        metadata=spec(
            bounded_int(1, 1_000_000),
            "Most documents kept in memory (least recently used ones go first).",
            reload=restart("the document cache is built at start"),
        ),
    )
    fetch_per_host_per_minute: int = field(
        default=30,
        metadata=spec(
            bounded_int(1, 100_000),
            "Most fetches to one document host in any minute; beyond, a client_id on that "
            "host not already cached is refused for now.",
            reload=restart("the document fetcher is built at start"),
        ),
    )
    fetch_max_concurrent: int = field(
        default=16,
        metadata=spec(
            bounded_int(1, 10_000),
            "Most document fetches running at once; beyond, a new one is refused at once "
            "(the gate is busy).",
            reload=restart("the document fetcher is built at start"),
        ),
    )
    blocked_domains: tuple[DomainEntry, ...] = field(
        default=(),
        metadata=spec(
            parse_domains,
            'Client hosts never fetched or accepted: "example.com" and its subdomains, '
            '"=example.com" that host only.',
            reload=applies("per request (a client named by a URL, before the cache)"),
        ),
    )
    allowed_domains: tuple[DomainEntry, ...] = field(
        default=(),
        metadata=spec(
            parse_domains,
            "When not empty, the only client hosts fetched and accepted (same forms as "
            "blocked_domains, which wins).",
            reload=applies("per request (a client named by a URL, before the cache)"),
        ),
    )
