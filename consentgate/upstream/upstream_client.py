"""The upstream OAuth proxy: one object with its base URL, its connection pool and timeouts.

Every request the gate sends upstream (relayed traffic, approved authorization
requests, callbacks, the metadata read for ``iss``, the readiness probe) goes
through one :class:`Upstream`, opened and closed by one ``cleanup_ctx``
(``serving/application.py``). The target is written as the client sent it (byte-exact:
re-quoting a percent-encoded ``redirect_uri`` would change the request the gate
checked).

The pool is :class:`~consentgate.upstream.pool.UpstreamPool` (docs/references.md,
"Proxy correctness", and why not ``aiohttp.ClientSession``: see that module): no
cookie jar (one user's upstream cookies never reach another user's request), bodies
and ``Content-Encoding`` untouched, no default headers added, no redirects followed,
no proxy settings taken from the environment, and no total timeout (event streams
last as long as they last): only the connect timeout is armed here, the read
timeout is the relay's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field

from consentgate.config.model import Config
from consentgate.upstream.bounded_read import read_up_to
from consentgate.upstream.pool import UpstreamPool
from consentgate.upstream.shares import AddressShares


@dataclass(frozen=True, slots=True)
class Upstream:
    """Where the upstream is, the pool to it, and how long it may take to answer."""

    #: ``upstream.url``: scheme, host and port, no path (the config refuses one).
    base_url: str
    pool: UpstreamPool
    connect_timeout: float
    #: Seconds the response headers may take after the request body was sent, and the
    #: longest pause between two chunks of a body that is not an event stream.
    read_timeout: float
    #: The event loop the pool belongs to (``asyncio.get_running_loop()`` costs a
    #: ``getpid`` system call on Python 3.11, and the relay needs it on every request).
    loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.get_running_loop)
    #: The connections each client address uses (``upstream.max_connections_per_address``).
    shares: AddressShares = field(default_factory=AddressShares)

    @classmethod
    def open(cls, config: Config) -> Upstream:
        upstream = config.upstream
        loop = asyncio.get_running_loop()
        pool = UpstreamPool(
            upstream.url,
            limit=upstream.max_connections,
            connect_timeout=upstream.connect_timeout,
            keepalive_timeout=upstream.keepalive_timeout,
            loop=loop,
        )
        return cls(upstream.url, pool, upstream.connect_timeout, upstream.read_timeout, loop)

    async def close(self) -> None:
        await self.pool.close()

    async def fetch(
        self,
        target: str,
        *,
        total_seconds: float,
        max_bytes: int,
        headers: Iterable[tuple[str, str]] = (),
    ) -> tuple[int, bytes]:
        """A small GET (metadata, a probe): ``(status, body)``, status 0 if the body was
        longer than ``max_bytes``. Raises ``UpstreamError`` or ``TimeoutError``."""
        async with asyncio.timeout(total_seconds):
            response = await self.pool.request("GET", target, headers)
            try:
                body, complete = await read_up_to(response.content, max_bytes)
            finally:
                response.release()
            return (response.status if complete else 0), body
