"""The upstream's advertised endpoints against the paths the gate guards (pure)."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from consentgate.config.settings import path_rules
from consentgate.core.oauth.upstream_endpoints import (
    callback_mismatch,
    callback_mismatch_in,
    endpoint_mismatches,
    metadata_request_headers,
    parse_metadata,
    path_through_gate,
)
from tests.conftest import make_config

PUBLIC = "https://gate.example"
UPSTREAM = "http://127.0.0.1:8000"


def config(tmp_path: Path, **upstream: Any) -> Any:
    return make_config(tmp_path, UPSTREAM, PUBLIC, upstream=upstream)


def mismatches(tmp_path: Path, document: dict[str, Any], **upstream: Any) -> list[str]:
    cfg = config(tmp_path, **upstream)
    return [str(m) for m in endpoint_mismatches(document, cfg, path_rules(cfg))]


def test_endpoints_advertised_at_the_public_url_with_the_configured_paths_match(
    tmp_path: Path,
) -> None:
    document = {
        "authorization_endpoint": f"{PUBLIC}/authorize",
        "registration_endpoint": f"{PUBLIC}/register",
    }
    assert mismatches(tmp_path, document) == []
    # Spelled with the default port, an upper-case host, or relative: the same place.
    spelled = "https://GATE.example:443/authorize"
    assert mismatches(tmp_path, {"authorization_endpoint": spelled}) == []
    assert mismatches(tmp_path, {"authorization_endpoint": "/authorize"}) == []


def test_another_authorization_path_names_the_key_and_both_values(tmp_path: Path) -> None:
    [problem] = mismatches(
        tmp_path, {"authorization_endpoint": f"{PUBLIC}/authorize"}, authorize_path="/authorise"
    )
    assert problem.startswith("upstream.authorize_path: '/authorise'")
    assert f"authorization_endpoint '{PUBLIC}/authorize'" in problem


def test_a_document_without_registration_endpoint_compares_the_authorization_endpoint_only(
    tmp_path: Path,
) -> None:
    document = {"authorization_endpoint": f"{PUBLIC}/authorize"}
    assert mismatches(tmp_path, document, register_path="/oauth/register") == []
    document["registration_endpoint"] = f"{PUBLIC}/register"
    [problem] = mismatches(tmp_path, document, register_path="/oauth/register")
    assert problem.startswith("upstream.register_path: '/oauth/register'")


def test_a_configured_issuer_other_than_the_advertised_one_byte_for_byte_is_a_mismatch(
    tmp_path: Path,
) -> None:
    """RFC 9207 §2.4: clients compare ``iss`` exactly; a trailing slash is a difference."""
    document = {"issuer": f"{PUBLIC}/", "authorization_endpoint": f"{PUBLIC}/authorize"}
    assert mismatches(tmp_path, document, issuer=f"{PUBLIC}/") == []
    assert mismatches(tmp_path, document) == []  # not configured: read from the document
    [problem] = mismatches(tmp_path, document, issuer=PUBLIC)
    assert problem == (
        f"upstream.issuer: {PUBLIC!r} is not the issuer the upstream advertises "
        f"({PUBLIC + '/'!r}); clients would ignore the gate's error redirects"
    )


@pytest.mark.parametrize(
    "advertised",
    [
        "https://elsewhere.example/authorize",  # clients would go around the gate
        f"{UPSTREAM}/authorize",  # the upstream's own origin: around the gate too
        "http://gate.example/authorize",  # another scheme is another origin
        "https://gate.example:8443/authorize",
        "not a url",
        "",
    ],
)
def test_an_endpoint_the_gate_does_not_stand_in_front_of_is_a_mismatch(
    tmp_path: Path, advertised: str
) -> None:
    [problem] = mismatches(tmp_path, {"authorization_endpoint": advertised})
    assert problem.startswith("upstream.authorize_path: '/authorize'")


def test_only_a_json_object_with_an_authorization_endpoint_is_metadata() -> None:
    assert parse_metadata(200, b'{"authorization_endpoint": "/a"}') == {
        "authorization_endpoint": "/a"
    }
    assert parse_metadata(404, b'{"authorization_endpoint": "/a"}') is None
    assert parse_metadata(200, b"<html>") is None
    assert parse_metadata(200, b"[1]") is None
    assert parse_metadata(200, b'{"issuer": "x"}') is None


def test_the_callback_named_in_the_idp_hand_off_must_be_the_configured_one(
    tmp_path: Path,
) -> None:
    cfg = config(tmp_path)
    rules = path_rules(cfg)
    idp = "https://idp.example/authorize?client_id=x&state=s&redirect_uri="
    ours = idp + "https%3A%2F%2Fgate.example%2Fauth%2Fcallback"
    assert callback_mismatch(ours, cfg, rules) is None
    assert callback_mismatch("https://idp.example/authorize?state=s", cfg, rules) is None
    other = callback_mismatch(idp + "https%3A%2F%2Fgate.example%2Foauth%2Fcallback", cfg, rules)
    assert other is not None
    assert str(other).startswith("upstream.callback_path: '/auth/callback'")
    assert "'https://gate.example/oauth/callback'" in str(other)
    around = callback_mismatch(idp + "https%3A%2F%2Fupstream.example%2Fauth%2Fcallback", cfg, rules)
    assert around is not None  # the IdP would return around the gate
    twice = ours + "&redirect_uri=https%3A%2F%2Fgate.example%2Fx"
    assert callback_mismatch(twice, cfg, rules) is not None
    elsewhere = idp + "https%3A%2F%2Fgate.example%2Foauth%2Fcallback"
    for location in (ours, elsewhere, twice, "https://idp.example/authorize?state=s"):
        pairs = parse_qsl(urlsplit(location).query, keep_blank_values=True)
        assert callback_mismatch_in(pairs, cfg, rules) == callback_mismatch(location, cfg, rules)


def test_the_metadata_is_asked_as_a_request_through_the_gate_would_ask(tmp_path: Path) -> None:
    assert metadata_request_headers(config(tmp_path)) == (
        ("X-Forwarded-Proto", "https"),
        ("X-Forwarded-Host", "gate.example"),
    )
    assert ("Host", "gate.example") in metadata_request_headers(
        config(tmp_path, host_header="preserve")
    )


def test_the_callback_check_reads_the_public_url_of_the_configuration_it_is_given(
    tmp_path: Path,
) -> None:
    # The path a URL reaches the gate with is remembered per (URL, public URL): a
    # reload that moves the gate to another origin must not find the old answer.
    ours = [("redirect_uri", "https://gate.example/auth/callback")]
    here = config(tmp_path)
    assert callback_mismatch_in(ours, here, path_rules(here)) is None
    moved = make_config(tmp_path / "moved", UPSTREAM, "https://other.example")
    assert callback_mismatch_in(ours, moved, path_rules(moved)) is not None
    assert callback_mismatch_in(ours, here, path_rules(here)) is None


def test_a_long_url_is_read_through_the_gate_as_a_short_one(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    long_path = "/auth/callback" + "x" * 3000
    assert path_through_gate(PUBLIC + long_path, cfg) == long_path
    assert path_through_gate("https://elsewhere.example/auth/callback", cfg) is None
    assert path_through_gate("/auth/callback", cfg) == "/auth/callback"
    assert path_through_gate("http://[::1", cfg) is None
