"""plan_reload: what a SIGHUP applies now and what waits for a restart, decided purely."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from consentgate.clients.domain_policy import parse_domain_entries
from consentgate.clients.fetch_addresses import parse_networks
from consentgate.config.model import Config, documented_keys
from consentgate.config.parsers import HostPort
from consentgate.config.reload_rules import (
    RELOADABLE,
    RESTART_ONLY,
    Change,
    is_reloadable,
    plan_reload,
    shown,
)
from tests.conftest import make_config

UPSTREAM = "http://127.0.0.1:9000"
PUBLIC = "http://127.0.0.1:8080"
ALL_KEYS = sorted(f"{section}.{key}" for section, key, _ in documented_keys())

#: For every key a TOML value other than the one :func:`base` has.
SAMPLES: dict[str, Any] = {
    "server.public_url": "https://gate.example",
    "server.listen": "127.0.0.1:9999",
    "server.trusted_proxies": ["10.0.0.0/8"],
    "server.prefix": "/_gate",
    "server.max_body_size": 1024,
    "server.workers": 2,
    "server.shutdown_grace": 3,
    "server.header_timeout": 3,
    "server.idle_timeout": 3,
    "server.body_timeout": 3,
    "server.max_connections": 10,
    "upstream.url": "http://127.0.0.1:9001",
    "upstream.authorize_path": "/oauth/authorize",
    "upstream.register_path": "/oauth/register",
    "upstream.callback_path": "/oauth/callback",
    "upstream.connect_timeout": 1,
    "upstream.read_timeout": 1,
    "upstream.keepalive_timeout": 1,
    "upstream.max_connections": 8,
    "upstream.max_connections_per_address": 2,
    "upstream.host_header": "preserve",
    "upstream.blocked_paths": ["/consent"],
    "upstream.direct_paths": ["/mcp"],
    "upstream.issuer": "https://issuer.example",
    "store.path": "other.sqlite3",
    "store.url": "postgresql://gate:s3cret-password@db:5432/consent",
    "store.password": "another-s3cret",
    "store.pool_size": 3,
    "store.statement_timeout": 1,
    "store.keep_expired": "1d",
    "keys.dir": "other-keys",
    "keys.cookie_secret": "a-cookie-secret-of-forty-characters-xxxx",
    "consent.mode": "always",
    "consent.service_name": "Example Mail",
    "consent.remember_for": "1d",
    "consent.pending_ttl": 60,
    "consent.binding_ttl": 60,
    "consent.max_pending_per_browser": 2,
    "consent.max_flows_per_browser": 2,
    "consent.max_pending_per_address": 2,
    "consent.max_pending": 2,
    "consent.preapproved_redirect_uris": ["https://first.example/cb"],
    "consent.allow_request_uri": True,
    "consent.allow_request_object": True,
    "consent.show_logos": True,
    "consent.scope_descriptions": {"openid": "Your identity"},
    "consent.idp_host": "accounts.example.com",
    "consent.upstream_scopes": ["openid", "email"],
    "log.format": "json",
    "log.level": "debug",
    "log.access_log": False,
    "admin.listen": "127.0.0.1:9100",
    "admin.token_file": "other-admin.token",
    "admin.metrics_need_token": True,
    "audit.keep": "30d",
    "clients.fetch_documents": False,
    "clients.fetch_allow_networks": ["10.20.0.0/16"],
    "clients.fetch_ca_file": "internal-ca.pem",
    "clients.fetch_timeout": "2s",
    "clients.fetch_min_ttl": "5m",
    "clients.fetch_max_ttl": "12h",
    "clients.fetch_default_ttl": "2h",
    "clients.fetch_failure_ttl": "1m",
    "clients.fetch_cache_size": 10,
    "clients.fetch_per_host_per_minute": 5,
    "clients.fetch_max_concurrent": 4,
    "clients.blocked_domains": ["evil.example"],
    "clients.allowed_domains": ["example.com"],
    "ui.templates_dir": "theme",
    "ui.logo_file": "logo.svg",
    "ui.accent_color": "#0a7",
    "ui.support_url": "mailto:help@example.com",
    "ui.languages": ["de", "en"],
    "ui.default_language": "de",
    "identity.issuer": "https://idp.example",
    "identity.client_id": "gate",
    "identity.client_secret": "a-secret",
    "identity.scopes": ["openid", "profile"],
    "identity.subject_claim": "oid",
    "identity.display_claim": "preferred_username",
    "identity.session_lifetime": "1h",
    "identity.ca_file": "private-idp-ca.pem",
}


def base(tmp_path: Path, **sections: dict[str, Any]) -> Config:
    """The running configuration of these tests, with ``sections`` changed."""
    return make_config(
        tmp_path,
        UPSTREAM,
        PUBLIC,
        **_merge(
            # a token file named, so that the sample admin.listen is a valid change
            {"server": {"listen": "127.0.0.1:8080"}, "admin": {"token_file": "admin.token"}},
            sections,
        ),
    )


def _merge(first: dict[str, dict[str, Any]], second: dict[str, dict[str, Any]]) -> Any:
    merged = {section: dict(values) for section, values in first.items()}
    for section, values in second.items():
        merged.setdefault(section, {}).update(values)
    return merged


def with_key(tmp_path: Path, key: str, value: Any) -> Config:
    section, name = key.split(".")
    return base(tmp_path, **{section: {name: value}})


def value_of(config: Config, key: str) -> Any:
    section, name = key.split(".")
    return getattr(getattr(config, section), name)


def test_every_configuration_key_is_either_reloadable_or_restart_only() -> None:
    assert set(RELOADABLE).isdisjoint(RESTART_ONLY)
    assert sorted({*RELOADABLE, *RESTART_ONLY}) == ALL_KEYS
    assert sorted(SAMPLES) == ALL_KEYS  # and this test has a new value for each


def test_a_key_nobody_classified_waits_for_a_restart() -> None:
    assert not is_reloadable("server.some_future_key")


def test_the_same_file_again_changes_nothing(tmp_path: Path) -> None:
    old = base(tmp_path)
    plan = plan_reload(old, base(tmp_path))
    assert (plan.applied, plan.ignored, plan.problems) == ((), (), ())
    assert plan.config == old
    assert not plan.refused


@pytest.mark.parametrize("key", ALL_KEYS)
def test_each_changed_key_is_applied_or_kept_at_its_running_value(tmp_path: Path, key: str) -> None:
    old = base(tmp_path)
    new = with_key(tmp_path, key, SAMPLES[key])
    assert value_of(new, key) != value_of(old, key), "the sample must change the key"
    plan = plan_reload(old, new)
    assert not plan.refused
    if key in RELOADABLE:
        assert [change.key for change in plan.applied] == [key]
        assert plan.ignored == ()
        assert plan.config == new
    else:
        assert plan.applied == ()
        assert [change.key for change in plan.ignored] == [key]
        assert plan.config == old


def test_a_mixed_change_applies_the_reloadable_keys_and_keeps_the_others(
    tmp_path: Path,
) -> None:
    old = base(tmp_path)
    new = base(
        tmp_path,
        server={"listen": "127.0.0.1:9999", "max_body_size": 1024},
        consent={"service_name": "Example Mail", "scope_descriptions": {"openid": "You"}},
        store={"path": "moved.sqlite3"},
        log={"level": "warning"},
    )
    plan = plan_reload(old, new)
    assert [c.key for c in plan.applied] == [
        "server.max_body_size",
        "consent.service_name",
        "consent.scope_descriptions",
        "log.level",
    ]
    assert plan.ignored == (
        Change("server.listen", "127.0.0.1:8080", "127.0.0.1:9999"),
        Change(
            "store.path", str(tmp_path / "consentgate.sqlite3"), str(tmp_path / "moved.sqlite3")
        ),
    )
    in_force = plan.config
    assert in_force.server.listen == HostPort("127.0.0.1", 8080)
    assert in_force.store.path == tmp_path / "consentgate.sqlite3"
    assert in_force.server.max_body_size == 1024
    assert in_force.consent.service_name == "Example Mail"
    assert in_force.consent.scope_descriptions == (("openid", "You"),)
    assert in_force.log.level == "warning"
    # Nothing else moved: the merged config is the new one with the two keys put back.
    assert in_force == dataclasses.replace(
        new,
        server=dataclasses.replace(new.server, listen=old.server.listen),
        store=dataclasses.replace(new.store, path=old.store.path),
    )


@pytest.mark.parametrize(
    ("key", "old_shown", "new_shown"),
    [
        ("store.url", "(empty)", "postgresql://gate:***@db:5432/consent"),
        ("store.password", "(empty)", "***"),
        ("keys.cookie_secret", "(empty)", "***"),
    ],
)
def test_a_changed_secret_is_reported_masked(
    tmp_path: Path, key: str, old_shown: str, new_shown: str
) -> None:
    plan = plan_reload(base(tmp_path), with_key(tmp_path, key, SAMPLES[key]))
    (change,) = plan.ignored
    assert (change.key, change.old, change.new) == (key, old_shown, new_shown)
    assert SAMPLES[key] not in repr(plan.ignored)
    assert "s3cret" not in repr(plan.ignored)


def test_a_secret_that_changes_from_one_to_another_shows_only_masks(tmp_path: Path) -> None:
    old = with_key(tmp_path, "store.password", "first-s3cret")
    plan = plan_reload(old, with_key(tmp_path, "store.password", "second-s3cret"))
    assert plan.ignored == (Change("store.password", "***", "***"),)


def test_new_values_that_clash_with_the_restart_only_ones_kept_are_refused(
    tmp_path: Path,
) -> None:
    # Valid alone (the new authorize path is elsewhere), but authorize_path waits for a
    # restart, so the running /authorize would be blocked.
    old = base(tmp_path)
    new = base(
        tmp_path,
        upstream={"authorize_path": "/oauth/authorize", "blocked_paths": ["/authorize"]},
    )
    plan = plan_reload(old, new)
    assert plan.refused
    (problem,) = plan.problems
    assert problem.startswith("upstream.blocked_paths: '/authorize' would block")
    assert "upstream.authorize_path kept at the running value" in problem


def test_values_are_shown_as_the_configuration_file_spells_them() -> None:
    assert shown(HostPort("::1", 8080)) == "[::1]:8080"
    assert shown(None) == "(empty)"
    assert shown("") == "(empty)"
    assert shown("", secret=True) == "(empty)"
    assert (
        shown("postgres://u:pw@h/d?password=pw2", secret=True)
        == "postgres://u:***@h/d?password=***"
    )
    assert shown("host=db password=pw", secret=True) == "***"

    assert shown(True) == "true"
    assert shown(600.0) == "600"
    assert shown(2.5) == "2.5"
    assert shown(("/a", "/b")) == "[/a, /b]"
    assert shown(Path("/var/lib/x")) == "/var/lib/x"
    assert str(Change("server.listen", "a:1", "a:2")) == "a:1 -> a:2"


def test_client_hosts_and_networks_are_shown_as_the_file_spells_them() -> None:
    entries = parse_domain_entries(["example.com", "=app.example.org"])
    assert shown(entries) == "[example.com, =app.example.org]"
    assert (
        shown(parse_networks(["10.20.0.0/16", "2001:db8::/32"])) == "[10.20.0.0/16, 2001:db8::/32]"
    )
