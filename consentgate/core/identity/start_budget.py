"""How many sign-ins one network may start: each start writes a signed row that waits
in the store for up to ten minutes, so starts from strangers are a budget.

The consent page avoided the problem by storing nothing until it is answered
(:mod:`consentgate.core.signed.pending`: a flood of cookie-less renders filled any
global cap and then every real person got a 503). A sign-in cannot: the request
must wait server-side while the browser is at the provider (nothing of it may
round-trip). So the starts are counted per client network
(:func:`consentgate.core.trust.forwarding.address_group`: an IPv4 address, an IPv6
/64), in a sliding window: a network over :data:`STARTS_PER_WINDOW` in
:data:`WINDOW` seconds gets "try again in a minute" and writes nothing, while every
other network is served. A person starts a few sign-ins an hour; a shared NAT of a
few hundred people stays far below the bound.

Pure: the clock is injected; memory is bounded (:data:`MAX_NETWORKS`, the least
recently seen forgotten first).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Final

STARTS_PER_WINDOW: Final = 60
WINDOW: Final = 60.0
MAX_NETWORKS: Final = 10_000


class StartBudget:
    """Sign-in starts per network in the last :data:`WINDOW` seconds."""

    def __init__(
        self,
        clock: Callable[[], float],
        *,
        limit: int = STARTS_PER_WINDOW,
        window: float = WINDOW,
        max_networks: int = MAX_NETWORKS,
    ) -> None:
        self._clock = clock
        self._limit = limit
        self._window = window
        self._max = max_networks
        self._starts: OrderedDict[str, deque[float]] = OrderedDict()

    def take(self, network: str) -> bool:
        """Count one start for ``network``; False (nothing counted) when it is over."""
        now = self._clock()
        starts = self._starts.pop(network, None) or deque()
        while starts and starts[0] <= now - self._window:
            starts.popleft()
        allowed = len(starts) < self._limit
        if allowed:
            starts.append(now)
        self._starts[network] = starts
        while len(self._starts) > self._max:
            self._starts.popitem(last=False)
        return allowed
