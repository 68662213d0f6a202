"""The document fetcher: a URL client_id in, its validated metadata document out.

The authorization endpoint calls :meth:`DocumentFetcher.get` for every request whose
client_id is an https URL (``client_id_urls.parse_client_id_url`` first), and shows the
person either the document (as the client's own claim) or the failure's ``message``.
Everything a stranger could use to make the gate work for them is bounded here (MCP
2025-11-25, "Client ID Metadata Document Security"; Security Best Practices, "SSRF";
FastMCP's fetch as the reference: docs/references.md):

* the operator's switch and domain policy first: a refused host is never contacted;
* documents are cached by the exact client_id (``fetch_cache.DocumentCache``, LRU,
  ``fetch_cache_size`` entries), each for ``cache_policy.time_to_live`` of its
  response's ``Cache-Control`` within ``[fetch_min_ttl, fetch_max_ttl]``; a stale one
  with an ``ETag`` or ``Last-Modified`` is revalidated with ``If-None-Match`` /
  ``If-Modified-Since`` (RFC 9111 §4.3.1) and a 304 extends it;
* a failure is remembered for ``fetch_failure_ttl`` (``fetch_cache.FailureCache``):
  the same client_id is not fetched again before, however many requests name it;
* at most ``fetch_per_host_per_minute`` fetches per host (``fetch_cache.HostBudget``),
  so many URLs on one host cannot turn the gate into a crawler of it;
* at most ``fetch_max_concurrent`` fetches at once; beyond, ``busy`` at once rather
  than a queue a flood would fill;
* one fetch per client_id at a time (single flight): concurrent gets share it, and a
  caller that goes away does not cancel it for the others (it ends by its timeout);
* the GET itself (``https_get.document_get``): checked and pinned addresses, verified
  TLS, no redirects, JSON only, 5,120 bytes, one deadline;
* every expiry reads the injected clock (``core.clock``).

A failed revalidation drops the stale document: the gate never shows a document its
host no longer serves (fail closed).
"""

from __future__ import annotations

import asyncio
import logging
import math
import ssl
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Final

from consentgate.clients.cache_policy import time_to_live
from consentgate.clients.client_id_urls import ClientIdURL
from consentgate.clients.domain_policy import DomainPolicy
from consentgate.clients.fetch_addresses import Network
from consentgate.clients.fetch_cache import CachedDocument, DocumentCache, FailureCache, HostBudget
from consentgate.clients.fetch_results import (
    TRANSIENT,
    Fetched,
    FetchFailed,
    FetchResult,
    failure,
)
from consentgate.clients.https_get import (
    DocumentResponse,
    FetchError,
    Resolver,
    document_get,
    system_resolve,
    tls_context,
)
from consentgate.clients.metadata_documents import BadMetadataDocument, read_document
from consentgate.config.sections_policy import ClientsConfig
from consentgate.core.clock import Clock, system_clock

log = logging.getLogger("consentgate")

#: A validator sent back to the host must be a plain header value.
MAX_VALIDATOR_LENGTH: Final = 256
#: The per-host budget's window, in seconds.
HOST_WINDOW: Final = 60.0


@dataclass(frozen=True)
class FetchSettings:
    """What the fetcher obeys; :meth:`from_config` reads ``[clients]``."""

    enabled: bool = True
    allow_networks: tuple[Network, ...] = ()
    ca_file: Path | None = None
    timeout: float = 5.0
    min_ttl: float = 60.0
    max_ttl: float = 86400.0
    default_ttl: float = 3600.0
    failure_ttl: float = 30.0
    cache_size: int = 1000
    per_host_per_minute: int = 30
    max_concurrent: int = 16
    domains: DomainPolicy = field(default_factory=DomainPolicy)

    @classmethod
    def from_config(cls, clients: ClientsConfig) -> FetchSettings:
        return cls(
            enabled=clients.fetch_documents,
            allow_networks=clients.fetch_allow_networks,
            ca_file=clients.fetch_ca_file,
            timeout=clients.fetch_timeout,
            min_ttl=clients.fetch_min_ttl,
            max_ttl=clients.fetch_max_ttl,
            default_ttl=clients.fetch_default_ttl,
            failure_ttl=clients.fetch_failure_ttl,
            cache_size=clients.fetch_cache_size,
            per_host_per_minute=clients.fetch_per_host_per_minute,
            max_concurrent=clients.fetch_max_concurrent,
            domains=DomainPolicy(clients.blocked_domains, clients.allowed_domains),
        )


