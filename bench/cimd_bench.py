"""Clients named by a URL at the gate: ``python -m bench.cimd_bench [--quick]``.

Three figures, all on loopback:

1. **Remembered /authorize, a URL client against a registered one**, in the same run:
   the gate (``python -m consentgate serve``, a real configuration, ``[clients]``
   trusting a throwaway CA and allowed 127.0.0.1) in front of bench/upstream.py, its
   store prepared with one registered client and one client named by a URL (both
   approved for the same browser, same redirect URI and scopes), the URL client's
   document fetched and cached before the first round. Interleaved rounds, in
   alternating order, each a fixed time of keep-alive GETs by this process (aiohttp,
   ``--connections`` at once, every answer checked to be the 302 to the IdP); per
   round the requests per second and the gate's CPU time per request (utime + stime
   from /proc: the gate's own cost, whatever else the machine runs). Medians, and the
   ratio URL client / registered client.
2. **The first fetch**: for fresh approved URL clients, the first /authorize (the gate
   fetches the document over TLS from the document host: resolve nothing, check the
   address, connect, handshake, GET, validate, cache) against the second (cached), one
   request at a time; the difference is the fetch as a person's browser waits for it.
3. **The cache hit rate over a realistic sequence**: ``DocumentFetcher`` with a fake
   clock against the real document host, 1,000 sign-ins of 20 URL clients spread over
   an hour (exponential gaps, clients drawn by popularity, Zipf s = 1; half the
   sign-ins are asked, and the answer 5 s later checks the document again),
   ``fetch_min_ttl = 1s`` (and the default, 1 minute, once), for four ways a host may
   serve its document.

The document host (tests/support/documenthost.py) runs in this process's event loop:
during the rounds of (1) it is idle (the document is cached). Placement as bench/run.py:
this process and the upstream on the first CPU, the gate on the second. Only ratios
measured in the same run mean anything; no figure is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp

from bench.run import (
    IDP_PREFIX,
    REDIRECT_URI,
    SCOPES,
    Process,
    Processes,
    bench_browser,
    choose_placement,
    free_port,
    gate_config,
    wait_for_http,
)
from consentgate.clients.client_id_urls import parse_client_id_url
from consentgate.clients.fetch_addresses import parse_networks
from consentgate.clients.fetcher import DocumentFetcher, FetchSettings
from consentgate.core.oauth.authorization_requests import consent_redirect_key
from consentgate.store import ConsentStore
from tests.support.documenthost import (
    DocumentHost,
    Request,
    Route,
    answer,
    issue,
    make_authority,
    response_bytes,
    running,
)

REGISTERED = "client-bench-0001"
#: Fresh URL clients for the first-fetch figure (2), besides the one of the rounds.
FIRST_FETCHES = 20
#: The cache simulation (3).
SIGN_INS = 1000
CLIENTS = 20
SPAN = 3600.0
ANSWER_AFTER = 5.0
SEED = 20261207
JSON = ("Content-Type", "application/json")


def authorize_target(client_id: str) -> str:
    query = urlencode(
        {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": REDIRECT_URI,
            "scope": " ".join(SCOPES),
            "state": "client-state-123",
            "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            "code_challenge_method": "S256",
        },
        quote_via=quote,
    )
    return f"/authorize?{query}"


def document_bytes(client_id: str) -> bytes:
    return json.dumps(
        {
            "client_id": client_id,
            "client_name": "Benchmark URL client",
            "redirect_uris": [REDIRECT_URI],
            "grant_types": ["authorization_code"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
        }
    ).encode()


async def prepare_store(workdir: Path, url_clients: Sequence[str]) -> str:
    """Keys, the cookie secret, the registered client, and approvals of it and of every
    URL client for one browser; returns that browser's cookie (as bench/run.py)."""
    keyring, cookie, subject = bench_browser(workdir)
    store = await ConsentStore.open(workdir / "gate-store" / "consentgate.sqlite3", keyring)
    try:
        await store.upsert_client(
            {
                "client_id": REGISTERED,
                "client_name": "Benchmark client",
                "redirect_uris": [REDIRECT_URI],
                "grant_types": ["authorization_code"],
                "response_types": ["code"],
                "token_endpoint_auth_method": "none",
            }
        )
        for client_id in (REGISTERED, *url_clients):
            key = consent_redirect_key(REDIRECT_URI)
            await store.record(subject, client_id, key, SCOPES, "", ttl=86400)
    finally:
        await store.close()
    return cookie


