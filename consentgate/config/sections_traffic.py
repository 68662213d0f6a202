"""The ``[server]`` and ``[upstream]`` sections: how clients reach the gate, and how
the gate reaches the single-client OAuth proxy behind it.

Each key is one field: its type, default, parser, doc and reload behaviour
(:mod:`consentgate.config.keyspec`); the loader, the reload rules and ``check-config``
read them from here.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Literal

from consentgate.config.keyspec import applies, restart, spec
from consentgate.config.parsers import (
    Choice,
    HostPort,
    bounded_int,
    parse_cidr_list,
    parse_duration,
    parse_listen,
    parse_non_negative_int,
    parse_origin,
    parse_path_list,
    parse_positive_int,
    parse_prefix,
    parse_str,
    parse_url_path,
)

#: ``[upstream] host_header``: which Host the upstream gets.
HostHeader = Literal["upstream", "preserve"]


@dataclass(frozen=True)
class ServerConfig:
    """How the gate listens and the origin people and clients see."""

    public_url: str = field(
        metadata=spec(
            parse_origin,
            "Origin that browsers and clients use; https in production.",
            reload=restart("cookie names (__Host-, Secure) and origins are fixed at start"),
        )
    )
    listen: HostPort = field(
        default=HostPort("127.0.0.1", 8080),
        metadata=spec(
            parse_listen,
            'Address to listen on, "host:port" ("[::1]:8080" for IPv6).',
            reload=restart("the listening socket is bound at start"),
        ),
    )
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = field(
        default=(),
        metadata=spec(
            parse_cidr_list,
            "CIDRs whose X-Forwarded-* and X-Request-Id headers are believed.",
            reload=applies("per request (forwarded headers)"),
        ),
    )
    prefix: str = field(
        default="/_consentgate",
        metadata=spec(
            parse_prefix,
            "Path under which the gate serves its own pages and probes.",
            reload=restart("the gate's routes are fixed when the app is built"),
        ),
    )
    max_body_size: int = field(
        default=64 * 1024 * 1024,
        metadata=spec(
            parse_positive_int,
            "Largest request body relayed, in bytes (413 beyond).",
            reload=applies("per request (relay)"),
        ),
    )
    workers: int = field(
        default=1,
        metadata=spec(
            bounded_int(1, 64),
            "Processes serving the listen address together (SO_REUSEPORT), under one "
            "supervising parent; 1 serves from the one process.",
            reload=restart("the supervisor starts the processes once"),
        ),
    )
    shutdown_grace: float = field(
        default=10.0,
        metadata=spec(
            parse_duration,
            "Seconds from SIGTERM/SIGINT to exit: in-flight requests may finish, streams "
            "still open near the end are cut.",
            reload=restart("the supervisor's kill deadline is fixed at start"),
        ),
    )
    header_timeout: float = field(
        default=10.0,
        metadata=spec(
            parse_duration,
            "Seconds a client has to send a request's headers once it started sending them.",
            reload=restart("the connection guard is built at start"),
        ),
    )
    body_timeout: float = field(
        default=30.0,
        metadata=spec(
            parse_duration,
            "Seconds a request body may pause (no byte arriving) while the gate waits for "
            "it; then 408 and the connection is closed (nginx: client_body_timeout).",
            reload=applies("per request (relay)"),
        ),
    )
    idle_timeout: float = field(
        default=30.0,
        metadata=spec(
            parse_duration,
            "Seconds a connection may wait for its first or next request before it is closed.",
            reload=restart("the server's keep-alive timeout is set at start"),
        ),
    )
    max_connections: int = field(
        default=1000,
        metadata=spec(
            parse_positive_int,
            "Most client connections open at once; beyond, one still waiting for its "
            "headers is closed.",
            reload=restart("the connection cap and the open-file limit are set at start"),
        ),
    )


@dataclass(frozen=True)
class UpstreamConfig:
    """The single-client OAuth proxy the gate stands in front of."""

    url: str = field(
        metadata=spec(
            parse_origin,
            "Origin of the upstream OAuth proxy.",
            reload=restart("the upstream connection pool is opened at start"),
        )
    )
    authorize_path: str = field(
        default="/authorize",
        metadata=spec(
            parse_url_path,
            "The upstream's authorization endpoint.",
            reload=restart("tied to the upstream's routes; in-flight flows use it"),
        ),
    )
    register_path: str = field(
        default="/register",
        metadata=spec(
            parse_url_path,
            "The upstream's dynamic registration endpoint.",
            reload=restart("tied to the upstream's routes"),
        ),
    )
    callback_path: str = field(
        default="/auth/callback",
        metadata=spec(
            parse_url_path,
            "Where the third-party IdP returns to the upstream proxy.",
            reload=restart("tied to the upstream's routes; a sign-in in flight returns there"),
        ),
    )
    connect_timeout: float = field(
        default=5.0,
        metadata=spec(
            parse_duration,
            "Seconds to open a connection upstream (504 after, as nginx answers its "
            "connect timeout).",
            reload=restart("the upstream session is built at start"),
        ),
    )
    read_timeout: float = field(
        default=60.0,
        metadata=spec(
            parse_duration,
            "Seconds to wait for the response headers once the request was sent (504 after); "
            "response bodies and event streams have no total timeout.",
            reload=restart("the upstream session is built at start"),
        ),
    )
    keepalive_timeout: float = field(
        default=4.0,
        metadata=spec(
            parse_duration,
            "Seconds an idle pooled upstream connection is kept; keep it below the upstream's "
            "own idle timeout (uvicorn: 5 s) so a POST never lands on a closing connection.",
            reload=restart("the upstream connection pool is built at start"),
        ),
    )
    max_connections: int = field(
        default=256,
        metadata=spec(
            parse_positive_int,
            "Most connections open to the upstream at once; further requests wait for one "
            "(their read_timeout bounds the wait).",
            reload=restart("the upstream connection pool is built at start"),
        ),
    )
    max_connections_per_address: int = field(
        default=0,
        metadata=spec(
            parse_non_negative_int,
            "Most upstream connections the requests of one client address (IPv6: its "
            "/64) use at once; beyond, 503 with Retry-After. 0: a quarter of "
            "max_connections.",
            reload=applies("per request (relay)"),
        ),
    )
    host_header: HostHeader = field(
        default="upstream",
        metadata=spec(
            Choice(HostHeader),
            '"upstream" sends the upstream\'s own host; "preserve" passes the client\'s Host.',
            reload=applies("per request (relay)"),
        ),
    )
    blocked_paths: tuple[str, ...] = field(
        default=(),
        metadata=spec(
            parse_path_list,
            "Upstream paths (and everything below them) never relayed: 404.",
            reload=applies("per request (the path rules of the snapshot)"),
        ),
    )
    direct_paths: tuple[str, ...] = field(
        default=(),
        metadata=spec(
            parse_path_list,
            "Data-plane paths (and everything below them) that `consentgate nginx-config` "
            "sends from nginx straight to the upstream; the gate never sees them.",
            reload=applies("only by nginx-config; checked against the gate's paths"),
        ),
    )
    issuer: str = field(
        default="",
        metadata=spec(
            parse_str,
            "Issuer for RFC 9207 iss on error redirects, exactly as the upstream's "
            "metadata advertises it (a start and readyz refuse another value); "
            "empty reads it from the upstream's metadata.",
            reload=restart("the issuer cache is built at start"),
        ),
    )

    @property
    def address_share(self) -> int:
        """The upstream connections one client address may use at once:
        ``max_connections_per_address``, or a quarter of ``max_connections`` (at least
        one) when it is 0, so that one address never holds the whole pool."""
        return self.max_connections_per_address or max(self.max_connections // 4, 1)
