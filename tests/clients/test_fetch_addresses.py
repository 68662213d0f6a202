"""Which addresses the gate may connect to when it fetches a document (SSRF; pure)."""

from __future__ import annotations

import ipaddress
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consentgate.clients.client_errors import ClientRuleError
from consentgate.clients.fetch_addresses import (
    NON_PUBLIC_IPV4,
    BadNetworkList,
    may_connect,
    parse_networks,
    refusal,
)

Address = IPv4Address | IPv6Address


def ip(text: str) -> Address:
    return ipaddress.ip_address(text)


@pytest.mark.parametrize(
    "address", ["1.1.1.1", "93.184.216.34", "2606:4700:4700::1111", "2a00:1450:4001::200e"]
)
def test_a_public_address_may_be_connected_to(address: str) -> None:
    assert may_connect(ip(address), ())
    assert refusal(ip(address), ()) is None


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("0.0.0.0", "this network"),  # noqa: S104 - a value under test, nothing binds
        ("0.1.2.3", "this network"),
        ("10.1.2.3", "private"),
        ("100.64.0.1", "shared"),
        ("100.127.255.254", "shared"),
        ("127.0.0.1", "loopback"),
        ("127.255.0.9", "loopback"),
        ("169.254.169.254", "link-local"),
        ("172.16.0.1", "private"),
        ("172.31.255.255", "private"),
        ("192.0.0.9", "IETF protocol"),
        ("192.0.2.1", "documentation"),
        ("192.88.99.1", "6to4 relay"),
        ("192.168.1.1", "private"),
        ("198.18.0.1", "benchmarking"),
        ("198.51.100.7", "documentation"),
        ("203.0.113.9", "documentation"),
        ("224.0.0.1", "multicast"),
        ("239.255.255.250", "multicast"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
        ("::", "unspecified"),
        ("::1", "loopback"),
        ("::10.1.2.3", "IPv4-compatible"),
        ("::8.8.8.8", "IPv4-compatible"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:10.0.0.1", "private"),
        ("::ffff:169.254.169.254", "link-local"),
        ("64:ff9b::10.0.0.1", "NAT64 form of a private"),
        ("64:ff9b::127.0.0.1", "NAT64 form of a loopback"),
        ("64:ff9b::a9fe:a9fe", "NAT64 form of a link-local"),
        ("64:ff9b:1::1", "local-use NAT64"),
        ("64:ff9b:1:ffff::8.8.8.8", "local-use NAT64"),
        ("100::1", "discard"),
        ("2001::1", "Teredo"),
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo"),
        ("2001:2::1", "IETF protocol"),
        ("2001:10::1", "IETF protocol"),
        ("2001:20::1", "IETF protocol"),
        ("2001:db8::1", "documentation"),
        ("3fff::1", "documentation"),
        ("2002:a00:1::", "6to4 form of a private"),
        ("2002:7f00:1::1", "6to4 form of a loopback"),
        ("2002:c0a8:101::1", "6to4 form of a private"),
        ("5f00::1", "global unicast"),
        ("fc00::1", "unique local"),
        ("fd12:3456::1", "unique local"),
        ("fe80::1", "link-local"),
        ("fec0::1", "site-local"),
        ("ff02::1", "multicast"),
        ("4000::1", "global unicast"),
    ],
)
def test_a_non_public_address_is_refused_with_the_reason(address: str, reason: str) -> None:
    assert not may_connect(ip(address), ())
    assert reason in (refusal(ip(address), ()) or "")


def test_a_scoped_ipv6_address_is_refused() -> None:
    assert "zone" in (refusal(IPv6Address("2606:4700::1111%eth0"), ()) or "")


def test_the_nat64_and_6to4_forms_of_a_public_address_may_be_connected_to() -> None:
    assert may_connect(ip("64:ff9b::1.1.1.1"), ())
    assert may_connect(ip("2002:101:101::1"), ())
    assert may_connect(ip("::ffff:1.1.1.1"), ())


def test_an_allowed_network_lets_its_addresses_through() -> None:
    allowed = (IPv4Network("10.20.0.0/16"), IPv6Network("fd00:1::/64"), IPv4Network("127.0.0.1/32"))
    assert may_connect(ip("10.20.3.4"), allowed)
    assert may_connect(ip("::ffff:10.20.3.4"), allowed)  # the same IPv4 address
    assert may_connect(ip("fd00:1::5"), allowed)
    assert may_connect(ip("127.0.0.1"), allowed)
    assert not may_connect(ip("10.21.3.4"), allowed)
    assert not may_connect(ip("127.0.0.2"), allowed)
    assert not may_connect(ip("64:ff9b::10.20.3.4"), allowed)  # a translator, not that host
    assert not may_connect(ip("::1"), allowed)