@dataclass(frozen=True)
class Admission:
    """Whether a URL client_id may be fetched at all: the switch and the domain policy.

    A reload (SIGHUP) may change these (``[clients] fetch_documents``,
    ``blocked_domains``, ``allowed_domains``), so the web layer passes the request's
    own snapshot to :meth:`DocumentFetcher.get` rather than rely on the copy the
    fetcher was built with; the check runs before the cache, so a document cached
    while its domain was allowed is not served once the domain is blocked."""

    enabled: bool = True
    domains: DomainPolicy = field(default_factory=DomainPolicy)

    @classmethod
    def from_config(cls, clients: ClientsConfig) -> Admission:
        return cls(
            clients.fetch_documents,
            DomainPolicy(clients.blocked_domains, clients.allowed_domains),
        )


def _validator(value: str | None) -> str | None:
    """An ETag or Last-Modified worth sending back: printable ASCII, short."""
    if value is None or len(value) > MAX_VALIDATOR_LENGTH:
        return None
    value = value.strip()
    if not value or any(not " " <= char <= "~" for char in value):
        return None
    return value


class DocumentFetcher:
    """Validated metadata documents for URL client_ids; one per gate process.

    Open it at start (``cleanup_ctx``) and :meth:`close` it at shutdown: that cancels
    the fetches still running. ``resolve`` and ``ssl_context`` are for tests (a name
    answered without DNS, a context built elsewhere); by default the system resolver
    and :func:`https_get.tls_context` of ``settings.ca_file``.
    """

    def __init__(
        self,
        settings: FetchSettings,
        *,
        clock: Clock = system_clock,
        resolve: Resolver = system_resolve,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.settings = settings
        self._clock = clock
        self._resolve = resolve
        self._ssl = ssl_context or tls_context(settings.ca_file)
        self._documents = DocumentCache(settings.cache_size)
        self._failures: FailureCache[FetchFailed] = FailureCache(settings.cache_size)
        self._hosts = HostBudget(settings.per_host_per_minute, HOST_WINDOW)
        self._admission = Admission(settings.enabled, settings.domains)
        self._flights: dict[str, asyncio.Task[FetchResult]] = {}
        #: Network fetches made (requests sent or attempted): for metrics and tests.
        self.fetches = 0

    @classmethod
    def from_config(cls, clients: ClientsConfig, *, clock: Clock = system_clock) -> DocumentFetcher:
        """Raises ``ValueError`` naming ``clients.fetch_ca_file`` when it cannot be loaded."""
        return cls(FetchSettings.from_config(clients), clock=clock)

    @property
    def running(self) -> int:
        """Fetches in flight now."""
        return len(self._flights)

    async def get(self, client: ClientIdURL, admission: Admission | None = None) -> FetchResult:
        """The document at ``client.url``, from the cache or fetched; never raises for
        anything the network or the document host does.

        ``admission`` is the switch and domain policy in force for this request (the
        request's settings snapshot); by default the ones the fetcher was built with.
        It is checked before the cache: a refused host is neither served nor contacted.
        """
        url = client.url
        settings = self.settings
        admit = admission or self._admission
        if not admit.enabled:
            return failure(url, "disabled", "[clients] fetch_documents is false")
        # An empty policy allows every host parse_client_id_url accepted: skip it.
        if admit.domains.blocked or admit.domains.allowed:
            decision = admit.domains.decide(client.host)
            if decision != "allowed":
                detail = f"{client.host}: {decision.replace('_', ' ')}"
                return failure(url, "blocked_domain", detail)
        now = self._clock()
        entry = self._documents.fresh(url, now)
        if entry is not None:
            return Fetched(entry.document, entry.expires_at, cached=True)
        remembered = self._failures.remembered(url, now)
        if remembered is not None:
            return replace(remembered[1], cached=True)
        flight = self._flights.get(url)
        if flight is None:
            if len(self._flights) >= settings.max_concurrent:
                return failure(url, "busy", f"{len(self._flights)} fetches already running")
            next_at = self._hosts.take(client.host, now)
            if next_at is not None:
                failed = failure(
                    url,
                    "rate_limited",
                    f"{client.host} had {settings.per_host_per_minute} fetches in the last "
                    f"{HOST_WINDOW:g} s",
                )
                return replace(failed, retry_at=next_at)
            flight = asyncio.create_task(self._fetch(client), name=f"fetch {url}")
            self._flights[url] = flight
            flight.add_done_callback(lambda done: self._landed(url, done))
        # A caller that goes away (a closed browser tab) leaves the fetch to the others.
        return await asyncio.shield(flight)

    def _landed(self, url: str, done: asyncio.Task[FetchResult]) -> None:
        if self._flights.get(url) is done:
            del self._flights[url]
        if not done.cancelled():
            error = done.exception()  # retrieved here: the callers raise it too
            if error is not None:
                log.error("client document fetch of %s failed unexpectedly", url, exc_info=error)

    async def close(self) -> None:
        """Cancel the fetches still running (shutdown)."""
        flights = list(self._flights.values())
        for flight in flights:
            flight.cancel()
        await asyncio.gather(*flights, return_exceptions=True)

    # -- one network fetch ---------------------------------------------------------------

    def _ttl(self, cache_control: str | None, age: str | None) -> int:
        settings = self.settings
        return time_to_live(
            cache_control,
            floor=max(1, math.ceil(settings.min_ttl)),
            ceiling=max(1, math.ceil(settings.max_ttl)),
            default=math.ceil(settings.default_ttl),
            age=age,
        )

    def _failed(self, failed: FetchFailed) -> FetchFailed:
        self._documents.discard(failed.client_id)
        if failed.reason in TRANSIENT:
            return failed
        until = self._clock() + self.settings.failure_ttl
        failed = replace(failed, retry_at=until)
        self._failures.remember(failed.client_id, until, failed)
        return failed

    async def _fetch(self, client: ClientIdURL) -> FetchResult:
        url = client.url
        stale = self._documents.entry(url)
        validators: list[tuple[str, str]] = []
        if stale is not None:
            if stale.etag is not None:
                validators.append(("If-None-Match", stale.etag))
            if stale.last_modified is not None:
                validators.append(("If-Modified-Since", stale.last_modified))
        self.fetches += 1
        try:
            response = await document_get(
                client,
                allowed=self.settings.allow_networks,
                ssl_context=self._ssl,
                time_limit=self.settings.timeout,
                resolve=self._resolve,
                validators=validators,
            )
        except FetchError as exc:
            return self._failed(failure(url, exc.reason, exc.detail))
        if response.status == 304:
            return self._revalidated(client, response)
        return self._received(client, response)

    def _revalidated(self, client: ClientIdURL, response: DocumentResponse) -> FetchResult:
        url = client.url
        stale = self._documents.entry(url)
        if stale is None:  # pushed out of the cache while the request ran: the gate's
            # doing, not the host's, so not remembered; the next get fetches it whole
            return failure(url, "bad_response", "a 304 for a document no longer cached")
        cache_control = response.header("Cache-Control")
        ttl = self._ttl(
            cache_control if cache_control is not None else stale.cache_control,
            response.header("Age"),
        )
        renewed = self._documents.extend(url, self._clock() + ttl, cache_control)
        assert renewed is not None  # noqa: S101 - just read, same task, no await between
        return Fetched(renewed.document, renewed.expires_at)

    def _received(self, client: ClientIdURL, response: DocumentResponse) -> FetchResult:
        url = client.url
        try:
            document = read_document(response.body, client)
        except BadMetadataDocument as exc:
            return self._failed(
                failure(
                    url, "invalid_document", f"from {response.address}: {exc}", problem=str(exc)
                )
            )
        cache_control = response.header("Cache-Control")
        expires_at = self._clock() + self._ttl(cache_control, response.header("Age"))
        self._documents.store(
            CachedDocument(
                document,
                expires_at,
                etag=_validator(response.header("ETag")),
                last_modified=_validator(response.header("Last-Modified")),
                cache_control=cache_control,
            )
        )
        self._failures.discard(url)
        return Fetched(document, expires_at)
