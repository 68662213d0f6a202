"""The gate's own sign-in off the hot path: ``python -m bench.identity_bench [--quick]``.

A remembered ``/authorize`` of a browser with a gate session ([identity] set) against
the same remembered ``/authorize`` of a gate without ``[identity]``, in one run, on
loopback: two gates (``python -m consentgate serve``, real configurations, one store
and one keys directory) in front of bench/upstream.py, both on the same CPU, loaded
in interleaved rounds in alternating order (as bench/cimd_bench.py), every answer
checked to be the 302 to the IdP. The identity gate's issuer is a loopback port
nobody listens on: a browser with a session never needs the provider, and its
approval is the person's (recorded for ``person:...``). Per round the requests per
second and the gate's CPU time per request (/proc); medians and ratios. Only ratios
measured in the same run mean anything; no figure is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import aiohttp

from bench.cimd_bench import Series, authorize_target, interleaved_main, load_round
from bench.run import (
    REDIRECT_URI,
    SCOPES,
    Processes,
    bench_browser,
    bench_keys,
    choose_placement,
    free_port,
    gate_config,
    wait_for_http,
)
from consentgate.core.identity.person import person_from_claims, seal_session
from consentgate.core.oauth.authorization_requests import consent_redirect_key
from consentgate.store import ConsentStore

CLIENT = "client-bench-0001"


async def prepare(workdir: Path, issuer: str) -> tuple[str, str]:
    """The store with one client approved by a browser and by a person; the two
    ``Cookie`` headers: the browser's, and the same browser with the person's session."""
    keyring, browser, subject = bench_browser(workdir)
    _, crypto = bench_keys(workdir, create=False)
    person = person_from_claims(
        {"sub": "bench-person", "email": "bench@example.com"},
        issuer=issuer,
        subject_claim="sub",
        display_claim="email",
    )
    session = seal_session(crypto.session_key, subject, person, int(time.time()) + 86400)
    store = await ConsentStore.open(workdir / "gate-store" / "consentgate.sqlite3", keyring)
    try:
        await store.upsert_client(
            {
                "client_id": CLIENT,
                "client_name": "Benchmark client",
                "redirect_uris": [REDIRECT_URI],
                "grant_types": ["authorization_code"],
                "response_types": ["code"],
                "token_endpoint_auth_method": "none",
            }
        )
        key = consent_redirect_key(REDIRECT_URI)
        for approver in (subject, person.subject):
            await store.record(approver, CLIENT, key, SCOPES, "", ttl=86400)
    finally:
        await store.close()
    return browser, f"{browser}; {crypto.names.session}={session}"


async def run(args: argparse.Namespace, workdir: Path) -> None:
    placement = choose_placement(pin=True)
    if placement.load is not None:
        os.sched_setaffinity(0, placement.load)
    issuer = f"http://127.0.0.1:{free_port()}"  # nobody listens: never needed
    browser_cookie, session_cookie = await prepare(workdir, issuer)
    processes = Processes(workdir)
    try:
        upstream_port, plain_port, identity_port = free_port(), free_port(), free_port()
        upstream = processes.start(
            "upstream",
            [sys.executable, "-m", "bench.upstream", "--port", str(upstream_port)],
            placement.upstream,
        )
        wait_for_http(upstream, upstream_port, "/small")
        plain_config = gate_config(workdir, "plain", plain_port, upstream_port)
        identity_config = gate_config(workdir, "identity", identity_port, upstream_port)
        with identity_config.open("a") as toml:
            toml.write(
                f'\n[identity]\nissuer = "{issuer}"\nclient_id = "bench-gate"\n'
                'client_secret = "bench-secret"\n'
            )
        gates = {
            name: processes.start(
                name,
                [sys.executable, "-m", "consentgate", "serve", "--config", str(config)],
                placement.proxy,
            )
            for name, config in (("plain", plain_config), ("identity", identity_config))
        }
        for name, port in (("plain", plain_port), ("identity", identity_port)):
            await asyncio.to_thread(wait_for_http, gates[name], port, "/small")
        targets = {
            "without [identity]": (gates["plain"], plain_port, browser_cookie),
            "with a gate session": (gates["identity"], identity_port, session_cookie),
        }
        series = {name: Series() for name in targets}
        connector = aiohttp.TCPConnector(limit=args.connections * 2)
        async with aiohttp.ClientSession(connector=connector) as session:
            order = list(targets)
            for warm_up in (True, *([False] * args.rounds)):
                for name in order:
                    gate, port, cookie = targets[name]
                    headers = {
                        "Cookie": cookie,
                        "Accept": "text/html",
                        "Sec-Fetch-Site": "same-origin",
                        "Sec-Fetch-Mode": "navigate",
                    }
                    result = await load_round(
                        session,
                        f"http://127.0.0.1:{port}{authorize_target(CLIENT)}",
                        headers,
                        connections=args.connections,
                        seconds=0.5 if warm_up else args.seconds,
                        gate=gate,
                    )
                    if not warm_up:
                        series[name].rounds.append(result)
                order.reverse()
    except BaseException:
        for process in processes.running:
            print(f"--- {process.name}")
            print(process.tail(30))
        raise
    finally:
        processes.stop_all()

    print(f"placement: {placement.describe()}")
    print(
        f"remembered /authorize, {args.connections} connections, medians of "
        f"{args.rounds} interleaved rounds of {args.seconds:g} s"
    )
    for name, s in series.items():
        print(f"    {name:<20} {s.median_rate():8.0f} req/s  {s.median_cpu_us():7.0f} µs CPU/req")
    plain, signed = series["without [identity]"], series["with a gate session"]
    pairs = list(zip(signed.rounds, plain.rounds, strict=True))
    cpu_pairs = sorted(s.cpu_us / p.cpu_us for s, p in pairs)
    rate_pairs = sorted(s.rate / p.rate for s, p in pairs)
    print(
        f"    with session / without: CPU/req ratio median {statistics.median(cpu_pairs):.3f} "
        f"(min {cpu_pairs[0]:.3f}, max {cpu_pairs[-1]:.3f}), rate ratio median "
        f"{statistics.median(rate_pairs):.3f} (min {rate_pairs[0]:.3f}, max {rate_pairs[-1]:.3f})"
    )


def main(argv: Sequence[str] | None = None) -> int:
    return interleaved_main(argv, __doc__, "identity-bench-", run)


if __name__ == "__main__":
    raise SystemExit(main())
