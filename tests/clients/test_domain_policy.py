"""Blocked and allowed domains for URL client_ids (pure functions)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consentgate.clients.client_errors import ClientRuleError
from consentgate.clients.domain_policy import (
    BadDomainEntry,
    DomainEntry,
    DomainPolicy,
    parse_domain_entries,
)


def policy(blocked: list[str] | None = None, allowed: list[str] | None = None) -> DomainPolicy:
    return DomainPolicy(
        blocked=parse_domain_entries(blocked or []), allowed=parse_domain_entries(allowed or [])
    )


def test_an_entry_is_read_into_its_normal_form() -> None:
    assert parse_domain_entries(["Example.COM.", "=App.Example.com", "bücher.example"]) == (
        DomainEntry("example.com", exact=False),
        DomainEntry("app.example.com", exact=True),
        DomainEntry("xn--bcher-kva.example", exact=False),
    )


@pytest.mark.parametrize(
    "host", ["example.com", "app.example.com", "a.b.example.com", "EXAMPLE.com", "example.com."]
)
def test_an_entry_matches_its_domain_and_every_subdomain(host: str) -> None:
    assert parse_domain_entries(["example.com"])[0].matches(host)


@pytest.mark.parametrize(
    "host", ["notexample.com", "example.com.evil.net", "example.co", "com", "xample.com"]
)
def test_an_entry_does_not_match_another_domain_that_merely_ends_with_its_letters(
    host: str,
) -> None:
    assert not parse_domain_entries(["example.com"])[0].matches(host)


def test_an_entry_with_an_equals_sign_matches_the_host_only() -> None:
    entry = parse_domain_entries(["=example.com"])[0]
    assert entry.matches("example.com")
    assert entry.matches("Example.com.")
    assert not entry.matches("app.example.com")


def test_internationalised_entries_and_hosts_match_as_the_browser_reads_them() -> None:
    entry = parse_domain_entries(["BÜCHER.example"])[0]
    assert entry.matches("xn--bcher-kva.example")
    assert entry.matches("shop.bücher.example")
    assert parse_domain_entries(["example\u3002com"])[0].matches("app.example.com")


def test_an_ip_address_entry_matches_that_address_only() -> None:
    v4, v6 = parse_domain_entries(["192.0.2.1", "[2001:DB8::1]"])
    assert v4.matches("192.0.2.1")
    assert not v4.matches("x.192.0.2.1")
    assert v6.matches("[2001:db8::1]")


def test_a_blocked_entry_wins_over_an_allowed_one() -> None:
    rules = policy(blocked=["evil.example.com"], allowed=["example.com"])
    assert rules.decide("app.example.com") == "allowed"
    assert rules.decide("evil.example.com") == "blocked"
    assert rules.decide("x.evil.example.com") == "blocked"
    assert not rules.permits("x.evil.example.com")


def test_an_empty_allow_list_allows_every_host_not_blocked() -> None:
    rules = policy(blocked=["evil.example"])
    assert rules.decide("anything.example.org") == "allowed"
    assert rules.decide("evil.example") == "blocked"
    assert DomainPolicy().permits("app.example.com")


def test_with_an_allow_list_a_host_not_in_it_is_not_allowed() -> None:
    rules = policy(allowed=["example.com", "=tools.example.org"])
    assert rules.decide("app.example.com") == "allowed"
    assert rules.decide("tools.example.org") == "allowed"
    assert rules.decide("a.tools.example.org") == "not_allowed"
    assert rules.decide("example.org") == "not_allowed"
    assert not rules.permits("example.org")


@pytest.mark.parametrize("host", ["", "exa mple.com", "a%zz.com", "[::1"])
def test_a_host_the_policy_cannot_read_is_never_permitted(host: str) -> None:
    assert policy().decide(host) == "unreadable"
    assert not policy().permits(host)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("https://example.com", "host only"),
        ("example.com/path", "host only"),
        ("example.com:443", "host only"),
        ("user@example.com", "host only"),
        ("*.example.com", "subdomains"),
        ("", "empty"),
        ("=", "empty"),
        (".", "empty"),
        (" example.com", "space"),
        ("exa mple.com", "space"),
        ("[::1", "cannot"),
        ("xn--a.example", "cannot"),
        (5, "not a string"),
    ],
)
def test_a_bad_entry_is_refused_with_its_value_named(value: object, problem: str) -> None:
    with pytest.raises(BadDomainEntry) as caught:
        parse_domain_entries([value])
    assert problem in str(caught.value)
    assert repr(value) in str(caught.value)
    assert isinstance(caught.value, ClientRuleError)


@pytest.mark.parametrize("values", ["example.com", None, {"example.com": 1}])
def test_entries_must_be_a_list(values: object) -> None:
    with pytest.raises(BadDomainEntry, match="list"):
        parse_domain_entries(values)


_LABEL = st.from_regex(r"[a-z][a-z0-9-]{0,8}[a-z0-9]", fullmatch=True)


@given(st.lists(_LABEL, min_size=1, max_size=3), st.lists(_LABEL, min_size=1, max_size=3))
def test_an_entry_matches_every_subdomain_and_an_exact_entry_none(
    domain: list[str], prefix: list[str]
) -> None:
    name = ".".join(domain)
    sub = ".".join([*prefix, *domain])
    wide, exact = parse_domain_entries([name, "=" + name])
    assert wide.matches(name) and wide.matches(sub) and wide.matches(sub.upper() + ".")
    assert exact.matches(name) and not exact.matches(sub)


@given(
    st.lists(_LABEL, min_size=1, max_size=3).map(".".join),
    st.lists(st.lists(_LABEL, min_size=1, max_size=2).map(".".join), max_size=3),
)
def test_a_host_matched_by_a_blocked_entry_is_blocked_whatever_is_allowed(
    host: str, allowed: list[str]
) -> None:
    rules = policy(blocked=[host.split(".", 1)[-1]], allowed=[*allowed, host])
    assert rules.decide(host) == "blocked"
