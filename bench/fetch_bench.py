"""What a client metadata document costs the gate: ``python -m bench.fetch_bench``.

A real HTTPS document host on 127.0.0.1 (the tests' ``documenthost``, throwaway CA)
serves a document; in the same process and event loop, so each figure includes the
host's own work, the same for both sides of a ratio:

* a network fetch by ``DocumentFetcher.get`` (resolve nothing: an IP literal; check
  the address, connect, TLS handshake, GET, parse with llhttp, validate the document,
  cache it), each to a new client_id so that nothing is cached, against the baseline
  of a plain ``aiohttp`` GET of the same URL on a new connection each time (the same
  TCP and TLS work with the same TLS context, no checks, no validation);
* a cache hit (``await fetcher.get`` of a cached client_id) against a dict lookup and
  against awaiting a coroutine that returns at once (the floor of any ``await``).

Loopback only; a few seconds. Figures vary with the machine: read the ratios.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from statistics import median

import aiohttp

from consentgate.clients.client_id_urls import parse_client_id_url
from consentgate.clients.fetch_addresses import parse_networks
from consentgate.clients.fetcher import DocumentFetcher, FetchSettings
from consentgate.clients.https_get import tls_context
from tests.support.documenthost import answer, document, issue, make_authority, running

FETCHES = 40
ROUNDS = 5
HITS = 50_000


async def main() -> None:
    fetch_ms: list[float] = []
    aiohttp_ms: list[float] = []
    hit_us: list[float] = []
    dict_us: list[float] = []
    await_us: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        authority = make_authority(directory, "bench-ca")
        async with running("127.0.0.1", issue(authority, directory)) as host:
            urls = [host.url(f"/c{n}") for n in range(FETCHES + 1)]
            for n, url in enumerate(urls):
                host.routes[f"/c{n}"] = answer(200, document(url))
            settings = FetchSettings(
                ca_file=authority.cert_file,
                allow_networks=parse_networks(["127.0.0.1/32"]),
                per_host_per_minute=100_000,
                cache_size=FETCHES + 10,
            )
            fetcher = DocumentFetcher(settings)
            clients = [parse_client_id_url(url) for url in urls]
            assert (await fetcher.get(clients[-1])).ok  # warm up
            trusting = tls_context(authority.cert_file)  # the fetcher's own TLS settings
            connector = aiohttp.TCPConnector(ssl=trusting, force_close=True)
            async with aiohttp.ClientSession(connector=connector) as session:
                async with session.get(urls[-1]) as response:
                    await response.read()
                for _ in range(ROUNDS):  # interleaved, so both see the same machine
                    fetcher = DocumentFetcher(settings)  # nothing cached
                    started = time.perf_counter()
                    for client in clients[:FETCHES]:
                        assert (await fetcher.get(client)).ok
                    fetch_ms.append((time.perf_counter() - started) / FETCHES * 1000)
                    started = time.perf_counter()
                    for url in urls[:FETCHES]:
                        async with session.get(url) as response:
                            assert response.status == 200
                            await response.read()
                    aiohttp_ms.append((time.perf_counter() - started) / FETCHES * 1000)

            cached = clients[0]
            table = {cached.url: object()}

            async def nothing() -> None:
                return None

            for _ in range(ROUNDS):
                started = time.perf_counter()
                for _ in range(HITS):
                    await fetcher.get(cached)
                hit_us.append((time.perf_counter() - started) / HITS * 1e6)
                started = time.perf_counter()
                for _ in range(HITS):
                    table.get(cached.url)
                dict_us.append((time.perf_counter() - started) / HITS * 1e6)
                started = time.perf_counter()
                for _ in range(HITS):
                    await nothing()
                await_us.append((time.perf_counter() - started) / HITS * 1e6)
            await fetcher.close()

    fetch, plain = median(fetch_ms), median(aiohttp_ms)
    hit, lookup, empty = median(hit_us), median(dict_us), median(await_us)
    print(f"medians of {ROUNDS} interleaved rounds")
    print(f"network fetch (DocumentFetcher.get) {fetch:8.2f} ms")
    print(f"plain aiohttp GET, new connection   {plain:8.2f} ms")
    print(f"  ratio fetch / aiohttp             {fetch / plain:8.2f}")
    print(f"cache hit (await fetcher.get)       {hit:8.2f} µs")
    print(f"dict lookup                         {lookup:8.3f} µs")
    print(f"await of an empty coroutine         {empty:8.3f} µs")
    print(f"  ratio hit / dict lookup           {hit / lookup:8.1f}")
    print(f"  ratio hit / empty await           {hit / empty:8.1f}")


if __name__ == "__main__":
    asyncio.run(main())
