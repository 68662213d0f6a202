"""What the gate believes from the network, and what it passes on: the client's address
(X-Forwarded-For only through trusted proxies, right to left), the headers relayed
upstream (hop-by-hop, Connection-named and routing-override headers dropped,
X-Forwarded-* rebuilt for an untrusted peer, the gate's cookies stripped) and back
(a Location naming the upstream rewritten to the public origin). Pure: no sockets."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict

from consentgate.core.trust.forwarding import (
    CLIENT_IDENTITY_HEADERS,
    FORWARDING_HEADERS,
    HOP_BY_HOP,
    ROUTING_OVERRIDE_HEADERS,
    IPNetwork,
    address_group,
    client_address,
    downstream_response_headers,
    parse_ip,
    rewrite_location,
    strip_cookies,
    upstream_request_headers,
)

PROXIES: tuple[IPNetwork, ...] = (
    ipaddress.ip_network("10.0.0.0/8"),
    ipaddress.ip_network("fd00::/8"),
)
UNTRUSTED_PEER = ipaddress.ip_address("127.0.0.9")
TRUSTED_PEER = ipaddress.ip_address("10.0.0.2")
PUBLIC_HOST = "gate.example"
OWN_COOKIES = ("__Host-cg_", "cg_")


def relayed(
    headers: list[tuple[str, str]], *, trusted: bool = False, preserve_host: bool = False
) -> CIMultiDict[str]:
    return upstream_request_headers(
        CIMultiDict(headers),
        peer=TRUSTED_PEER if trusted else UNTRUSTED_PEER,
        trusted=PROXIES,
        scheme="https",
        host="client-chosen.example",
        public_host=PUBLIC_HOST,
        request_id="rid-1",
        own_cookie_prefixes=OWN_COOKIES,
        preserve_host=preserve_host,
    )


# --- parse_ip ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1", "127.0.0.1"),
        (" 127.0.0.1 ", "127.0.0.1"),
        ("::1", "::1"),
        ("[::1]", "::1"),
        ("::ffff:192.0.2.7", "192.0.2.7"),  # an IPv4-mapped address is the IPv4 one
        ("2001:DB8::1", "2001:db8::1"),
    ],
)
def test_an_address_is_read_with_mapped_ipv6_reduced_to_ipv4(text: str, expected: str) -> None:
    assert str(parse_ip(text)) == expected


@pytest.mark.parametrize(
    "text", [None, "", "unknown", "127.0.0.1:8080", "0x7f.1", "999.1.1.1", "1.2.3", "x" * 200]
)
def test_text_that_is_not_an_address_parses_to_nothing(text: str | None) -> None:
    assert parse_ip(text) is None


# --- client_address --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "expected"),
    [
        # an untrusted peer is the client, whatever it claims
        ("127.0.0.9", "203.0.113.1", "127.0.0.9"),
        ("127.0.0.9", None, "127.0.0.9"),
        # a trusted proxy without X-Forwarded-For: the proxy itself
        ("10.0.0.2", None, "10.0.0.2"),
        ("10.0.0.2", "", "10.0.0.2"),
        # right to left, the first address that is not a trusted proxy
        ("10.0.0.2", "203.0.113.1", "203.0.113.1"),
        ("10.0.0.2", "198.51.100.66, 203.0.113.1", "203.0.113.1"),
        ("10.0.0.2", "198.51.100.66, 203.0.113.1, 10.1.1.1", "203.0.113.1"),
        ("10.0.0.2", " 203.0.113.1 ,, 10.9.9.9 ", "203.0.113.1"),
        # every hop a trusted proxy: the leftmost one
        ("10.0.0.2", "10.3.3.3, 10.1.1.1", "10.3.3.3"),
        # IPv6 proxies and clients, mapped IPv4 reduced
        ("fd00::2", "2001:db8::7", "2001:db8::7"),
        ("10.0.0.2", "::ffff:203.0.113.1", "203.0.113.1"),
        # what a trusted proxy wrote that is not an address is kept as text, bounded
        ("10.0.0.2", "unknown", "unknown"),
        ("10.0.0.2", "x" * 100, "x" * 64),
    ],
)
def test_the_client_address_is_read_through_trusted_proxies_right_to_left(
    peer: str, forwarded_for: str | None, expected: str
) -> None:
    assert client_address(ipaddress.ip_address(peer), forwarded_for, PROXIES) == expected


def test_without_a_peer_address_the_client_is_a_dash() -> None:
    assert client_address(None, "203.0.113.1", PROXIES) == "-"


def test_without_trusted_proxies_x_forwarded_for_is_never_believed() -> None:
    assert client_address(TRUSTED_PEER, "203.0.113.1", ()) == "10.0.0.2"


def _untrusted(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return False  # read as its IPv4 address, which may be a proxy's
    return not any(address in network for network in PROXIES if network.version == address.version)


_UNTRUSTED_ADDRESSES = st.ip_addresses().filter(_untrusted)


@settings(max_examples=200, deadline=None)
@given(peer=_UNTRUSTED_ADDRESSES, forwarded_for=st.one_of(st.none(), st.text(max_size=80)))
def test_the_client_address_from_an_untrusted_peer_is_always_the_peer(
    peer: ipaddress.IPv4Address | ipaddress.IPv6Address, forwarded_for: str | None
) -> None:
    assert client_address(peer, forwarded_for, PROXIES) == str(peer)


# --- address_group ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("client", "group"),
    [
        ("203.0.113.1", "203.0.113.1"),
        ("::ffff:203.0.113.1", "203.0.113.1"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),
        ("unknown", "unknown"),
        ("y" * 100, "y" * 64),
    ],
)
def test_a_per_address_limit_counts_ipv4_alone_and_ipv6_by_its_slash_64(
    client: str, group: str
) -> None:
    assert address_group(client) == group


def test_two_addresses_of_one_ipv6_subscriber_count_together_and_a_neighbour_apart() -> None:
    assert address_group("2001:db8:0:1::a") == address_group("2001:db8:0:1:ffff::b")
    assert address_group("2001:db8:0:1::a") != address_group("2001:db8:0:2::a")


# --- headers relayed upstream ------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(HOP_BY_HOP - {"connection"}))
@pytest.mark.parametrize("trusted", [False, True], ids=["untrusted", "trusted"])
def test_hop_by_hop_headers_are_never_relayed_upstream(name: str, trusted: bool) -> None:
    headers = relayed([(name.title(), "x"), ("Accept", "a")], trusted=trusted)
    assert name not in headers
    assert headers["Accept"] == "a"


def test_headers_named_in_connection_are_not_relayed_and_nor_is_connection() -> None:
    headers = relayed(
        [
            ("Connection", "close, X-Secret-Hop"),
            ("Connection", " x-other "),
            ("X-Secret-Hop", "1"),
            ("X-Other", "2"),
            ("X-Kept", "3"),
        ]
    )
    assert "Connection" not in headers
    assert "X-Secret-Hop" not in headers
    assert "X-Other" not in headers
    assert headers["X-Kept"] == "3"


@pytest.mark.parametrize("name", sorted(ROUTING_OVERRIDE_HEADERS))
@pytest.mark.parametrize("trusted", [False, True], ids=["untrusted", "trusted"])
def test_routing_override_headers_are_never_relayed_whoever_sent_them(
    name: str, trusted: bool
) -> None:
    headers = relayed([(name, "/authorize"), ("Accept", "a")], trusted=trusted)
    assert name not in headers


@pytest.mark.parametrize("name", sorted(FORWARDING_HEADERS | CLIENT_IDENTITY_HEADERS))
def test_forwarding_and_identity_headers_from_an_untrusted_peer_are_replaced_or_dropped(
    name: str,
) -> None:
    headers = relayed([(name, "attacker.example")])
    assert "attacker.example" not in headers.getall(name, [])


@pytest.mark.parametrize("name", sorted(CLIENT_IDENTITY_HEADERS | {"x-real-ip", "forwarded"}))
def test_identity_headers_from_a_trusted_proxy_are_relayed(name: str) -> None:
    assert relayed([(name, "203.0.113.1")], trusted=True)[name] == "203.0.113.1"


def test_an_untrusted_peer_gets_its_own_address_as_x_forwarded_for() -> None:
    headers = relayed([("X-Forwarded-For", "203.0.113.1"), ("X-Forwarded-For", "1.2.3.4")])
    assert headers.getall("X-Forwarded-For") == ["127.0.0.9"]


def test_a_trusted_proxy_gets_its_address_appended_to_x_forwarded_for() -> None:
    headers = relayed(
        [("X-Forwarded-For", "203.0.113.1"), ("X-Forwarded-For", "10.1.1.1")], trusted=True
    )
    assert headers.getall("X-Forwarded-For") == ["203.0.113.1, 10.1.1.1, 10.0.0.2"]


@pytest.mark.parametrize(
    ("sent", "trusted", "expected"),
    [
        ([], False, PUBLIC_HOST),
        ([("X-Forwarded-Host", "evil.example")], False, PUBLIC_HOST),
        ([("Host", "evil.example")], False, PUBLIC_HOST),
        ([], True, PUBLIC_HOST),
        ([("X-Forwarded-Host", "front.example")], True, "front.example"),
    ],
)
def test_x_forwarded_host_is_the_public_host_unless_a_trusted_proxy_set_it(
    sent: list[tuple[str, str]], trusted: bool, expected: str
) -> None:
    assert relayed(sent, trusted=trusted).getall("X-Forwarded-Host") == [expected]


@pytest.mark.parametrize(
    ("sent", "trusted", "expected"),
    [
        ([("X-Forwarded-Proto", "http")], False, "https"),
        ([], True, "https"),
        ([("X-Forwarded-Proto", "http")], True, "http"),
    ],
)
def test_x_forwarded_proto_is_the_gates_scheme_unless_a_trusted_proxy_set_it(
    sent: list[tuple[str, str]], trusted: bool, expected: str
) -> None:
    assert relayed(sent, trusted=trusted).getall("X-Forwarded-Proto") == [expected]


def test_the_upstream_always_gets_one_x_forwarded_host() -> None:
    headers = relayed(
        [("Connection", "X-Forwarded-Host"), ("X-Forwarded-Host", "front.example")],
        trusted=True,
    )
    assert len(headers.getall("X-Forwarded-Host", [])) == 1


@pytest.mark.parametrize("trusted", [False, True], ids=["untrusted", "trusted"])
def test_the_request_id_and_host_are_the_gates_own(trusted: bool) -> None:
    headers = relayed(
        [("X-Request-Id", "chosen"), ("Host", "evil.example"), ("Expect", "100-continue")],
        trusted=trusted,
        preserve_host=True,
    )
    assert headers.getall("X-Request-Id") == ["rid-1"]
    assert headers.getall("Host") == ["client-chosen.example"]
    assert "Expect" not in headers


def test_without_preserve_host_no_host_header_is_relayed() -> None:
    assert "Host" not in relayed([("Host", "evil.example")])


@pytest.mark.parametrize(
    ("cookie", "expected"),
    [
        ("a=1; cg_bid=x; b=2", "a=1; b=2"),
        ("__Host-cg_bid=x; __Host-cg_csrf=y", None),
        ("cg_bid=x", None),
        ("a=1;b=2", "a=1;b=2"),  # kept byte-exact
        ("not_cg_bid=1; xcg_=2", "not_cg_bid=1; xcg_=2"),  # only names beginning so
    ],
)
def test_the_gates_own_cookies_never_reach_the_upstream(cookie: str, expected: str | None) -> None:
    headers = relayed([("Cookie", cookie)])
    assert headers.get("Cookie") == expected


def test_repeated_headers_stay_separate() -> None:
    headers = relayed([("Accept", "a"), ("Accept", "b")])
    assert headers.getall("Accept") == ["a", "b"]


@pytest.mark.parametrize(
    ("header", "expected"),
    [("a=1; cg_x=2", "a=1"), (" cg_x=2 ;  b=3", "b=3"), ("", ""), (";;", "")],
)
def test_strip_cookies_keeps_the_others_as_sent(header: str, expected: str) -> None:
    assert strip_cookies(header, OWN_COOKIES) == expected


# --- headers relayed back, Location -----------------------------------------------------

UPSTREAM = "http://127.0.0.1:9000"
PUBLIC = "https://gate.example"


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        ("http://127.0.0.1:9000", PUBLIC),
        ("http://127.0.0.1:9000/", f"{PUBLIC}/"),
        ("http://127.0.0.1:9000/a/?b=c#d", f"{PUBLIC}/a/?b=c#d"),
        ("http://127.0.0.1:9000?x", f"{PUBLIC}?x"),
        ("HTTP://127.0.0.1:9000/x", f"{PUBLIC}/x"),
        # not the upstream's origin: left alone
        ("http://127.0.0.1:90001/x", "http://127.0.0.1:90001/x"),
        ("http://127.0.0.1:9000.evil.example/", "http://127.0.0.1:9000.evil.example/"),
        ("http://127.0.0.1:9000@evil.example/", "http://127.0.0.1:9000@evil.example/"),
        ("https://idp.example/authorize", "https://idp.example/authorize"),
        ("/relative", "/relative"),
    ],
)
def test_a_location_naming_the_upstream_origin_is_rewritten_to_the_public_one(
    location: str, expected: str
) -> None:
    assert rewrite_location(location, UPSTREAM, PUBLIC) == expected


@pytest.mark.parametrize(
    ("upstream_origin", "location"),
    [
        ("http://upstream.internal:80", "http://upstream.internal/next"),
        ("https://upstream.internal:443", "https://upstream.internal/next"),
        ("http://upstream.internal", "http://upstream.internal:80/next"),
    ],
)
def test_a_location_naming_the_upstream_with_or_without_its_default_port_is_rewritten(
    upstream_origin: str, location: str
) -> None:
    assert rewrite_location(location, upstream_origin, PUBLIC) == f"{PUBLIC}/next"


def test_response_headers_lose_hop_by_hop_ones_and_keep_repeated_set_cookie() -> None:
    headers = downstream_response_headers(
        CIMultiDict(
            [
                ("Connection", "X-Upstream-Hop"),
                ("X-Upstream-Hop", "1"),
                ("Transfer-Encoding", "chunked"),
                ("Set-Cookie", "a=1"),
                ("Set-Cookie", "b=2"),
                ("Location", f"{UPSTREAM}/next"),
            ]
        ),
        upstream_origin=UPSTREAM,
        public_origin=PUBLIC,
    )
    assert list(headers.items()) == [
        ("Set-Cookie", "a=1"),
        ("Set-Cookie", "b=2"),
        ("Location", f"{PUBLIC}/next"),
    ]
