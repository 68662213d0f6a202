"""Recognising a URL client_id (Client ID Metadata Documents; pure functions)."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consentgate.clients.client_errors import ClientRuleError
from consentgate.clients.client_id_urls import (
    MAX_URL_CLIENT_ID_LENGTH,
    BadClientIdURL,
    ClientIdURL,
    is_url_client_id,
    parse_client_id_url,
)


def test_a_url_client_id_is_read_into_its_url_host_and_port() -> None:
    parsed = parse_client_id_url("https://app.example.com/oauth/client.json")
    assert parsed == ClientIdURL(
        url="https://app.example.com/oauth/client.json", host="app.example.com", port=443
    )
    assert parsed.address is None


def test_an_explicit_port_and_a_query_are_kept() -> None:
    parsed = parse_client_id_url("https://app.example.com:8443/c?v=2")
    assert (parsed.url, parsed.host, parsed.port) == (
        "https://app.example.com:8443/c?v=2",
        "app.example.com",
        8443,
    )


def test_the_host_is_given_as_the_browser_reads_it_in_lowercase() -> None:
    assert parse_client_id_url("https://App.Example.COM/c").host == "app.example.com"


def test_an_ip_literal_host_is_given_with_its_address_for_the_address_policy() -> None:
    assert parse_client_id_url("https://[2001:db8::1]/c").address == ipaddress.ip_address(
        "2001:db8::1"
    )
    assert parse_client_id_url("https://192.0.2.7/c").address == ipaddress.ip_address("192.0.2.7")


@pytest.mark.parametrize(
    ("client_id", "problem"),
    [
        ("http://app.example.com/c", "https"),
        ("HTTPS://app.example.com/c", "lowercase"),
        ("Https://app.example.com/c", "lowercase"),
        ("https:app.example.com/c", "https://"),
        ("https:///c", "host"),
        ("https://app.example.com", "path"),
        ("https://app.example.com/", "path"),
        ("https://app.example.com?x=1", "path"),
        ("https://app.example.com/c#frag", "fragment"),
        ("https://app.example.com/c#", "fragment"),
        ("https://user@app.example.com/c", "userinfo"),
        ("https://user:pw@app.example.com/c", "userinfo"),
        ("https://app.example.com/./c", "dot segment"),
        ("https://app.example.com/a/../c", "dot segment"),
        ("https://app.example.com/c/..", "dot segment"),
        ("https://app.example.com/%2e%2E/c", "dot segment"),
        ("https://app.example.com/.%2e/c", "dot segment"),
        ("https://app.example.com/%2E/c", "dot segment"),
        ("https://app.example.com\\c", "backslash"),
        ("https://app.example.com/c d", "space"),
        ("https://app.example.com/c\t", "control"),
        ("https://app.example.com/c\x00", "control"),
        ("https://app.ex\u0430mple.com/c", "ASCII"),
        ("https://app.example.com/caf\u00e9", "ASCII"),
        ("https://%61pp.example.com/c", "written"),
        ("https://0x7f.1/c", "written"),
        ("https://[0::1]/c", "written"),
        ("https://app.example.com:/c", "port"),
        ("https://app.example.com:0/c", "port"),
        ("https://app.example.com:0443/c", "port"),
        ("https://app.example.com:65536/c", "port"),
        ("https://app.example.com:x/c", "port"),
        ("https://[::1/c", "IPv6"),
        ("https://[fe80::1%25eth0]/c", "zone"),
        ("", "https"),
    ],
)
def test_a_url_that_breaks_a_rule_is_refused_with_a_message_naming_the_rule(
    client_id: str, problem: str
) -> None:
    with pytest.raises(BadClientIdURL, match=problem):
        parse_client_id_url(client_id)


def test_dot_segments_are_looked_for_in_the_path_only() -> None:
    url = "https://app.example.com/c?next=/../b"
    assert parse_client_id_url(url).url == url


def test_a_url_longer_than_the_cap_is_refused() -> None:
    head = "https://app.example.com/"
    fits = head + "a" * (MAX_URL_CLIENT_ID_LENGTH - len(head))
    assert parse_client_id_url(fits).url == fits
    with pytest.raises(BadClientIdURL, match="longer"):
        parse_client_id_url(fits + "a")


def test_the_error_is_a_client_rule_error_and_a_value_error() -> None:
    with pytest.raises(ClientRuleError):
        parse_client_id_url("http://app.example.com/c")
    assert issubclass(BadClientIdURL, ValueError)


@pytest.mark.parametrize(
    "client_id",
    [
        "https://app.example.com/c",
        "HTTPS://app.example.com/c",
        "http://app.example.com/c",
        "Http:app",
        "https:",
    ],
)
def test_anything_that_claims_an_http_scheme_is_a_url_client_id(client_id: str) -> None:
    assert is_url_client_id(client_id)


@pytest.mark.parametrize(
    "client_id",
    ["", "3f2c9a1e-6b1d-4c55-9a43-1f0e3c2b7d10", "client-1", "urn:app:x", "httpx://a/b", "h"],
)
def test_an_opaque_dcr_client_id_is_not_a_url_client_id(client_id: str) -> None:
    assert not is_url_client_id(client_id)


@given(st.text(max_size=80) | st.text(max_size=80).map("https://".__add__))
def test_parsing_raises_only_its_own_error_on_any_text(text: str) -> None:
    try:
        parsed = parse_client_id_url(text)
    except BadClientIdURL:
        return
    assert parsed.url == text
    assert is_url_client_id(text)


_LABEL = st.from_regex(r"[a-z][a-z0-9-]{0,10}[a-z0-9]", fullmatch=True)
_SEGMENT = st.from_regex(r"[A-Za-z0-9_~-]{1,12}", fullmatch=True)


@given(
    st.lists(_LABEL, min_size=2, max_size=4),
    st.lists(_SEGMENT, min_size=1, max_size=4),
    st.none() | st.integers(min_value=1, max_value=65535),
)
def test_every_plain_https_url_with_a_path_is_accepted_exactly_as_written(
    labels: list[str], segments: list[str], port: int | None
) -> None:
    host = ".".join(labels)
    url = f"https://{host}{'' if port is None else f':{port}'}/{'/'.join(segments)}"
    parsed = parse_client_id_url(url)
    assert (parsed.url, parsed.host, parsed.port) == (url, host, port or 443)


def test_a_url_read_once_is_remembered_and_a_refusal_is_not() -> None:
    """Every authorization request of a URL client parses its client_id: the answer for
    the same text is kept (core.memo, bounded), a refusal is raised again each time."""
    text = "https://memo.example.com/oauth/client.json"
    assert parse_client_id_url(text) is parse_client_id_url(text)
    for _ in range(2):
        with pytest.raises(BadClientIdURL, match="must have a path"):
            parse_client_id_url("https://memo.example.com/")