# --- (1) remembered /authorize ------------------------------------------------------------


@dataclass
class Round:
    requests: int = 0
    seconds: float = 0.0
    cpu: float = 0.0

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    @property
    def cpu_us(self) -> float:
        return self.cpu / self.requests * 1e6


@dataclass
class Series:
    rounds: list[Round] = field(default_factory=list)

    def median_rate(self) -> float:
        return statistics.median(r.rate for r in self.rounds)

    def median_cpu_us(self) -> float:
        return statistics.median(r.cpu_us for r in self.rounds)


async def load_round(
    session: aiohttp.ClientSession,
    url: str,
    headers: dict[str, str],
    *,
    connections: int,
    seconds: float,
    gate: Process,
) -> Round:
    deadline = time.monotonic() + seconds
    done = 0

    async def worker() -> None:
        nonlocal done
        while time.monotonic() < deadline:
            async with session.get(url, headers=headers, allow_redirects=False) as response:
                await response.read()
                location = response.headers.get("Location", "")
                if response.status != 302 or not location.startswith(IDP_PREFIX):
                    raise RuntimeError(f"{url} answered {response.status} {location!r}")
            done += 1

    cpu_before = gate.cpu_seconds()
    started = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(connections)))
    elapsed = time.monotonic() - started
    return Round(done, elapsed, gate.cpu_seconds() - cpu_before)


async def remembered_authorize(
    port: int, gate: Process, cookie: str, url_client: str, args: argparse.Namespace
) -> dict[str, Series]:
    headers = {
        "Cookie": cookie,
        "Accept": "text/html",
        "Sec-Fetch-Site": "same-origin",
        "Sec-Fetch-Mode": "navigate",
    }
    base = f"http://127.0.0.1:{port}"
    targets = {
        "registered": base + authorize_target(REGISTERED),
        "url client": base + authorize_target(url_client),
    }
    series = {name: Series() for name in targets}
    connector = aiohttp.TCPConnector(limit=args.connections)
    async with aiohttp.ClientSession(connector=connector) as session:
        for url in targets.values():  # warm up: the document fetched and cached here
            await load_round(
                session, url, headers, connections=args.connections, seconds=0.5, gate=gate
            )
        order = list(targets)
        for _ in range(args.rounds):
            for name in order:
                result = await load_round(
                    session,
                    targets[name],
                    headers,
                    connections=args.connections,
                    seconds=args.seconds,
                    gate=gate,
                )
                series[name].rounds.append(result)
            order.reverse()
    return series


# --- (2) the first fetch --------------------------------------------------------------------


async def first_fetches(
    port: int, cookie: str, host: DocumentHost, clients: Sequence[str]
) -> tuple[list[float], list[float]]:
    headers = {
        "Cookie": cookie,
        "Accept": "text/html",
        "Sec-Fetch-Site": "same-origin",
        "Sec-Fetch-Mode": "navigate",
    }
    first_ms: list[float] = []
    cached_ms: list[float] = []
    async with aiohttp.ClientSession() as session:
        for client_id in clients:
            url = f"http://127.0.0.1:{port}" + authorize_target(client_id)
            for times in (first_ms, cached_ms):
                fetched_before = len(host.requests)
                started = time.perf_counter()
                async with session.get(url, headers=headers, allow_redirects=False) as response:
                    await response.read()
                    status = response.status
                times.append((time.perf_counter() - started) * 1000)
                if status != 302:
                    raise RuntimeError(f"first fetch of {client_id}: {status}")
                fetched = len(host.requests) - fetched_before
                if fetched != (1 if times is first_ms else 0):
                    raise RuntimeError(f"{client_id}: {fetched} fetches, not as expected")
    return first_ms, cached_ms


