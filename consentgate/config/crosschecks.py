"""The checks across keys: paths the gate owns must not overlap or be blocked or sent
around it, the admin listener is not the public one and has its token, several
workers need a fixed port, a document's default lifetime lies within its bounds.

They run on every load (:func:`~consentgate.config.loading.config_from_mapping`,
after each key parsed) and on a reload's merged configuration
(:func:`~consentgate.config.reload_rules.plan_reload`); each problem names the keys
and their values.
"""

from __future__ import annotations

from typing import Any

from consentgate.config.model import SECTIONS, Config
from consentgate.config.sections_operations import AdminConfig
from consentgate.config.sections_policy import ClientsConfig
from consentgate.config.sections_traffic import ServerConfig, UpstreamConfig
from consentgate.config.sections_ui import UiConfig


def check_config(config: Config) -> list[str]:
    """The checks across keys (paths that must not overlap, ...) of an already built
    :class:`Config`: a reload runs them on the file's new values merged with the ones
    that wait for a restart (:mod:`consentgate.config.reload_rules`)."""
    problems: list[str] = []
    cross_checks({section: getattr(config, section) for section in SECTIONS}, problems)
    return problems


def cross_checks(built: dict[str, Any], problems: list[str]) -> None:
    """Append to ``problems`` what the sections in ``built`` (by name) break together."""
    server: ServerConfig = built["server"]
    upstream: UpstreamConfig = built["upstream"]
    ui: UiConfig = built["ui"]
    if ui.default_language not in ui.languages:
        problems.append(
            f"ui.default_language: {ui.default_language!r} is not one of ui.languages "
            f"{list(ui.languages)!r}"
        )
    gate_paths = {
        "upstream.authorize_path": upstream.authorize_path,
        "upstream.register_path": upstream.register_path,
        "upstream.callback_path": upstream.callback_path,
    }
    for key, path in gate_paths.items():
        if path == server.prefix or path.startswith(server.prefix + "/"):
            problems.append(f"{key}: {path!r} lies under server.prefix {server.prefix!r}")
    seen: dict[str, str] = {}
    for key, path in gate_paths.items():
        if path.rstrip("/").lower() in seen:
            problems.append(f"{key}: {path!r} is the same path as {seen[path.rstrip('/').lower()]}")
        seen[path.rstrip("/").lower()] = key
    for blocked in upstream.blocked_paths:
        for key, path in gate_paths.items():
            if path.lower() == blocked.lower() or path.lower().startswith(
                blocked.lower().rstrip("/") + "/"
            ):
                problems.append(f"upstream.blocked_paths: {blocked!r} would block {key} {path!r}")
    for direct in upstream.direct_paths:
        if direct == "/":
            problems.append(
                "upstream.direct_paths: '/' would send everything around the gate; "
                'name the data-plane prefixes, such as "/mcp"'
            )
            continue
        below = direct.lower().rstrip("/") + "/"
        for key, path in {**gate_paths, "server.prefix": server.prefix}.items():
            lowered = path.lower()
            if (
                lowered == direct.lower()
                or lowered.startswith(below)
                or direct.lower().startswith(lowered.rstrip("/") + "/")
            ):
                problems.append(
                    f"upstream.direct_paths: {direct!r} would send {key} {path!r} around the gate"
                )
    admin: AdminConfig | None = built.get("admin")
    if admin is not None and admin.listen is not None:
        if str(admin.listen) == str(server.listen):
            problems.append(f"admin.listen: {str(admin.listen)!r} is the public listener")
        if admin.token_file is None:
            problems.append(
                f"admin.token_file: required when admin.listen is set (listen is "
                f"{str(admin.listen)!r}): the admin API answers only a bearer token"
            )
        if server.workers > 1 and admin.listen.port == 0:
            problems.append(
                f"admin.listen: {server.workers} workers share one fixed admin port; "
                f"{str(admin.listen)!r} asks for any free port"
            )
    clients: ClientsConfig | None = built.get("clients")
    if clients is not None:
        _check_lifetimes(clients, problems)
    if server.workers > 1 and server.listen.port == 0:
        problems.append(
            f"server.workers: {server.workers} workers share one fixed port; "
            f"server.listen {str(server.listen)!r} asks for any free port"
        )
    if upstream.max_connections_per_address > upstream.max_connections:
        problems.append(
            f"upstream.max_connections_per_address: {upstream.max_connections_per_address} "
            f"is more than upstream.max_connections ({upstream.max_connections})"
        )
    if server.public_url == upstream.url:
        problems.append(
            f"upstream.url: {upstream.url!r} is the gate's own public_url; "
            "it must be the proxy behind it"
        )


def _check_lifetimes(clients: ClientsConfig, problems: list[str]) -> None:
    """A document's lifetime is clamped to [fetch_min_ttl, fetch_max_ttl]; a default
    outside it could never apply."""
    if clients.fetch_min_ttl > clients.fetch_default_ttl:
        problems.append(
            f"clients.fetch_min_ttl: {clients.fetch_min_ttl:g} s is longer than "
            f"clients.fetch_default_ttl {clients.fetch_default_ttl:g} s"
        )
    if clients.fetch_max_ttl < clients.fetch_default_ttl:
        problems.append(
            f"clients.fetch_max_ttl: {clients.fetch_max_ttl:g} s is shorter than "
            f"clients.fetch_default_ttl {clients.fetch_default_ttl:g} s"
        )
