"""Authorization request parsing and redirect URI rules (pure functions)."""

from __future__ import annotations

import urllib.parse

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consentgate.core.oauth.authorization_requests import (
    consent_redirect_key,
    encode_parameters,
    error_redirect,
    parse_authorization_request,
    parse_parameters,
    parse_redirect_uri,
    redirect_uri_matches,
)
from consentgate.core.oauth.oauth_errors import OAuthError


def parse(query: str, **flags: bool) -> object:
    return parse_authorization_request(
        parse_parameters(query),
        allow_request_uri=flags.get("par", False),
        allow_request_object=flags.get("jar", False),
    )


@pytest.mark.parametrize(
    "query",
    [
        "a=1&a=2",
        "client_id=x&client%5Fid=y",
        "client_id=x&client_id=x",
        "state=1&%73tate=2",
        "scope=a+b&scope=c",
    ],
)
def test_a_parameter_given_twice_is_refused_after_decoding_names(query: str) -> None:
    with pytest.raises(OAuthError, match="more than once"):
        parse_parameters(query)


def test_query_and_body_together_count_as_one_request() -> None:
    with pytest.raises(OAuthError, match="more than once"):
        parse_parameters("client_id=a", "client_id=b")


def test_semicolons_are_not_separators() -> None:
    assert parse_parameters("a=1;b=2&c=3") == (("a", "1;b=2"), ("c", "3"))


def test_invalid_utf8_is_refused() -> None:
    with pytest.raises(OAuthError, match="UTF-8"):
        parse_parameters("a=%FF")


@given(
    st.lists(
        st.tuples(st.text(min_size=1, max_size=20), st.text(max_size=40)),
        max_size=10,
        unique_by=lambda pair: pair[0],
    )
)
def test_encoding_then_parsing_gives_back_the_same_parameters(
    pairs: list[tuple[str, str]],
) -> None:
    """What the gate forwards decodes to exactly what it checked."""
    parameters = tuple(pairs)
    assert parse_parameters(encode_parameters(parameters)) == parameters
    assert urllib.parse.parse_qsl(encode_parameters(parameters), keep_blank_values=True) == list(
        parameters
    )


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["state", "scope", "redirect_uri", "x y"]) | st.text(max_size=12),
            st.text(max_size=40),
        ),
        max_size=10,
    )
)
def test_the_forwarded_query_is_urlencode_with_quote_byte_for_byte(
    pairs: list[tuple[str, str]],
) -> None:
    """Names are remembered by their encoding: twice over, the same bytes as urlencode."""
    expected = urllib.parse.urlencode(pairs, quote_via=urllib.parse.quote)
    for _ in range(2):
        assert encode_parameters(tuple(pairs)) == expected


@given(
    st.lists(st.sampled_from(["a", "b", "openid", " ", "\u00a0", "\u00e9", "mcp:tools"])).map(
        "".join
    )
    | st.sampled_from(["", " ", "  a  a b ", "b a b"]),
    st.sampled_from(["", "none", "login consent", " login  "]),
)
def test_scopes_and_prompt_are_the_space_separated_values_first_seen_first(
    scope: str, prompt: str
) -> None:
    request = parse_authorization_request(
        (
            ("client_id", "c1"),
            ("redirect_uri", "https://a.example/cb"),
            ("scope", scope),
            ("prompt", prompt),
        ),
        allow_request_uri=False,
        allow_request_object=False,
    )
    assert request.scopes == tuple(dict.fromkeys(s for s in scope.split(" ") if s))
    assert request.prompt == tuple(p for p in prompt.split(" ") if p)