# --- (3) the cache hit rate -------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def revalidating(body: bytes, etag: str) -> Route:
    """``Cache-Control: no-cache`` with an ETag: 304 to a matching If-None-Match."""
    full = response_bytes(
        200,
        body,
        [("Content-Type", "application/json"), ("Cache-Control", "no-cache"), ("ETag", etag)],
    )
    not_modified = response_bytes(304, b"", [("Cache-Control", "no-cache"), ("ETag", etag)])

    async def route(request: Request, _: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        w.write(not_modified if request.headers.get("if-none-match") == etag else full)
        await w.drain()

    return route


@dataclass(frozen=True)
class CacheRun:
    served: str
    lookups: int
    hits: int
    fetched: int
    revalidated: int
    failed: int

    @property
    def hit_rate(self) -> float:
        return self.hits / self.lookups


def sign_in_sequence(rng: random.Random) -> list[tuple[float, int]]:
    """(time, client index) of each lookup: the /authorize of every sign-in, and the
    answer ``ANSWER_AFTER`` later for the half that is asked; sorted by time."""
    weights = [1 / (rank + 1) for rank in range(CLIENTS)]
    lookups: list[tuple[float, int]] = []
    now = 0.0
    for _ in range(SIGN_INS):
        now += rng.expovariate(SIGN_INS / SPAN)
        client = rng.choices(range(CLIENTS), weights)[0]
        lookups.append((now, client))
        if rng.random() < 0.5:
            lookups.append((now + ANSWER_AFTER, client))
    return sorted(lookups)


async def cache_hit_rates(host: DocumentHost, ca_file: Path) -> list[CacheRun]:
    no_store = [JSON, ("Cache-Control", "no-store")]
    #: (what the host serves, its headers or None for no-cache + ETag, fetch_min_ttl)
    ways: list[tuple[str, list[tuple[str, str]] | None, float]] = [
        ("no Cache-Control (fetch_default_ttl 1h)", [JSON], 1.0),
        ("max-age=300", [JSON, ("Cache-Control", "max-age=300")], 1.0),
        ("no-store (fetch_min_ttl 1s)", no_store, 1.0),
        ("no-cache + ETag (1s, then 304)", None, 1.0),
        ("no-store, fetch_min_ttl 1m (the default)", no_store, 60.0),
    ]
    runs = []
    lookups = sign_in_sequence(random.Random(SEED))
    for n, (served, headers, min_ttl) in enumerate(ways):
        urls = [host.url(f"/sim{n}/c{i}.json") for i in range(CLIENTS)]
        for i, url in enumerate(urls):
            path = f"/sim{n}/c{i}.json"
            body = document_bytes(url)
            host.routes[path] = (
                revalidating(body, f'"v{i}"') if headers is None else answer(200, body, headers)
            )
        clock = Clock()
        settings = FetchSettings(
            ca_file=ca_file,
            allow_networks=parse_networks(["127.0.0.1/32"]),
            min_ttl=min_ttl,
            # The 20 clients share one loopback host here; in the world they are 20
            # hosts, each with its own budget.
            per_host_per_minute=30 * CLIENTS,
        )
        fetcher = DocumentFetcher(settings, clock=clock)
        clients = [parse_client_id_url(url) for url in urls]
        start, before = clock.now, len(host.requests)
        hits = failed = 0
        for at, index in lookups:
            clock.now = start + at
            result = await fetcher.get(clients[index])
            if not result.ok:
                failed += 1
            elif getattr(result, "cached", False):
                hits += 1
        await fetcher.close()
        requests = host.requests[before:]
        revalidated = sum("if-none-match" in r.headers for r in requests)
        runs.append(CacheRun(served, len(lookups), hits, len(requests), revalidated, failed))
    return runs


# --- the command --------------------------------------------------------------------------------


async def run(args: argparse.Namespace, workdir: Path) -> None:
    placement = choose_placement(pin=True)
    if placement.load is not None:
        os.sched_setaffinity(0, placement.load)
    authority = make_authority(workdir, "bench-documents-ca")
    processes = Processes(workdir)
    async with running("127.0.0.1", issue(authority, workdir)) as host:
        url_clients = [host.url(f"/clients/c{n}.json") for n in range(FIRST_FETCHES + 1)]
        for n, url in enumerate(url_clients):
            host.routes[f"/clients/c{n}.json"] = answer(200, document_bytes(url))
        cookie = await prepare_store(workdir, url_clients)
        try:
            upstream_port, port = free_port(), free_port()
            upstream = processes.start(
                "upstream",
                [
                    *(sys.executable, "-m", "bench.upstream", "--port", str(upstream_port)),
                    *("--public-url", f"http://127.0.0.1:{port}"),
                ],
                placement.upstream,
            )
            wait_for_http(upstream, upstream_port, "/small")
            config = gate_config(workdir, "gate", port, upstream_port)
            with config.open("a") as toml:
                toml.write(
                    "\n[clients]\n"
                    f'fetch_ca_file = "{authority.cert_file}"\n'
                    'fetch_allow_networks = ["127.0.0.1/32"]\n'
                )
            gate = processes.start(
                "gate",
                [sys.executable, "-m", "consentgate", "serve", "--config", str(config)],
                placement.proxy,
            )
            await asyncio.to_thread(wait_for_http, gate, port, "/small")
            series = await remembered_authorize(port, gate, cookie, url_clients[0], args)
            first_ms, cached_ms = await first_fetches(port, cookie, host, url_clients[1:])
        except BaseException:
            for process in processes.running:
                print(f"--- {process.name}")
                print(process.tail(30))
            raise
        finally:
            processes.stop_all()
        cache_runs = await cache_hit_rates(host, authority.cert_file)

    print(f"placement: {placement.describe()}")
    print(
        f"(1) remembered /authorize, {args.connections} connections, medians of "
        f"{args.rounds} interleaved rounds of {args.seconds:g} s"
    )
    registered, url_client = series["registered"], series["url client"]
    for name, s in series.items():
        print(f"    {name:<12} {s.median_rate():8.0f} req/s  {s.median_cpu_us():7.0f} µs CPU/req")
    rate_ratio = url_client.median_rate() / registered.median_rate()
    cpu_ratio = url_client.median_cpu_us() / registered.median_cpu_us()
    print(f"    ratio url client / registered: rate {rate_ratio:.3f}, CPU/req {cpu_ratio:.3f}")
    # Each round's pair ran back to back: their ratios drift least with the machine.
    pairs = list(zip(url_client.rounds, registered.rounds, strict=True))
    cpu_pairs = sorted(u.cpu_us / r.cpu_us for u, r in pairs)
    rate_pairs = sorted(u.rate / r.rate for u, r in pairs)
    print(
        f"    per round: CPU/req ratio median {statistics.median(cpu_pairs):.3f} "
        f"(min {cpu_pairs[0]:.3f}, max {cpu_pairs[-1]:.3f}), rate ratio median "
        f"{statistics.median(rate_pairs):.3f} (min {rate_pairs[0]:.3f}, max {rate_pairs[-1]:.3f})"
    )
    first, cached = statistics.median(first_ms), statistics.median(cached_ms)
    print(f"(2) first /authorize of {len(first_ms)} fresh URL clients, one at a time (medians)")
    print(f"    first (fetch over TLS)  {first:7.2f} ms   (max {max(first_ms):.2f})")
    print(f"    second (cached)         {cached:7.2f} ms")
    print(f"    the fetch               {first - cached:7.2f} ms")
    print(
        f"(3) cache hit rate: {SIGN_INS:,} sign-ins of {CLIENTS} URL clients over {SPAN / 3600:g} h"
    )
    for r in cache_runs:
        print(
            f"    {r.served:<40} {r.lookups} lookups, {r.fetched:4} fetches "
            f"({r.revalidated} revalidations), {r.failed} failed, hit rate {r.hit_rate:6.1%}"
        )


def interleaved_main(
    argv: Sequence[str] | None,
    doc: str | None,
    prefix: str,
    run: Callable[[argparse.Namespace, Path], Coroutine[Any, Any, None]],
) -> int:
    """The command line of a bench of interleaved rounds (this one, bench/identity_bench.py):
    ``--rounds``, ``--seconds``, ``--connections``, ``--quick``; ``run`` in a temporary
    directory named with ``prefix``, until done or Ctrl-C."""
    parser = argparse.ArgumentParser(description=(doc or "").split("\n")[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--quick", action="store_true", help="3 rounds of 1 s")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.seconds = 3, 1.0
    with (
        tempfile.TemporaryDirectory(prefix=prefix) as tmp,
        contextlib.suppress(KeyboardInterrupt),
    ):
        asyncio.run(run(args, Path(tmp)))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return interleaved_main(argv, __doc__, "cimd-bench-", run)


if __name__ == "__main__":
    raise SystemExit(main())
