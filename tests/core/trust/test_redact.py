"""Keeping OAuth secrets out of logs: what is redacted in a logged query string and in a
library's message (codes, state, tokens, client secrets, credentials after an auth
scheme, secret headers, the gate's cookies), what is left alone, and that a query with
nothing to redact is the very same string (no copy on every logged request)."""

from __future__ import annotations

import urllib.parse

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict

from consentgate.core.trust.redact import (
    REDACTED,
    SECRET_PARAMETERS,
    redact_query,
    redact_target,
    redact_text,
)

# --- redact_query ----------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SECRET_PARAMETERS))
def test_every_secret_parameter_has_its_value_redacted(name: str) -> None:
    assert redact_query(f"scope=openid&{name}=s3cr3t&x=1") == f"scope=openid&{name}={REDACTED}&x=1"


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("code=abc&state=xyz&scope=openid", f"code={REDACTED}&state={REDACTED}&scope=openid"),
        ("CODE=abc", f"CODE={REDACTED}"),  # names compared without case
        ("Client_Secret=abc", f"Client_Secret={REDACTED}"),
        ("co%64e=abc", f"co%64e={REDACTED}"),  # an escaped name is decoded first
        ("%63ODE=abc", f"%63ODE={REDACTED}"),
        ("client%5Fsecret=abc", f"client%5Fsecret={REDACTED}"),
        ("code=", f"code={REDACTED}"),
        ("code=a=b", f"code={REDACTED}"),  # the whole value, '=' and all
        ("state=1;code=2", f"state={REDACTED}"),  # ';' is no separator: all of it goes
        ("code=1&code=2", f"code={REDACTED}&code={REDACTED}"),  # every occurrence
        (
            "redirect_uri=https%3A%2F%2Fc.example%2Fcb&code=1",
            f"redirect_uri=https%3A%2F%2Fc.example%2Fcb&code={REDACTED}",
        ),
    ],
)
def test_a_query_has_the_values_of_secret_parameters_replaced(query: str, expected: str) -> None:
    assert redact_query(query) == expected


@pytest.mark.parametrize(
    "query",
    [
        "",
        "scope=openid&response_type=code",  # 'code' as a value is not a secret
        "code",  # a name without a value has nothing to hide
        "x_code=1&codes=2&mycode=3",  # names that merely contain a secret's name
        "a=1&&b=2",
        "redirect_uri=https%3A%2F%2Fc.example%2Fcb%3Fcode%3D1",  # inside another value
    ],
)
def test_a_query_with_nothing_to_redact_comes_back_as_the_very_same_string(query: str) -> None:
    assert redact_query(query) is query


def test_a_target_with_nothing_to_redact_comes_back_as_the_very_same_string() -> None:
    target = "/mcp?session=1&x=2"
    assert redact_target(target) is target


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/cb?code=abc&state=s", f"/cb?code={REDACTED}&state={REDACTED}"),
        ("/cb", "/cb"),
        ("/code=abc", "/code=abc"),  # a path is not a query
    ],
)
def test_a_logged_target_has_its_query_redacted(target: str, expected: str) -> None:
    assert redact_target(target) == expected


def test_a_logged_target_is_bounded_and_says_it_was_cut() -> None:
    assert redact_target("/" + "a" * 100, max_length=10) == "/aaaaaaaaa...(truncated)"


_QUERY_PIECES = st.sampled_from(
    [
        *sorted(SECRET_PARAMETERS),
        *["CoDe", "co%64e", "%53tate", "scope", "x", "=", "&", "%", "+"],
        *["%2", ";", "s3cr3t", "a b", "\u00e9", "%C3%A9", "%ff"],
    ]
)


@settings(max_examples=500, deadline=None)
@given(query=st.lists(_QUERY_PIECES, max_size=12).map("".join))
def test_redaction_never_leaves_a_value_of_a_secret_parameter(query: str) -> None:
    redacted = redact_query(query)
    for name, value in urllib.parse.parse_qsl(redacted, keep_blank_values=True):
        if name.lower() in SECRET_PARAMETERS:
            assert value in (REDACTED, ""), (name, value)
    if redacted != query:
        return
    assert redacted is query  # nothing to replace: the very same string


