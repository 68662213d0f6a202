"""Path classification: the path the gate checks is the path it forwards."""

from __future__ import annotations

import urllib.parse

import pytest
import yarl

from consentgate.core.oauth.paths import (
    PathRules,
    Route,
    benign_form,
    loose_form,
    remove_dot_segments,
)


@pytest.fixture
def rules() -> PathRules:
    return PathRules(
        exact={
            "/authorize": Route.AUTHORIZE,
            "/auth/callback": Route.CALLBACK,
            "/register": Route.REGISTER,
        },
        subtree={"/consent": Route.BLOCKED, "/_consentgate": Route.GATE},
    )


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/a/b/c/./../../g", "/a/g"),
        ("/mid/content=5/../6", "/mid/6"),
        ("/../authorize", "/authorize"),
        ("/auth/./callback", "/auth/callback"),
        ("/a/.", "/a/"),
        ("/a/..", "/"),
    ],
)
def test_dot_segments_are_removed_as_rfc_3986_says(path: str, expected: str) -> None:
    assert remove_dot_segments(path) == expected


@pytest.mark.parametrize(
    "variant",
    [
        "/authorize",
        "/authorize/",
        "/authorize//",
        "/AUTHORIZE",
        "/Authorize",
        "/%61uthorize",
        "/%61%75%74%68%6f%72%69%7a%65",
        "/./authorize",
        "/x/../authorize",
        "/x/%2e%2e/authorize",
        "/%2e/authorize",
    ],
)
def test_every_benign_spelling_of_authorize_is_intercepted_and_forwarded_canonically(
    rules: PathRules, variant: str
) -> None:
    routed = rules.classify(variant)
    assert routed.route is Route.AUTHORIZE
    assert routed.forward_path == "/authorize"


@pytest.mark.parametrize(
    "variant",
    [
        "/authorize%2F",
        "/%2Fauthorize",
        "/x%2F..%2Fauthorize",
        "/authorize;jsessionid=1",
        "/authorize%3Bx",
        "/%2561uthorize",
        "/\\authorize",
        "/x/..%5Cauthorize",
        "/authorize%252F",
        # hardening #10.9: a hop that decodes and re-splits, suffix matching, trailing
        # dots and spaces, overlong and full-width slashes
        "/authorize%3Fclient_id=x",
        "/authorize%23",
        "/authorize%253F",
        "/authorize.json",
        "/authorize.",
        "/authorize%20",
        "/authorize%2e",
        "/x/..%C0%AFauthorize",
        "/x/..%E0%80%AFauthorize",
        "/x%EF%BC%8F..%EF%BC%8Fauthorize",
        "/%EF%BD%81uthorize",
    ],
)
def test_spellings_that_only_some_servers_read_as_authorize_are_refused(
    rules: PathRules, variant: str
) -> None:
    assert rules.classify(variant).route is Route.AMBIGUOUS


@pytest.mark.parametrize(
    "variant", ["/auth/callback%3F", "/auth/callback%3Fstate=x", "/auth%EF%BC%8Fcallback"]
)
def test_encoded_query_marks_and_full_width_slashes_in_the_callback_are_refused(
    rules: PathRules, variant: str
) -> None:
    assert rules.classify(variant).route is Route.AMBIGUOUS


@pytest.mark.parametrize(
    "variant", ["/auth/callback", "/auth/./callback", "/auth//callback", "/AUTH/Callback/"]
)
def test_callback_variants_are_checked_and_forwarded_canonically(
    rules: PathRules, variant: str
) -> None:
    routed = rules.classify(variant)
    assert routed.route is Route.CALLBACK
    assert routed.forward_path == "/auth/callback"


@pytest.mark.parametrize(
    "variant", ["/consent", "/consent/", "/Consent", "/consent/x", "/%63onsent", "/consent%2Fx"]
)
def test_blocked_paths_and_their_subtree_are_blocked_in_any_spelling(
    rules: PathRules, variant: str
) -> None:
    assert rules.classify(variant).route is Route.BLOCKED


@pytest.mark.parametrize(
    "path",
    [
        "/mcp",
        "/mcp/",
        "/a%2Fb",
        "/authorized",
        "/x/authorize",
        "/favicon.ico",
        "/.well-known/oauth-protected-resource/mcp",
        "/files/%E2%82%AC",
    ],
)
def test_other_paths_are_relayed_byte_exact(rules: PathRules, path: str) -> None:
    routed = rules.classify(path)
    assert routed.route is Route.RELAY
    assert routed.forward_path == path


@pytest.mark.parametrize("path", ["*", "http://evil/authorize", "/authorize#x", "/a%00b"])
def test_targets_that_are_not_plain_paths_are_refused(rules: PathRules, path: str) -> None:
    assert rules.classify(path).route is Route.AMBIGUOUS


def test_loose_form_is_at_least_as_forgiving_as_the_benign_form() -> None:
    for path in ["/A/./b//c/", "/%61/b", "/x/../y"]:
        assert loose_form(path) == benign_form(path)


@pytest.mark.parametrize(
    "target",
    [
        "//x/authorize",
        "//x/auth/callback",
        "//authorize",
        "//auth/callback",
        "///x/authorize",
        "/\\x/authorize",
        "/\\\\x/authorize",
        "/%2Fx/authorize",
        "/%2fx/auth/callback",
        "/%5Cx/authorize",
        "/%5c%5cx/authorize",
        "/%252Fx/authorize",
        "/%09/x/authorize",
        "/%C0%AFx/authorize",
        "/%EF%BC%8Fx/authorize",
        "/./%2Fx/authorize",
        "//",
        "//x",
        "//mcp",
    ],
)
def test_a_target_beginning_with_two_slashes_is_refused(rules: PathRules, target: str) -> None:
    assert rules.classify(target).route is Route.AMBIGUOUS


@pytest.mark.parametrize("target", ["%2F%2Fx/authorize", "\\\\x/authorize", "%5C%5Cx/authorize"])
def test_a_target_beginning_with_encoded_or_back_slashes_is_refused(
    rules: PathRules, target: str
) -> None:
    assert rules.classify(target).route is Route.AMBIGUOUS


def test_two_leading_slashes_name_a_host_to_a_url_parser_which_is_why_they_are_refused() -> None:
    """RFC 3986 §4.2: ``//x/authorize`` is a network-path reference, its authority ``x``.
    A collapsing router (and the loose reading) sees ``/x/authorize``; an upstream that
    parses its target as a URL reference (Node's ``new URL(req.url, base)``, urlsplit,
    yarl) routes ``/authorize``."""
    assert urllib.parse.urlsplit("//x/authorize").netloc == "x"
    assert urllib.parse.urlsplit("//x/authorize").path == "/authorize"
    assert yarl.URL("//x/auth/callback").path == "/auth/callback"
    assert loose_form("//x/authorize") == "/x/authorize"


@pytest.mark.parametrize("path", ["/a//b", "/mcp//x", "/x/authorize//"])
def test_repeated_slashes_after_the_first_segment_are_still_relayed(
    rules: PathRules, path: str
) -> None:
    assert rules.classify(path).route is Route.RELAY
