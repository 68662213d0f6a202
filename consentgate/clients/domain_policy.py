"""Which client hosts an operator blocks or allows (MCP 2025-11-25: servers MAY apply
domain trust policies to URL client_ids).

How an entry matches, chosen so that a short list says what it means:

* ``example.com`` matches ``example.com`` and every subdomain (``app.example.com``,
  ``a.b.example.com``), never a domain that merely ends in the same letters
  (``notexample.com``). Whoever controls a domain controls its subdomains, so an
  operator who trusts or distrusts a company names its domain once.
* ``=example.com`` matches that host only, for an operator who trusts one host of a
  domain whose other hosts are not the same party's (a hosting provider's).
* An IP address entry (``192.0.2.1``, ``[2001:db8::1]``) matches that address only.
* Entries and hosts are compared as the browser reads them (``core.urls.browser_host``:
  UTS #46 mapping, lowercase ASCII, punycode), with a trailing dot ignored: so
  ``BÜCHER.example`` and ``xn--bcher-kva.example`` are one entry, and ``example。com``
  (an ideographic full stop) is ``example.com``.
* ``*.example.com`` is refused with a hint rather than guessed at: it would read as
  "subdomains only" to some and "the domain too" to others.

The decision: a host matched by a blocked entry is blocked, whatever the allow list
says (the narrower, distrusting rule wins); otherwise an empty allow list allows
every host, and a non-empty one allows only the hosts it matches. A host the policy
cannot read is never allowed (fail closed).

Pure module: no I/O.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Final, Literal

from consentgate.clients.client_errors import ClientRuleError
from consentgate.core.memo import remembered
from consentgate.core.trust.urls import BadURL, browser_host

Decision = Literal["allowed", "blocked", "not_allowed", "unreadable"]
_NOT_IN_A_HOST: Final = frozenset("/:@?#")
#: The longest host a DNS name can be, with room for a trailing dot.
_LONGEST_HOST: Final = 255


class BadDomainEntry(ClientRuleError):
    """A blocked/allowed domain entry that is not one; the message names the value."""


@remembered(_LONGEST_HOST)
def normal_host(spelled: str) -> str:
    """The host as the browser reads it, without a trailing dot; raises ``BadURL``."""
    return browser_host(spelled).rstrip(".")


def _is_address(host: str) -> bool:
    if host.startswith("["):
        return True
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class DomainEntry:
    """One entry: a normal host, and whether it matches that host only."""

    domain: str
    exact: bool

    def __str__(self) -> str:
        """As a configuration file writes it (a reload's log line shows it so)."""
        return f"={self.domain}" if self.exact and not _is_address(self.domain) else self.domain

    def matches_normal(self, host: str) -> bool:
        """For a host already in :func:`normal_host` form."""
        if host == self.domain:
            return True
        return not self.exact and host.endswith("." + self.domain)

    def matches(self, host: str) -> bool:
        try:
            return self.matches_normal(normal_host(host))
        except BadURL:
            return False


def _entry(value: object) -> DomainEntry:
    if not isinstance(value, str):
        raise BadDomainEntry(f"{value!r} is not a string")
    if any(char.isspace() for char in value):
        raise BadDomainEntry(f"{value!r} contains a space")
    exact = value.startswith("=")
    spelled = value[1:] if exact else value
    if spelled.startswith("*"):
        raise BadDomainEntry(
            f"{value!r}: write example.com (it covers its subdomains), "
            "or =example.com for that host only"
        )
    if not spelled.startswith("[") and set(spelled) & _NOT_IN_A_HOST:
        raise BadDomainEntry(f"{value!r} is not a host: write the host only (example.com)")
    if not spelled.strip("."):
        raise BadDomainEntry(f"{value!r} is empty")
    try:
        domain = normal_host(spelled)
    except BadURL as exc:
        raise BadDomainEntry(f"{value!r} cannot be read as a host ({exc})") from None
    if not domain:
        raise BadDomainEntry(f"{value!r} is empty")
    return DomainEntry(domain, exact=exact or _is_address(domain))


def parse_domain_entries(values: object) -> tuple[DomainEntry, ...]:
    """Entries from configuration (a list of texts); raises :class:`BadDomainEntry`
    naming the bad value (the message completes "<key path>: ...")."""
    if not isinstance(values, list):
        raise BadDomainEntry(f"expected a list of domains, got {values!r}")
    return tuple(_entry(value) for value in values)


@dataclass(frozen=True)
class DomainPolicy:
    """The operator's blocked and allowed entries for URL client_id hosts."""

    blocked: tuple[DomainEntry, ...] = ()
    allowed: tuple[DomainEntry, ...] = ()

    def decide(self, host: str) -> Decision:
        """What the policy says of a client_id's host (``ClientIdURL.host``)."""
        try:
            normal = normal_host(host)
        except BadURL:
            return "unreadable"
        if not normal:
            return "unreadable"
        if any(entry.matches_normal(normal) for entry in self.blocked):
            return "blocked"
        if not self.allowed or any(entry.matches_normal(normal) for entry in self.allowed):
            return "allowed"
        return "not_allowed"

    def permits(self, host: str) -> bool:
        return self.decide(host) == "allowed"