# --- redact_text -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # credentials after an auth scheme (RFC 9110 §11.4, RFC 6750 §2.1)
        ("Authorization: Bearer abc.def", f"Authorization: {REDACTED}"),
        ("authorization=Basic dXNlcjpw", f"authorization={REDACTED}"),
        ("Proxy-Authorization: Digest username=x", f"Proxy-Authorization: {REDACTED}"),
        ("sent Bearer abc.def to the IdP", f"sent Bearer {REDACTED} to the IdP"),
        ("'bearer abc', 'basic Zm9v'", f"'bearer {REDACTED}', 'basic {REDACTED}'"),
        # secret headers, whole value to the end of the line or the quote
        ("Cookie: session=abc; other=1", f"Cookie: {REDACTED}"),
        ("Set-Cookie: __Host-cg_csrf=zzz; Path=/", f"Set-Cookie: {REDACTED}"),
        ("x-api-key: k1\nnext line", f"x-api-key: {REDACTED}\nnext line"),
        ("Mcp-Session-Id: s1", f"Mcp-Session-Id: {REDACTED}"),
        ("X-Auth-Token=t1", f"X-Auth-Token={REDACTED}"),
        # the gate's cookies anywhere
        ("cg_bid=abc", f"cg_bid={REDACTED}"),
        ("cookies: __Host-cg_bid=abc; x=1", f"cookies: __Host-cg_bid={REDACTED}; x=1"),
        # secret parameters of a query or form
        (
            "GET /cb?code=abc&state=def HTTP/1.1",
            f"GET /cb?code={REDACTED}&state={REDACTED} HTTP/1.1",
        ),
        ("password=hunter2 next", f"password={REDACTED} next"),
        ("refresh_token=r1#frag", f"refresh_token={REDACTED}#frag"),
        # asyncio quoting an exception's message in a task's repr
        ("<Task exception=ValueError('code abc (x)')>", "<Task exception=ValueError(...)>"),
    ],
)
def test_credentials_in_a_librarys_message_are_redacted(text: str, expected: str) -> None:
    assert redact_text(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "nothing secret here: the code is fine",
        "response_type=code&scope=openid",
        "url https://x/cb?x_code=1&mycode=2",  # names that merely contain a secret's name
        "session_cookie_name is cg_",  # a prefix alone, no value
        "Connection lost to 127.0.0.1:5432",
    ],
)
def test_text_without_credentials_is_left_alone(text: str) -> None:
    assert redact_text(text) == text


@pytest.mark.parametrize(
    "header",
    [
        b"Cookie: session=victim-session",
        b"Mcp-Session-Id: victim-session-id",
        b"Authorization: token victim-token",
    ],
)
def test_a_secret_header_quoted_in_a_bytes_repr_is_redacted(header: bytes) -> None:
    raw = b"GET / HTTP/1.1\r\n" + header + b"\r\nHost: x\r\n\r\n"
    message = f"invalid header in {raw!r}"  # as a parser's error quotes the bytes
    assert "victim" not in redact_text(message)


@pytest.mark.parametrize(
    "headers",
    [
        {"Cookie": "session=victim-session"},
        CIMultiDict([("Authorization", "token victim-token")]),
        CIMultiDict([("Mcp-Session-Id", "victim-session-id")]),
    ],
    ids=["dict-cookie", "multidict-authorization", "multidict-session-id"],
)
def test_a_secret_header_quoted_in_a_mapping_repr_is_redacted(
    headers: dict[str, str] | CIMultiDict[str],
) -> None:
    assert "victim" not in redact_text(f"request headers: {headers!r}")


def test_a_secret_header_on_the_first_line_of_a_bytes_repr_is_redacted() -> None:
    assert "victim" not in redact_text(repr(b"Cookie: session=victim\r\n"))


_VALUES = st.text(alphabet="ABCDEFGHJK0123456789-._~", min_size=6, max_size=40)


@settings(max_examples=300, deadline=None)
@given(
    name=st.sampled_from(sorted(SECRET_PARAMETERS)),
    upper=st.booleans(),
    value=_VALUES,
    frame=st.sampled_from(
        ["GET /cb?{}&x=1 HTTP/1.1", "'{}'", '"{}"', "{} trailing", "form: a=1&{}", "?{}#f"]
    ),
)
def test_redact_text_never_leaves_the_value_of_a_secret_parameter(
    name: str, upper: bool, value: str, frame: str
) -> None:
    text = frame.format(f"{name.upper() if upper else name}={value}")
    assert value not in redact_text(text)
