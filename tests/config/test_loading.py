"""Configuration: unknown keys are errors, every error names key and value, all at once."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from consentgate.config.loading import (
    ConfigError,
    config_from_mapping,
    ignored_settings,
    load_config,
)
from consentgate.config.model import IGNORED_KEYS, documented_keys
from consentgate.config.parsers import HostPort, parse_duration

ROOT = Path(__file__).resolve().parents[2]
MINIMAL: dict[str, Any] = {
    "server": {"public_url": "https://mcp.example.com"},
    "upstream": {"url": "http://127.0.0.1:8000"},
}


def problems_of(data: dict[str, Any], environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        config_from_mapping(data, base_dir=Path("/srv"), environ=environ or {})
    return caught.value.problems


def test_minimal_config_gets_documented_defaults() -> None:
    config = config_from_mapping(MINIMAL, base_dir=Path("/srv"), environ={})
    assert config.server.listen == HostPort("127.0.0.1", 8080)
    assert config.server.prefix == "/_consentgate"
    assert config.upstream.authorize_path == "/authorize"
    assert config.upstream.register_path == "/register"
    assert config.upstream.callback_path == "/auth/callback"
    assert config.consent.mode == "remember"
    assert config.store.path == Path("/srv/consentgate.sqlite3")
    assert config.keys.dir == Path("/srv/keys")
    assert config.secure_cookies


def test_every_problem_is_reported_at_once_naming_key_and_value() -> None:
    problems = problems_of(
        {
            "server": {"public_url": "mcp.example.com", "listen": "nohost", "surprise": 1},
            "upstream": {"url": "http://127.0.0.1:8000", "read_timeout": -1},
            "consent": {"mode": "sometimes"},
            "extra": {},
        }
    )
    joined = "\n".join(problems)
    assert "server.public_url" in joined and "'mcp.example.com'" in joined
    assert "server.listen" in joined and "'nohost'" in joined
    assert "server.surprise: unknown key" in joined
    assert "upstream.read_timeout" in joined and "-1" in joined
    assert "consent.mode" in joined and "'sometimes'" in joined
    assert "extra: unknown section" in joined
    assert len(problems) == 6


def test_required_keys_are_named_when_missing() -> None:
    problems = problems_of({})
    assert "server.public_url: required, not set" in problems
    assert "upstream.url: required, not set" in problems


@pytest.mark.parametrize(
    ("key", "value", "fragment"),
    [
        ("authorize_path", "authorize", "starting with one '/'"),
        ("callback_path", "/auth/../callback", "dot segments"),
        ("register_path", "/reg?x=1", "without query"),
        ("url", "http://127.0.0.1:8000/base", "without path"),
        ("host_header", "client", '"upstream", "preserve"'),
        ("blocked_paths", "/consent", "list of paths"),
    ],
)
def test_bad_upstream_values_are_explained(key: str, value: Any, fragment: str) -> None:
    data = {**MINIMAL, "upstream": {**MINIMAL["upstream"], key: value}}
    (problem,) = problems_of(data)
    assert problem.startswith(f"upstream.{key}: ")
    assert fragment in problem
    assert repr(value) in problem


def test_trusted_proxies_must_be_cidrs() -> None:
    (problem,) = problems_of(
        {**MINIMAL, "server": {**MINIMAL["server"], "trusted_proxies": ["10.0.0.0/8", "lan"]}}
    )
    assert problem == "server.trusted_proxies: not an IP network (CIDR), got 'lan'"


def test_the_address_share_is_a_quarter_of_the_pool_unless_set_and_never_above_it() -> None:
    base = Path("/srv")
    config = config_from_mapping(MINIMAL, base_dir=base, environ={})
    assert config.upstream.max_connections_per_address == 0
    assert config.upstream.address_share == 64
    small = {**MINIMAL, "upstream": {**MINIMAL["upstream"], "max_connections": 3}}
    assert config_from_mapping(small, base_dir=base, environ={}).upstream.address_share == 1
    upstream = {**MINIMAL["upstream"], "max_connections": 8, "max_connections_per_address": 2}
    set_share = config_from_mapping({**MINIMAL, "upstream": upstream}, base_dir=base, environ={})
    assert set_share.upstream.address_share == 2
    upstream = {**MINIMAL["upstream"], "max_connections": 8, "max_connections_per_address": 9}
    (problem,) = problems_of({**MINIMAL, "upstream": upstream})
    assert problem == (
        "upstream.max_connections_per_address: 9 is more than upstream.max_connections (8)"
    )
    upstream = {**MINIMAL["upstream"], "max_connections_per_address": -1}
    (problem,) = problems_of({**MINIMAL, "upstream": upstream})
    assert problem == "upstream.max_connections_per_address: must be 0 or more, got -1"


def test_gate_paths_must_not_collide_with_the_prefix_or_blocked_paths() -> None:
    problems = problems_of(
        {
            "server": {**MINIMAL["server"], "prefix": "/auth"},
            "upstream": {**MINIMAL["upstream"], "blocked_paths": ["/register"]},
        }
    )
    assert any("upstream.callback_path" in p and "server.prefix" in p for p in problems)
    assert any("upstream.blocked_paths" in p and "register_path" in p for p in problems)


def test_environment_overrides_use_one_prefix_and_are_typed() -> None:
    config = config_from_mapping(
        MINIMAL,
        environ={
            "CONSENTGATE_UPSTREAM_URL": "http://10.0.0.5:9000",
            "CONSENTGATE_SERVER_MAX_BODY_SIZE": "2048",
            "CONSENTGATE_SERVER_TRUSTED_PROXIES": "10.0.0.0/8, 192.168.0.0/16",
            "CONSENTGATE_CONSENT_REMEMBER_FOR": "7d",
            "CONSENTGATE_CONSENT_SHOW_LOGOS": "true",
            "CONSENTGATE_CONFIG": "/ignored/here.toml",
        },
    )
    assert config.upstream.url == "http://10.0.0.5:9000"
    assert config.server.max_body_size == 2048
    assert [str(n) for n in config.server.trusted_proxies] == ["10.0.0.0/8", "192.168.0.0/16"]
    assert config.consent.remember_for == 7 * 86400
    assert config.consent.show_logos is True


def test_bad_environment_overrides_name_the_variable() -> None:
    problems = problems_of(
        MINIMAL,
        environ={"CONSENTGATE_SERVER_MAX_BODY_SIZE": "lots", "CONSENTGATE_UPSTREAM_URLS": "x"},
    )
    assert "CONSENTGATE_SERVER_MAX_BODY_SIZE: expected a whole number, got 'lots'" in problems
    assert "CONSENTGATE_UPSTREAM_URLS: not a configuration key (got 'x')" in problems


def test_secrets_are_read_from_files_and_never_echoed(tmp_path: Path) -> None:
    secret = tmp_path / "cookie.secret"
    secret.write_text("s" * 40 + "\n")
    data = {**MINIMAL, "keys": {"cookie_secret_file": str(secret)}}
    config = config_from_mapping(data, environ={})
    assert config.keys.cookie_secret == "s" * 40
    via_env = config_from_mapping(
        MINIMAL, environ={"CONSENTGATE_KEYS_COOKIE_SECRET_FILE": str(secret)}
    )
    assert via_env.keys.cookie_secret == "s" * 40
    secret.write_text("tooshort")
    (problem,) = problems_of(data)
    assert "tooshort" not in problem
    assert problem.startswith("keys.cookie_secret")
    (missing,) = problems_of({**MINIMAL, "keys": {"cookie_secret_file": str(tmp_path / "nope")}})
    assert missing.startswith("keys.cookie_secret_file: cannot read")


def test_a_secret_left_empty_as_init_wrote_it_gives_way_to_its_file(tmp_path: Path) -> None:
    """``consentgate init`` writes every key, secrets as ``""``: adding the ``_file`` key
    beside the empty one must work; two values are still refused, without echoing."""
    secret = tmp_path / "cookie.secret"
    secret.write_text("s" * 40 + "\n")
    both = {"cookie_secret": "", "cookie_secret_file": str(secret)}
    config = config_from_mapping({**MINIMAL, "keys": both}, environ={})
    assert config.keys.cookie_secret == "s" * 40
    twice = {"cookie_secret": "t" * 40, "cookie_secret_file": str(secret)}
    (problem,) = problems_of({**MINIMAL, "keys": twice})
    assert problem == "keys.cookie_secret: set either cookie_secret or cookie_secret_file, not both"


def test_only_secrets_can_come_from_files() -> None:
    (problem,) = problems_of(MINIMAL, environ={"CONSENTGATE_UPSTREAM_URL_FILE": "/x"})
    assert "only secrets can be read from a file" in problem


@pytest.mark.parametrize(
    ("text", "seconds"),
    [(30, 30.0), ("90s", 90.0), ("10m", 600.0), ("12h", 43200.0), ("30d", 2592000.0)],
)
def test_durations_accept_seconds_or_units(text: Any, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["soon", "-5s", 0, True, "5w"])
def test_bad_durations_are_rejected(text: Any) -> None:
    with pytest.raises(ValueError, match="got"):
        parse_duration(text)


def test_load_config_reports_unreadable_and_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the configuration"):
        load_config(tmp_path / "absent.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[server\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(broken)


def test_example_config_is_valid_and_documents_every_key() -> None:
    example = ROOT / "config.example.toml"
    load_config(example, environ={})
    text = example.read_text()
    data = tomllib.loads(text)
    for section, key, _doc in documented_keys():
        if key == "scope_descriptions":
            assert f"[{section}.{key}]" in text
            continue
        if f"{section}.{key}" in IGNORED_KEYS:  # shown, commented out, with its default
            assert key not in data.get(section, {})
            default = getattr(getattr(config_from_mapping(MINIMAL, environ={}), section), key)
            assert f"# {key} = {default}\n" in text
            continue
        assert key in data.get(section, {}), f"config.example.toml lacks {section}.{key}"


def test_keys_that_lost_their_meaning_still_load_and_are_named_once_each() -> None:
    data = {**MINIMAL, "consent": {"max_pending": 20, "max_pending_per_address": 5}}
    config = config_from_mapping(data, environ={})  # an older file still loads
    assert config.consent.max_pending == 20
    warnings = ignored_settings(data, {"CONSENTGATE_CONSENT_MAX_PENDING": "30"})
    assert [w.split(":")[0] for w in warnings] == [
        "consent.max_pending_per_address",
        "consent.max_pending",
        "CONSENTGATE_CONSENT_MAX_PENDING",
    ]
    assert "ignored (set to 20)" in warnings[1]
    assert ignored_settings(MINIMAL, {}) == []
    assert all("Ignored" in doc for s, k, doc in documented_keys() if f"{s}.{k}" in IGNORED_KEYS)


def test_readme_documents_every_key() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = [
        f"{section}.{key}"
        for section, key, _doc in documented_keys()
        if not re.search(rf"`{key}`", readme)
    ]
    assert missing == []


def test_example_config_shows_the_defaults() -> None:
    example = load_config(ROOT / "config.example.toml", environ={})
    defaults = config_from_mapping(
        {
            "server": {"public_url": example.server.public_url},
            "upstream": {"url": example.upstream.url},
        },
        base_dir=ROOT,
        environ={},
    )
    assert example == defaults


def test_the_store_is_sqlite_unless_a_postgres_url_is_given(tmp_path: Path) -> None:
    default = config_from_mapping(MINIMAL, base_dir=tmp_path, environ={})
    assert (default.store.url, default.store.pool_size, default.store.statement_timeout) == (
        "",
        10,
        5.0,
    )
    url = "postgresql://gate:hunter2@db.internal:5432/consentgate?sslmode=verify-full"
    from_env = config_from_mapping(MINIMAL, environ={"CONSENTGATE_STORE_URL": url})
    assert from_env.store.url == url
    url_file = tmp_path / "store.url"
    url_file.write_text(url + "\n")
    password_file = tmp_path / "db.password"
    password_file.write_text("s3cret\n")
    from_files = config_from_mapping(
        {
            **MINIMAL,
            "store": {
                "url_file": str(url_file),
                "password_file": str(password_file),
                "pool_size": 4,
                "statement_timeout": "2s",
            },
        },
        environ={},
    )
    assert (from_files.store.url, from_files.store.password) == (url, "s3cret")
    assert (from_files.store.pool_size, from_files.store.statement_timeout) == (4, 2.0)


def test_a_bad_store_url_is_named_with_its_password_masked() -> None:
    (problem,) = problems_of({**MINIMAL, "store": {"url": "mysql://gate:hunter2@db/cg"}})
    assert problem.startswith("store.url: 'mysql://gate:***@db/cg' is not a PostgreSQL URL")
    assert "hunter2" not in problem
    (env_problem,) = problems_of(MINIMAL, {"CONSENTGATE_STORE_URL": "postgresql://g:hunter2@db/"})
    assert env_problem.startswith(
        "CONSENTGATE_STORE_URL: 'postgresql://g:***@db/' names no database"
    )
    (pool,) = problems_of({**MINIMAL, "store": {"pool_size": 0}})
    assert pool.startswith("store.pool_size:")


def test_a_near_miss_gets_a_suggestion_and_a_far_one_does_not() -> None:
    """Issue 15: "did you mean `listen`?" for a typo, for keys and sections alike."""
    with pytest.raises(ConfigError) as caught:
        config_from_mapping(
            {
                "server": {"public_url": "http://127.0.0.1:1", "lisen": "x", "zzz": 1},
                "upstream": {"url": "http://127.0.0.1:2", "Blocked_Paths": []},
                "kyes": {},
            },
            environ={},
        )
    assert sorted(caught.value.problems) == [
        "kyes: unknown section; did you mean `keys`? (got {})",
        "server.lisen: unknown key; did you mean `listen`? (got 'x')",
        "server.zzz: unknown key (got 1)",
        "upstream.Blocked_Paths: unknown key; did you mean `blocked_paths`? (got [])",
    ]


@pytest.mark.parametrize(
    ("direct", "problem"),
    [
        ("/", "upstream.direct_paths: '/' would send everything around the gate"),
        ("/authorize", "would send upstream.authorize_path '/authorize' around the gate"),
        ("/auth", "would send upstream.callback_path '/auth/callback' around the gate"),
        ("/_consentgate/x", "would send server.prefix '/_consentgate' around the gate"),
        ("/REGISTER", "would send upstream.register_path '/register' around the gate"),
    ],
)
def test_direct_paths_never_cover_the_gates_own_endpoints(direct: str, problem: str) -> None:
    """Issue 14, point 3: the split deployment may not route a consent endpoint around."""
    with pytest.raises(ConfigError) as caught:
        config_from_mapping(
            {
                "server": {"public_url": "http://127.0.0.1:1"},
                "upstream": {"url": "http://127.0.0.1:2", "direct_paths": [direct]},
            },
            environ={},
        )
    assert any(problem in text for text in caught.value.problems), caught.value.problems


def test_a_data_plane_prefix_is_accepted() -> None:
    config = config_from_mapping(
        {
            "server": {"public_url": "http://127.0.0.1:1"},
            "upstream": {"url": "http://127.0.0.1:2", "direct_paths": ["/mcp", "/events/"]},
        },
        environ={},
    )
    assert config.upstream.direct_paths == ("/mcp", "/events/")


# --- [clients]: fetching Client ID Metadata Documents ---------------------------------


def test_the_clients_section_has_safe_defaults() -> None:
    clients = config_from_mapping(MINIMAL, base_dir=Path("/srv"), environ={}).clients
    assert clients.fetch_documents is True
    assert clients.fetch_allow_networks == ()  # public addresses only
    assert clients.fetch_ca_file is None
    assert (clients.fetch_timeout, clients.fetch_min_ttl, clients.fetch_max_ttl) == (
        5.0,
        60.0,
        86400.0,
    )
    assert clients.fetch_default_ttl == 3600.0
    assert clients.fetch_failure_ttl == 30.0
    assert clients.fetch_cache_size == 1000
    assert clients.blocked_domains == clients.allowed_domains == ()


def test_the_clients_keys_read_networks_domains_and_durations() -> None:
    clients = config_from_mapping(
        {
            **MINIMAL,
            "clients": {
                "fetch_allow_networks": ["10.20.0.0/16", "2001:db8::/32"],
                "fetch_ca_file": "ca/internal.pem",
                "fetch_min_ttl": "1s",
                "fetch_max_ttl": "1h",
                "fetch_default_ttl": "10m",
                "blocked_domains": ["evil.example"],
                "allowed_domains": ["=app.example.com", "example.org"],
            },
        },
        base_dir=Path("/srv"),
        environ={},
    ).clients
    assert [str(n) for n in clients.fetch_allow_networks] == ["10.20.0.0/16", "2001:db8::/32"]
    assert clients.fetch_ca_file == Path("/srv/ca/internal.pem")
    assert (clients.fetch_min_ttl, clients.fetch_max_ttl, clients.fetch_default_ttl) == (
        1.0,
        3600.0,
        600.0,
    )
    assert [(e.domain, e.exact) for e in clients.blocked_domains] == [("evil.example", False)]
    assert [(e.domain, e.exact) for e in clients.allowed_domains] == [
        ("app.example.com", True),
        ("example.org", False),
    ]


def test_the_allow_list_can_come_from_the_environment() -> None:
    clients = config_from_mapping(
        MINIMAL,
        environ={"CONSENTGATE_CLIENTS_FETCH_ALLOW_NETWORKS": "10.0.0.0/8, 192.168.1.0/24"},
    ).clients
    assert [str(n) for n in clients.fetch_allow_networks] == ["10.0.0.0/8", "192.168.1.0/24"]


@pytest.mark.parametrize(
    ("key", "value", "fragment"),
    [
        ("fetch_allow_networks", ["0.0.0.0/0"], "'0.0.0.0/0' would allow every address"),
        ("fetch_allow_networks", ["intranet"], "'intranet' is not a network in CIDR notation"),
        ("fetch_allow_networks", ["10.0.0.1/8"], "'10.0.0.1/8' is not a network"),
        ("fetch_allow_networks", "10.0.0.0/8", "expected a list of networks"),
        ("blocked_domains", ["*.example.com"], "'*.example.com': write example.com"),
        ("allowed_domains", ["https://app.example.com"], "is not a host"),
        ("allowed_domains", [3], "3 is not a string"),
        ("fetch_timeout", "-1s", "got '-1s'"),
        ("fetch_min_ttl", 0, "got 0"),
        ("fetch_cache_size", 0, "got 0"),
        ("fetch_per_host_per_minute", "many", "got 'many'"),
        ("fetch_max_concurrent", 100_000, "got 100000"),
        ("fetch_documents", "yes", "got 'yes'"),
    ],
)
def test_a_bad_clients_value_is_named_with_its_key(key: str, value: Any, fragment: str) -> None:
    (problem,) = problems_of({**MINIMAL, "clients": {key: value}})
    assert problem.startswith(f"clients.{key}: "), problem
    assert fragment in problem, problem


def test_the_document_lifetimes_must_be_in_order() -> None:
    (problem,) = problems_of(
        {**MINIMAL, "clients": {"fetch_min_ttl": "2h", "fetch_default_ttl": "1h"}}
    )
    assert problem.startswith("clients.fetch_min_ttl: ")
    assert "fetch_default_ttl" in problem and "7200" in problem
    (ceiling,) = problems_of(
        {**MINIMAL, "clients": {"fetch_max_ttl": "30m", "fetch_default_ttl": "1h"}}
    )
    assert ceiling.startswith("clients.fetch_max_ttl: ")


def test_the_idp_host_and_upstream_scopes_are_checked_naming_key_and_value() -> None:
    problems = problems_of(
        {
            **MINIMAL,
            "consent": {
                "idp_host": "https://accounts.example.com/",
                "upstream_scopes": ["openid", "two words"],
            },
        }
    )
    assert any(p.startswith("consent.idp_host:") and "https://accounts" in p for p in problems)
    assert any(p.startswith("consent.upstream_scopes:") and "two words" in p for p in problems)
    config = config_from_mapping(
        {**MINIMAL, "consent": {"idp_host": "Accounts.Example.com.", "upstream_scopes": ["a"]}},
        base_dir=Path("/srv"),
        environ={},
    )
    assert config.consent.idp_host == "accounts.example.com"
    assert config.consent.upstream_scopes == ("a",)