# --- properties ----------------------------------------------------------------------

_NON_PUBLIC_V4 = st.sampled_from([network for network, _ in NON_PUBLIC_IPV4]).flatmap(
    lambda net: st.integers(0, net.num_addresses - 1).map(
        lambda i: IPv4Address(int(net.network_address) + i)
    )
)


@given(_NON_PUBLIC_V4)
def test_every_non_public_ipv4_address_is_refused_in_every_ipv6_form(v4: IPv4Address) -> None:
    n = int(v4)
    forms: list[Address] = [
        v4,
        IPv6Address((0xFFFF << 32) | n),  # IPv4-mapped
        IPv6Address(n),  # IPv4-compatible
        IPv6Address((0x0064FF9B << 96) | n),  # NAT64 well-known prefix
        IPv6Address((0x0064FF9B0001 << 80) | (n << 40)),  # local-use NAT64, a /48
        IPv6Address((0x2002 << 112) | (n << 80) | 1),  # 6to4
    ]
    for form in forms:
        assert not may_connect(form, ()), form


@given(st.integers(0, 2**32 - 1).map(IPv4Address))
def test_every_ipv4_address_the_policy_accepts_is_global(v4: IPv4Address) -> None:
    if may_connect(v4, ()):
        assert v4.is_global
        assert may_connect(IPv6Address((0xFFFF << 32) | int(v4)), ())
    else:
        assert not may_connect(IPv6Address((0xFFFF << 32) | int(v4)), ())


_V6 = st.one_of(
    st.integers(0, 2**128 - 1),
    st.integers(0, 2**32 - 1).map(lambda n: (0xFFFF << 32) | n),
    st.integers(0, 2**32 - 1).map(lambda n: (0x0064FF9B << 96) | n),
    st.integers(0, 2**112 - 1).map(lambda n: (0x2002 << 112) | n),
    st.integers(0, 2**125 - 1).map(lambda n: (1 << 125) | n),  # 2000::/3
).map(IPv6Address)
_ALLOWED = st.lists(
    st.sampled_from(
        [IPv4Network("10.0.0.0/8"), IPv6Network("fd00::/8"), IPv4Network("127.0.0.0/8")]
    ),
    max_size=2,
).map(tuple)


@given(_V6 | st.integers(0, 2**32 - 1).map(IPv4Address), _ALLOWED)
def test_no_address_the_policy_accepts_is_non_global_unless_in_the_allow_list(
    address: Address, allowed: tuple[IPv4Network | IPv6Network, ...]
) -> None:
    if not may_connect(address, allowed):
        return
    effective: Address = address
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        effective = address.ipv4_mapped
    assert effective.is_global or any(
        effective.version == network.version and effective in network for network in allowed
    )
    if isinstance(effective, IPv6Address):
        assert effective in IPv6Network("2000::/3") or effective in IPv6Network("64:ff9b::/96")


# --- the allow list ------------------------------------------------------------------


def test_a_list_of_networks_is_parsed() -> None:
    assert parse_networks(["10.0.0.0/8", "fd00::/8", "192.168.1.5"]) == (
        IPv4Network("10.0.0.0/8"),
        IPv6Network("fd00::/8"),
        IPv4Network("192.168.1.5/32"),
    )
    assert parse_networks([]) == ()


@pytest.mark.parametrize(
    ("values", "named"),
    [
        (["10.0.0.1/8"], "'10.0.0.1/8'"),
        (["10.0.0.0/33"], "'10.0.0.0/33'"),
        (["example.com"], "'example.com'"),
        ([" 10.0.0.0/8"], "' 10.0.0.0/8'"),
        ([""], "''"),
        (["10.0.0.0/8", 10], "10"),
        (["0.0.0.0/0"], "'0.0.0.0/0'"),
        (["::/0"], "'::/0'"),
        (["fe80::%eth0/64"], "'fe80::%eth0/64'"),
        ("10.0.0.0/8", "list"),
        (None, "list"),
    ],
)
def test_a_bad_network_is_refused_with_the_bad_value_named(values: object, named: str) -> None:
    with pytest.raises(BadNetworkList) as caught:
        parse_networks(values)
    assert named in str(caught.value)
    assert isinstance(caught.value, ClientRuleError)
