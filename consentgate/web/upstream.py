"""The upstream OAuth proxy: one object with its base URL, its connection pool and timeouts.

Every request the gate sends upstream (relayed traffic, approved authorization
requests, callbacks, the metadata read for ``iss``, the readiness probe) goes
through one :class:`Upstream`, opened and closed by one ``cleanup_ctx``
(:func:`upstream_ctx`). The target is joined to the base URL in one place
(:meth:`Upstream.url`), byte-exact (``encoded=True``): re-quoting a
percent-encoded ``redirect_uri`` would change the request the gate checked.

The pool (REFERENCES.md, "Proxy correctness"): one shared ``ClientSession`` with a
``DummyCookieJar`` (a real jar would carry one user's upstream cookies into
another user's request), ``auto_decompress=False`` so bodies and
``Content-Encoding`` agree, no default headers added, no redirects followed, no
proxy settings taken from the environment, and no total timeout (event streams
last as long as they last): only the connect timeout is armed here, the read
timeout is the relay's.
"""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass, field
from typing import Final

import aiohttp
from yarl import URL

from consentgate.core.config import Config
from consentgate.web.bodies import read_up_to

#: Upstream URLs remembered per target (a bounded LRU), for targets up to this many
#: characters: at most about 4 MB of keys and URL objects, whatever clients send.
_URL_CACHE_ENTRIES: Final = 4096
_CACHED_TARGET_LENGTH: Final = 512


@dataclass(frozen=True, slots=True)
class Upstream:
    """Where the upstream is, the pool to it, and how long it may take to answer."""

    #: ``upstream.url``: scheme, host, port and an optional base path, no trailing slash.
    base_url: str
    session: aiohttp.ClientSession
    connect_timeout: float
    #: Seconds the response headers may take after the request body was sent, and the
    #: longest pause between two chunks of a body that is not an event stream.
    read_timeout: float
    #: The event loop the pool belongs to (``asyncio.get_running_loop()`` costs a
    #: ``getpid`` system call on Python 3.11, and the relay needs it on every request).
    loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.get_running_loop)
    _urls: functools._lru_cache_wrapper[URL] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # The same few paths (/mcp, /.well-known/...) come back on every request, and
        # parsing one into a yarl URL is ~0.5 us, more for aiohttp's later reads of
        # its parts (cached on the URL object). URLs are immutable: a remembered one
        # is the same URL.
        base = self.base_url
        cached = functools.lru_cache(maxsize=_URL_CACHE_ENTRIES)(
            lambda target: URL(base + target, encoded=True)
        )
        object.__setattr__(self, "_urls", cached)

    @classmethod
    def open(cls, config: Config) -> Upstream:
        upstream = config.upstream
        connector = aiohttp.TCPConnector(
            limit=upstream.max_connections,
            limit_per_host=0,
            keepalive_timeout=upstream.keepalive_timeout,
            enable_cleanup_closed=False,
            ttl_dns_cache=60,
        )
        timeout = aiohttp.ClientTimeout(
            total=None, connect=None, sock_connect=upstream.connect_timeout, sock_read=None
        )
        session = aiohttp.ClientSession(
            connector=connector,
            timeout=timeout,
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
            skip_auto_headers=("User-Agent", "Accept-Encoding", "Accept", "Content-Type"),
            raise_for_status=False,
            trust_env=False,
        )
        return cls(upstream.url, session, upstream.connect_timeout, upstream.read_timeout)

    async def close(self) -> None:
        await self.session.close()

    def url(self, target: str) -> URL:
        """The upstream URL of ``target`` (a raw path and query, as the client sent it)."""
        if len(target) <= _CACHED_TARGET_LENGTH:
            return self._urls(target)
        return URL(self.base_url + target, encoded=True)

    async def fetch(
        self, target: str, *, total_seconds: float, max_bytes: int
    ) -> tuple[int, bytes]:
        """A small GET (metadata, a probe): ``(status, body)``, status 0 if the body was
        longer than ``max_bytes``. Raises ``aiohttp.ClientError`` or ``TimeoutError``."""
        async with self.session.get(
            self.url(target),
            timeout=aiohttp.ClientTimeout(total=total_seconds),
            allow_redirects=False,
        ) as response:
            body, complete = await read_up_to(response.content, max_bytes)
            return (response.status if complete else 0), body
