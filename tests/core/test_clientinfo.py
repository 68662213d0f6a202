"""What the consent page says about a client (pure function)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from consentgate.core.clientinfo import build_view, clean_name, safe_http_url, same_site_host
from consentgate.core.oauth import parse_authorization_request, parse_parameters


@dataclass(frozen=True)
class Meta:
    client_name: str | None = "App"
    client_uri: str | None = None
    logo_uri: str | None = None
    tos_uri: str | None = None
    policy_uri: str | None = None


def request(redirect: str = "https://app.example.com/cb", client_id: str = "c") -> object:
    from urllib.parse import urlencode

    return parse_authorization_request(
        parse_parameters(
            urlencode({"client_id": client_id, "redirect_uri": redirect, "scope": "a b"})
        ),
        allow_request_uri=False,
        allow_request_object=False,
    )


@pytest.mark.parametrize(
    "value",
    [
        "javascript:alert(1)",
        "JAVASCRIPT:alert(1)",
        "data:text/html,x",
        "https://a.example/\x00x",
        "https://a.example/ x",
        "https://user:pw@a.example/",
        "//a.example/",
        "ftp://a.example/",
        None,
        "",
    ],
)
def test_only_plain_http_links_are_shown(value: str | None) -> None:
    assert safe_http_url(value) is None


def test_http_links_keep_their_host() -> None:
    assert safe_http_url("https://Docs.Example.com/p?q=1") == (
        "https://Docs.Example.com/p?q=1",
        "docs.example.com",
    )


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("example.com", "example.com", True),
        ("app.example.com", "example.com", True),
        ("example.com", "app.example.com", True),
        ("evilexample.com", "example.com", False),
        ("example.com.evil.net", "example.com", False),
    ],
)
def test_hosts_compare_by_site(a: str, b: str, same: bool) -> None:
    assert same_site_host(a, b) is same


def test_names_lose_control_characters_and_are_bounded() -> None:
    assert clean_name("Good\u0000 App\n") == "Good App"
    assert clean_name("   ") is None
    long = clean_name("x" * 500)
    assert long is not None and len(long) == 120


def test_view_of_a_known_client_lists_safe_links_and_flags_other_sites() -> None:
    view = build_view(
        request(),  # type: ignore[arg-type]
        Meta(
            client_uri="https://app.example.com",
            policy_uri="https://other.example/p",
            tos_uri="javascript:x",
            logo_uri="https://app.example.com/logo.png",
        ),
        scope_descriptions={"a": "Alpha"},
        show_logos=False,
        remember_mode=True,
    )
    assert [(link.label, link.host_differs) for link in view.links] == [
        ("Website", False),
        ("Privacy policy", True),
    ]
    assert view.logo_url is None
    assert [(s.scope, s.description) for s in view.scopes] == [("a", "Alpha"), ("b", None)]
    assert view.verified
    assert view.offer_remember
    assert any("different site" in w.text for w in view.warnings)


def test_logos_load_only_when_enabled_and_only_over_https() -> None:
    shown = build_view(
        request(),  # type: ignore[arg-type]
        Meta(logo_uri="https://app.example.com/logo.png"),
        scope_descriptions={},
        show_logos=True,
        remember_mode=True,
    )
    assert shown.logo_url == "https://app.example.com/logo.png"
    plain = build_view(
        request(),  # type: ignore[arg-type]
        Meta(logo_uri="http://app.example.com/logo.png"),
        scope_descriptions={},
        show_logos=True,
        remember_mode=True,
    )
    assert plain.logo_url is None


def test_an_unknown_client_is_unverified_and_says_so_first() -> None:
    view = build_view(
        request(),  # type: ignore[arg-type]
        None,
        scope_descriptions={},
        show_logos=False,
        remember_mode=False,
    )
    assert not view.verified
    assert view.client_name is None
    assert view.warnings[0].level == "danger"
    assert not view.offer_remember