def test_a_valid_request_is_read_field_by_field() -> None:
    request = parse_authorization_request(
        parse_parameters(
            "response_type=code&client_id=c1&redirect_uri=https%3A%2F%2Fa.example%2Fcb"
            "&scope=openid+profile+openid&state=s&resource=https%3A%2F%2Fmcp.example%2Fmcp"
            "&prompt=login+consent"
        ),
        allow_request_uri=False,
        allow_request_object=False,
    )
    assert request.client_id == "c1"
    assert request.redirect_uri == "https://a.example/cb"
    assert request.scopes == ("openid", "profile")
    assert request.resource == "https://mcp.example/mcp"
    assert request.state == "s"
    assert request.prompt == ("login", "consent")
    assert not request.opaque


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("redirect_uri=https%3A%2F%2Fa%2Fcb", "client_id parameter is missing"),
        ("client_id=c", "redirect_uri parameter is missing"),
        ("client_id=c&redirect_uri=https%3A%2F%2Fa%2Fcb&resource=relative", "absolute URI"),
        ("client_id=c&redirect_uri=https%3A%2F%2Fa%2Fcb&request_uri=urn%3Ax", "request_uri"),
        ("client_id=c&redirect_uri=https%3A%2F%2Fa%2Fcb&request=eyJ", "request parameter"),
    ],
)
def test_invalid_requests_explain_themselves(query: str, message: str) -> None:
    with pytest.raises(OAuthError, match=message):
        parse(query)


def test_request_objects_are_opaque_when_allowed() -> None:
    request = parse(
        "client_id=c&request_uri=urn%3Aietf%3Aparams%3Aoauth%3Arequest_uri%3Ax", par=True
    )
    assert request.opaque is True  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("uri", "kind", "host"),
    [
        ("https://app.example.com/cb", "https", "app.example.com"),
        ("http://127.0.0.1:8765/cb", "loopback", "127.0.0.1"),
        ("http://[::1]:8765/cb", "loopback", "[::1]"),
        ("http://localhost/cb", "loopback", "localhost"),
        ("http://intranet.example/cb", "insecure", "intranet.example"),
        ("claude://oauth/callback", "custom", ""),
        ("com.example.app:/oauth2redirect", "custom", ""),
    ],
)
def test_redirect_uris_are_described_for_the_consent_page(uri: str, kind: str, host: str) -> None:
    target = parse_redirect_uri(uri)
    assert target.kind == kind
    assert target.host == host
    if kind != "custom":
        assert target.before_host + target.host + target.after_host == uri


@pytest.mark.parametrize(
    "uri",
    [
        "",
        "/cb",
        "javascript:alert(1)",
        "data:text/html,x",
        "https://a.example/cb#x",
        "https://u:p@a.example/cb",
        "https://a.example/c b",
        "https://a.example/\ncb",
        "https://:443/cb",
        "https://a.example:99999/cb",
    ],
)
def test_unacceptable_redirect_uris_are_refused(uri: str) -> None:
    with pytest.raises(OAuthError):
        parse_redirect_uri(uri)


@pytest.mark.parametrize(
    ("requested", "registered", "matches"),
    [
        ("https://a.example/cb", "https://a.example/cb", True),
        ("https://a.example/cb/", "https://a.example/cb", False),
        ("https://A.example/cb", "https://a.example/cb", False),
        ("https://a.example:443/cb", "https://a.example/cb", False),
        ("http://127.0.0.1:5000/cb", "http://127.0.0.1:6000/cb", True),
        ("http://127.0.0.1:5000/cb", "http://127.0.0.1/cb", True),
        ("http://[::1]:5000/cb", "http://[::1]:7000/cb", True),
        ("http://localhost:5000/cb", "http://localhost:7000/cb", True),
        ("http://127.0.0.1:5000/other", "http://127.0.0.1:6000/cb", False),
        ("http://127.0.0.1:5000/cb", "http://localhost:5000/cb", False),
        ("https://127.0.0.1:5000/cb", "https://127.0.0.1:6000/cb", False),
        ("http://evil.example:5000/cb", "http://evil.example:6000/cb", False),
    ],
)
def test_redirect_uris_match_exactly_except_loopback_ports(
    requested: str, registered: str, matches: bool
) -> None:
    assert redirect_uri_matches(requested, registered) is matches


def test_consent_records_key_loopback_uris_without_port() -> None:
    assert consent_redirect_key("http://127.0.0.1:5000/cb?x=1") == "http://127.0.0.1/cb?x=1"
    assert consent_redirect_key("https://a.example:8443/cb") == "https://a.example:8443/cb"


def test_error_redirects_keep_the_query_and_add_state_and_iss() -> None:
    location = error_redirect(
        "https://a.example/cb?keep=1", "access_denied", state="s t", issuer="https://as.example"
    )
    assert location == (
        "https://a.example/cb?keep=1&error=access_denied&state=s%20t&iss=https%3A%2F%2Fas.example"
    )
