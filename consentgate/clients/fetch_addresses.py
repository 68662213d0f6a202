"""Which addresses the gate may connect to when it fetches a client's document.

A URL client_id makes the gate fetch a URL an anonymous client chose: without a
rule, ``https://169.254.169.254/...`` or a name resolving to ``10.0.0.5`` turns
the gate into a probe of its own network (MCP Security Best Practices, "SSRF").
The rule here decides on the parsed address (``ipaddress``), never on its text:
``0x7f.1``, ``2130706433``, ``::ffff:127.0.0.1`` and ``64:ff9b::7f00:1`` are all
numbers before they reach it. The fetcher must ask it about every address it
actually connects to, after resolution (so a name cannot be re-pointed between the
check and the connection).

Refused, with the reason (RFC 6890's special-purpose registries and their updates;
docs/references.md lists them):

* IPv4: "this network" 0/8, private 10/8, 172.16/12, 192.168/16, shared address
  space (carrier-grade NAT) 100.64/10 (RFC 6598), loopback 127/8, link-local
  169.254/16 (cloud metadata services live there), IETF protocol assignments
  192.0.0/24, the documentation ranges 192.0.2/24, 198.51.100/24, 203.0.113/24
  (RFC 5737), the deprecated 6to4 relay anycast 192.88.99/24 (RFC 7526),
  benchmarking 198.18/15, multicast 224/4, reserved 240/4 and broadcast.
* IPv6: the unspecified and loopback addresses, IPv4-compatible ::/96 (deprecated,
  RFC 4291 §2.5.5.1), discard-only 100::/64, the IETF protocol assignments 2001::/23
  (Teredo 2001::/32 among them: it tunnels to an IPv4 address the gate cannot check),
  documentation 2001:db8::/32 and 3fff::/20 (RFC 9637), local-use NAT64 64:ff9b:1::/48
  (RFC 8215: where its IPv4 address sits depends on the local translator),
  unique-local fc00::/7, link-local fe80::/10, site-local fec0::/10, multicast
  ff00::/8, and anything else outside global unicast 2000::/3.
* The IPv6 forms that carry an IPv4 address are judged by that address: an
  IPv4-mapped address (::ffff:0:0/96) IS the IPv4 address on a dual-stack socket;
  a NAT64 (64:ff9b::/96, RFC 6052) or 6to4 (2002::/16, RFC 3056) address reaches it
  through a translator, so such a form of a non-public IPv4 address is refused.
* An address with an IPv6 zone identifier (``%eth0``): it names an interface.
* Finally, anything ``ipaddress`` does not call globally reachable.

The operator's allow list (``parse_networks``) wins: a network listed there may be
connected to (a document host inside the company network). It matches the address
itself, and an IPv4-mapped address as its IPv4 address; a NAT64 or 6to4 form only if
the IPv6 address is listed, since its packets go to a translator. A list holding a
whole address family (``/0``) is refused: it would switch the rule off.

Pure module: no sockets; the fetcher hands in each address.
"""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import (
    IPv4Address,
    IPv4Network,
    IPv6Address,
    IPv6Network,
    ip_network,
)
from typing import Final

from consentgate.clients.client_errors import ClientRuleError

Address = IPv4Address | IPv6Address
Network = IPv4Network | IPv6Network


class BadNetworkList(ClientRuleError):
    """An allow-list entry that is not an IP network; the message names the value."""


def _v4(*pairs: tuple[str, str]) -> tuple[tuple[IPv4Network, str], ...]:
    return tuple((IPv4Network(network), reason) for network, reason in pairs)


def _v6(*pairs: tuple[str, str]) -> tuple[tuple[IPv6Network, str], ...]:
    return tuple((IPv6Network(network), reason) for network, reason in pairs)


