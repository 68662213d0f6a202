"""How many upstream connections each client address is using: its share of the pool.

The pool (``upstream.max_connections``) is shared by everyone, first come first
served; without a share, one client address that keeps requests open (bodies that
stall, responses read slowly, many event streams) takes the whole pool and everyone
else waits ``read_timeout`` for a 504. nginx's ``limit_conn`` keeps one key from
taking every connection the same way, and refuses the excess with 503.

The excess is refused at once (503, ``Retry-After``), not queued: a queue per
address would keep each excess request's client connection and handler alive and
let one address pile up waiters without bound, while a real client rarely has more
than a handful of requests in flight to one origin (a browser opens 6 connections
per host over HTTP/1.1; an MCP client one event stream per session). Many clients
behind one address that is not a trusted proxy (a NAT) may need a larger share.

Addresses are grouped as every per-address limit of the gate groups them
(:func:`consentgate.core.trust.forwarding.address_group`: IPv4 alone, IPv6 by its /64);
the address is the client's as the gate sees it (forwarded headers count only from
``server.trusted_proxies``).
"""

from __future__ import annotations


class AddressShares:
    """Upstream connections in use (or being waited for) per address group."""

    __slots__ = ("_used",)

    def __init__(self) -> None:
        self._used: dict[str, int] = {}

    def take(self, group: str, share: int) -> bool:
        """One more for ``group``, unless it already uses ``share``."""
        used = self._used.get(group, 0)
        if used >= share:
            return False
        self._used[group] = used + 1
        return True

    def give_back(self, group: str) -> None:
        used = self._used[group] - 1
        if used:
            self._used[group] = used
        else:
            del self._used[group]

    def in_use(self, group: str) -> int:
        return self._used.get(group, 0)