#: IPv4 networks never connected to (unless allowed), with why.
NON_PUBLIC_IPV4: Final = _v4(
    ("0.0.0.0/8", "a 'this network' address"),
    ("10.0.0.0/8", "a private address"),
    ("100.64.0.0/10", "a shared (carrier-grade NAT) address"),
    ("127.0.0.0/8", "a loopback address"),
    ("169.254.0.0/16", "a link-local address"),
    ("172.16.0.0/12", "a private address"),
    ("192.0.0.0/24", "an IETF protocol assignment"),
    ("192.0.2.0/24", "a documentation address"),
    ("192.88.99.0/24", "a 6to4 relay anycast address"),
    ("192.168.0.0/16", "a private address"),
    ("198.18.0.0/15", "a benchmarking address"),
    ("198.51.100.0/24", "a documentation address"),
    ("203.0.113.0/24", "a documentation address"),
    ("224.0.0.0/4", "a multicast address"),
    ("240.0.0.0/4", "a reserved address"),
)

#: IPv6 networks never connected to (unless allowed), with why; checked in order.
NON_PUBLIC_IPV6: Final = _v6(
    ("::/128", "the unspecified address"),
    ("::1/128", "a loopback address"),
    ("::/96", "an IPv4-compatible address (deprecated)"),
    ("64:ff9b:1::/48", "a local-use NAT64 address"),
    ("100::/64", "a discard-only address"),
    ("2001::/32", "a Teredo address"),
    ("2001::/23", "an IETF protocol assignment"),
    ("2001:db8::/32", "a documentation address"),
    ("3fff::/20", "a documentation address"),
    ("fc00::/7", "a unique local address"),
    ("fe80::/10", "a link-local address"),
    ("fec0::/10", "a site-local address (deprecated)"),
    ("ff00::/8", "a multicast address"),
)
GLOBAL_UNICAST: Final = IPv6Network("2000::/3")
NAT64: Final = IPv6Network("64:ff9b::/96")
SIX_TO_FOUR: Final = IPv6Network("2002::/16")


def _ipv4_refusal(address: IPv4Address) -> str | None:
    for network, reason in NON_PUBLIC_IPV4:
        if address in network:
            return reason
    if not address.is_global:
        return "not a globally reachable address"
    return None


def _ipv6_refusal(address: IPv6Address) -> str | None:
    for network, reason in NON_PUBLIC_IPV6:
        if address in network:
            return reason
    if address in NAT64:
        embedded = _ipv4_refusal(IPv4Address(int(address) & 0xFFFFFFFF))
        return f"the NAT64 form of {embedded}" if embedded else None
    if address not in GLOBAL_UNICAST:
        return "outside global unicast (2000::/3)"
    if address.sixtofour is not None:
        embedded = _ipv4_refusal(address.sixtofour)
        if embedded:
            return f"the 6to4 form of {embedded}"
        return None  # ipaddress calls 6to4 non-global as a block; the IPv4 address decides
    if not address.is_global:
        return "not a globally reachable address"
    return None


def refusal(address: Address, allowed: Sequence[Network]) -> str | None:
    """Why the gate may not connect to ``address`` (a phrase for the log), or None."""
    if isinstance(address, IPv6Address):
        if address.scope_id is not None:
            return "an address with a zone identifier"
        address = address.ipv4_mapped or address
    if any(address.version == net.version and address in net for net in allowed):
        return None
    if isinstance(address, IPv4Address):
        return _ipv4_refusal(address)
    return _ipv6_refusal(address)


def may_connect(address: Address, allowed: Sequence[Network]) -> bool:
    """Whether the gate may connect to ``address`` to fetch a document."""
    return refusal(address, allowed) is None


def parse_networks(values: object) -> tuple[Network, ...]:
    """An allow list from configuration: a list of CIDR texts (a bare address is a
    /32 or /128). Raises :class:`BadNetworkList` naming the bad value; the message
    completes "<key path>: ..."."""
    if not isinstance(values, list):
        raise BadNetworkList(f"expected a list of networks in CIDR notation, got {values!r}")
    networks: list[Network] = []
    for value in values:
        if not isinstance(value, str):
            raise BadNetworkList(f"{value!r} is not a network in CIDR notation (not a string)")
        if "%" in value:
            raise BadNetworkList(f"{value!r} has a zone identifier, which a network cannot have")
        try:
            network = ip_network(value, strict=True)
        except ValueError as exc:
            raise BadNetworkList(f"{value!r} is not a network in CIDR notation ({exc})") from None
        if network.prefixlen == 0:
            raise BadNetworkList(
                f"{value!r} would allow every address; list the networks of the hosts meant"
            )
        networks.append(network)
    return tuple(networks)
